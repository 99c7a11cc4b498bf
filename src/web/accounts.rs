//! Accounts: a user's own page (password change, API tokens), the admins' user list (create,
//! reset, deactivate), and the set-password page a one-time link opens.

use askama::Template;
use hyper::StatusCode;
use redb::ReadableDatabase;

use super::{Form, Nav, Page, Visitor, Web, manage_error, message, not_found, redirect, render};
use crate::manage::ManageError;
use crate::manage::tokens::{TokenCreate, TokenCreated, TokenList, TokenRevoke, TokenView};
use crate::manage::users::{
    PasswordChange, SetPasswordLink, UserCreate, UserList, UserResetLink, UserSetActive, UserView,
};
use crate::store::USERS;
use crate::store::users;

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    email: String,
    /// The visitor's tokens (every token, for admins).
    tokens: Vec<TokenView>,
    /// Projects a new token may be limited to: (slug, name).
    projects: Vec<(String, String)>,
    /// A token just made, with its secret: shown this once.
    made: Option<TokenCreated>,
}

/// Scope sets the account page offers for a new token.
fn scope_preset(name: &str) -> Option<Vec<String>> {
    let list: &[&str] = match name {
        "read" => &["org:read", "project:read", "event:read"],
        "admin" => &[
            "org:read",
            "project:read",
            "project:write",
            "project:releases",
            "event:read",
            "event:write",
            "event:admin",
        ],
        _ => return None,
    };
    Some(list.iter().map(|s| s.to_string()).collect())
}

/// The visitor's account page, under `nav` (which may carry what the last change came to),
/// with a token just made, if any.
pub async fn account(web: &Web, visitor: &Visitor, nav: Nav, made: Option<TokenCreated>) -> Page {
    let actor = visitor.actor();
    let tokens = match web.handle.run_async(actor.clone(), TokenList).await {
        Ok(t) => t,
        Err(e) => return manage_error(nav, &e),
    };
    let handle = web.handle.clone();
    let projects = tokio::task::spawn_blocking(move || handle.visible_projects(&actor))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.slug, p.name))
        .collect();
    render(AccountPage {
        nav,
        email: visitor.user.email.clone(),
        tokens,
        projects,
        made,
    })
}

/// Makes or revokes one of the visitor's API tokens.
pub async fn token_action(web: &Web, visitor: &Visitor, action: &str, form: &Form) -> Page {
    let mut nav = Nav::of(visitor);
    let made = match action {
        "create" => {
            let op = TokenCreate {
                name: form.get("name").unwrap_or("").to_string(),
                scopes: scope_preset(form.get("access").unwrap_or("")),
                project: form
                    .get("project")
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
                user: None,
            };
            match web.handle.run_async(visitor.actor(), op).await {
                Ok(made) => Some(made),
                Err(ManageError::Invalid(why)) => {
                    nav.error = Some(why);
                    None
                }
                Err(e) => return manage_error(nav, &e),
            }
        }
        "revoke" => {
            let op = TokenRevoke {
                id: form.get("id").unwrap_or("").to_string(),
            };
            match web.handle.run_async(visitor.actor(), op).await {
                Ok(t) => nav.flash = Some(format!("Token \"{}\" is revoked.", t.name)),
                Err(e) => return manage_error(nav, &e),
            }
            None
        }
        _ => return not_found(nav),
    };
    account(web, visitor, nav, made).await
}

pub async fn change_password(web: &Web, visitor: &Visitor, form: &Form) -> Page {
    let op = PasswordChange {
        current: form.get("current").unwrap_or("").to_string(),
        new: form.get("new").unwrap_or("").to_string(),
        keep_session: Some(visitor.session_token().to_string()),
    };
    let mut nav = Nav::of(visitor);
    match web.handle.run_async(visitor.actor(), op).await {
        Ok(_) => nav.flash = Some("Your password is changed.".into()),
        Err(ManageError::Invalid(why)) => nav.error = Some(why),
        Err(e) => return manage_error(nav, &e),
    }
    account(web, visitor, nav, None).await
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<UserView>,
    link: Option<String>,
    link_for: String,
}

/// The admins' user list, with a set-password link just made, if any.
pub async fn users(web: &Web, visitor: &Visitor, link: Option<SetPasswordLink>) -> Page {
    if !visitor.user.is_admin {
        return not_found(Nav::of(visitor));
    }
    match web.act(visitor, UserList).await {
        Ok(users) => {
            let (link_for, link) = match link {
                Some(l) => (l.email, Some(l.url)),
                None => (String::new(), None),
            };
            render(UsersPage {
                nav: Nav::of(visitor),
                users,
                link,
                link_for,
            })
        }
        Err(page) => page,
    }
}

pub async fn user_action(web: &Web, visitor: &Visitor, action: &str, form: &Form) -> Page {
    if !visitor.user.is_admin {
        return not_found(Nav::of(visitor));
    }
    let email = form.field("email");
    let link = match action {
        "create" => {
            let admin = form.get("admin") == Some("1");
            web.act(visitor, UserCreate { email, admin })
                .await
                .map(Some)
        }
        "reset" => web.act(visitor, UserResetLink { email }).await.map(Some),
        "deactivate" | "activate" => {
            let active = action == "activate";
            web.act(visitor, UserSetActive { email, active })
                .await
                .map(|_| None)
        }
        _ => return not_found(Nav::of(visitor)),
    };
    match link {
        Ok(Some(link)) => users(web, visitor, Some(link)).await,
        Ok(None) => redirect("/admin/users", &[]),
        Err(page) => page,
    }
}

#[derive(Template)]
#[template(path = "set_password.html")]
struct SetPasswordPage {
    nav: Nav,
    email: String,
}

pub fn set_password_page(web: &Web, token: &str) -> Page {
    let user = web.handle.db.begin_read().ok().and_then(|txn| {
        users::by_token(&txn.open_table(USERS).ok()?, token, crate::time::now())
            .ok()
            .flatten()
    });
    match user {
        Some(user) => render(SetPasswordPage {
            nav: Nav::anonymous(),
            email: user.email,
        }),
        None => message(
            StatusCode::NOT_FOUND,
            Nav::anonymous(),
            "Link not valid",
            "This set-password link is invalid, used or expired. Ask an admin for a new one.",
        ),
    }
}

pub async fn set_password(web: &Web, token: &str, form: &Form) -> Page {
    let password = form.get("password").unwrap_or("").to_string();
    let (handle, token) = (web.handle.clone(), token.to_string());
    let done = tokio::task::spawn_blocking(move || {
        crate::manage::users::set_password_with_token(&handle, &token, &password)
    })
    .await
    .unwrap_or_else(|e| Err(ManageError::Storage(format!("internal error: {e}"))));
    match done {
        Ok(_) => redirect("/login?flash=password-set", &[]),
        Err(ManageError::Invalid(why)) => {
            message(StatusCode::BAD_REQUEST, Nav::anonymous(), "Too short", &why)
        }
        Err(e) => manage_error(Nav::anonymous(), &e),
    }
}

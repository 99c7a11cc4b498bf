//! Accounts: a user's own page (password change, API tokens, two-factor codes), the admins'
//! user list (create, reset, deactivate), the set-password page a one-time link opens, and
//! "Forgot password?", which mails such a link.

use askama::Template;
use hyper::StatusCode;
use redb::ReadableDatabase;

use super::{
    Form, Nav, Page, Visitor, Web, manage_error, message, not_found, redirect, render, sessions,
};
use crate::manage::ManageError;
use crate::manage::audit::{AuditList, AuditView, DEFAULT_LIMIT};
use crate::manage::sign_in::{TwoFactorConfirm, TwoFactorDisable, TwoFactorSetup, TwoFactorStart};
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

#[derive(Template)]
#[template(path = "two_factor.html")]
struct TwoFactorPage {
    nav: Nav,
    required: bool,
    enabled: bool,
    recovery_left: usize,
    setup: Option<TwoFactorSetup>,
    recovery: Option<Vec<String>>,
}

/// The visitor's two-factor page: its state, the setup, or the recovery codes just made.
pub fn two_factor(
    web: &Web,
    visitor: &Visitor,
    nav: Nav,
    setup: Option<TwoFactorSetup>,
    recovery: Option<Vec<String>>,
) -> Page {
    let user = users::find(&web.handle.db, &visitor.user.email)
        .ok()
        .flatten()
        .unwrap_or_else(|| visitor.user.clone());
    render(TwoFactorPage {
        nav,
        required: web.two_factor_required(visitor) && !user.has_two_factor(),
        enabled: user.has_two_factor(),
        recovery_left: user.recovery_codes.len(),
        setup,
        recovery,
    })
}

/// Starts, confirms or turns off the visitor's two-factor codes.
pub async fn two_factor_action(web: &Web, visitor: &Visitor, action: &str, form: &Form) -> Page {
    let mut nav = Nav::of(visitor);
    let code = form.get("code").unwrap_or("").to_string();
    match action {
        "start" => match web.act(visitor, TwoFactorStart).await {
            Ok(setup) => two_factor(web, visitor, nav, Some(setup), None),
            Err(page) => page,
        },
        "confirm" => match web
            .handle
            .run_async(visitor.actor(), TwoFactorConfirm { code })
            .await
        {
            Ok(codes) => two_factor(web, visitor, nav, None, Some(codes.codes)),
            Err(ManageError::Invalid(why)) => {
                nav.error = Some(why);
                // The same secret again, so the app's entry stays right.
                let setup = users::find(&web.handle.db, &visitor.user.email)
                    .ok()
                    .flatten()
                    .and_then(|u| u.totp_pending)
                    .and_then(|secret| {
                        let issuer = &web.handle.config.organization;
                        TwoFactorSetup::of(secret, &visitor.user.email, issuer).ok()
                    });
                two_factor(web, visitor, nav, setup, None)
            }
            Err(e) => manage_error(nav, &e),
        },
        "disable" => {
            let op = TwoFactorDisable { email: None, code };
            match web.handle.run_async(visitor.actor(), op).await {
                Ok(_) => nav.flash = Some("Two-factor codes are off.".into()),
                Err(ManageError::Invalid(why)) => nav.error = Some(why),
                Err(e) => return manage_error(nav, &e),
            }
            two_factor(web, visitor, nav, None, None)
        }
        _ => not_found(nav),
    }
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage {
    nav: Nav,
    csrf: String,
}

/// "Forgot password?": the form asking for the email.
pub fn forgot_page(web: &Web, login_cookie: Option<String>) -> Page {
    if web.mailer.is_none() {
        return not_found(Nav::anonymous());
    }
    let csrf = sessions::login_csrf(login_cookie);
    let page = render(ForgotPage {
        nav: Nav::anonymous(),
        csrf: csrf.clone(),
    });
    sessions::with_login_cookie(web, page, &csrf)
}

/// Mails a one-time link to set a new password, if the address has an account; the answer
/// is the same either way, and comes before the mail is sent.
pub async fn forgot(
    web: &std::sync::Arc<Web>,
    form: &Form,
    login_cookie: Option<String>,
    remote: std::net::IpAddr,
) -> Page {
    let Some(mailer) = web.mailer.clone() else {
        return not_found(Nav::anonymous());
    };
    if !sessions::login_csrf_ok(form, &login_cookie) {
        return sessions::csrf_refused();
    }
    let email = form.get("email").unwrap_or("").trim().to_ascii_lowercase();
    let now = crate::time::now();
    if let Some(seconds) = web.resets.wait(&email, remote, now) {
        return sessions::throttled(seconds, "reset requests");
    }
    web.resets.failed(&email, remote, now);
    let handle = web.handle.clone();
    let lifetime = span(handle.config.auth.reset_link_lifetime.0.as_secs());
    tokio::spawn(async move {
        let (h, e) = (handle.clone(), email.clone());
        let token = tokio::task::spawn_blocking(move || {
            crate::manage::sign_in::request_password_reset(&h, &e, remote)
        })
        .await;
        let Ok(Ok(Some(token))) = token else {
            return;
        };
        let base = handle.config.base_url();
        let body = format!(
            "Someone (you, we hope) asked to set a new password for {email} on picket at \
             {base}.\n\nThis link sets it. It works once, within {lifetime}:\n\n\
             {base}/set-password/{token}\n\n\
             If you did not ask, ignore this mail: your password stays as it is.\n"
        );
        if let Err(e) = mailer
            .send_one(&email, "Set a new picket password", body)
            .await
        {
            tracing::warn!("password-reset mail to {email} failed: {e}");
        }
    });
    message(
        StatusCode::OK,
        Nav::anonymous(),
        "Check your mail",
        "If that address has an account, a link that sets a new password is on its way. \
         It works once, and not for long.",
    )
}

/// A span of time in words: "1 hour", "30 minutes", "45 seconds".
fn span(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    entries: Vec<AuditView>,
    /// The entry id to page back from, when there may be older entries.
    older: Option<u64>,
}

/// The admins' audit log, a page at a time.
pub async fn audit(
    web: &Web,
    visitor: &Visitor,
    query: &std::collections::HashMap<String, String>,
) -> Page {
    if !visitor.user.is_admin {
        return not_found(Nav::of(visitor));
    }
    let op = AuditList {
        limit: Some(DEFAULT_LIMIT),
        before: query.get("before").and_then(|b| b.parse().ok()),
    };
    match web.act(visitor, op).await {
        Ok(entries) => render(AuditPage {
            nav: Nav::of(visitor),
            older: (entries.len() == DEFAULT_LIMIT)
                .then(|| entries.last().map(|e| e.id))
                .flatten(),
            entries,
        }),
        Err(page) => page,
    }
}

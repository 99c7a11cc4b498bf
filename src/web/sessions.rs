//! Signing in and out: server-side sessions behind an HttpOnly cookie, the sign-in form with
//! its double-submit CSRF cookie, and the throttle on failed sign-ins per address and per
//! account. Who the visitor is gets decided here; what they may do, in the management layer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use askama::Template;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, SET_COOKIE};
use hyper::{Request, StatusCode};
use redb::ReadableDatabase;

use super::{Form, Nav, Page, Web, html, message, redirect, store_error};
use crate::manage::Actor;
use crate::manage::users::verify_password;
use crate::store::sessions::{self, Session};
use crate::store::users::{self, User};
use crate::store::{SESSIONS, USERS};

pub(super) const SESSION_COOKIE: &str = "picket_session";
pub(super) const LOGIN_CSRF_COOKIE: &str = "picket_csrf";
/// Failed sign-ins allowed per address and per account within the window.
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: f64 = 15.0 * 60.0;

impl Web {
    fn secure_cookies(&self) -> bool {
        self.handle.config.base_url().starts_with("https://")
    }

    fn throttled(&self, keys: &[String], now: f64) -> Option<u64> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        keys.iter()
            .filter_map(|k| failures.get(k))
            .filter(|(n, since)| *n >= MAX_FAILURES && now - since < FAILURE_WINDOW)
            .map(|(_, since)| ((since + FAILURE_WINDOW - now) / 60.0).ceil() as u64)
            .max()
    }

    fn failed(&self, keys: &[String], now: f64) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() > 100_000 {
            failures.retain(|_, (_, since)| now - *since < FAILURE_WINDOW);
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert((0, now));
            if now - entry.1 >= FAILURE_WINDOW {
                *entry = (0, now);
            }
            entry.0 += 1;
        }
    }
}

/// The signed-in user of a request.
pub struct Visitor {
    pub user: User,
    pub session: Session,
    token: String,
}

impl Visitor {
    /// Who the management layer acts for.
    pub fn actor(&self) -> Actor {
        Actor::User(self.user.clone())
    }

    /// A visitor signed in as this user, for rendering pages outside a request (benchmarks).
    pub fn signed_in(user: User) -> Visitor {
        Visitor {
            session: Session {
                email: user.email.clone(),
                ..Default::default()
            },
            user,
            token: String::new(),
        }
    }
}

pub(super) fn cookie(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> String {
    let mut c = cookie::Cookie::build((name.to_string(), value.to_string()))
        .path(path.to_string())
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age));
    if secure {
        c = c.secure(true);
    }
    c.build().to_string()
}

pub(super) fn visitor(web: &Web, req: &Request<Incoming>) -> Option<Visitor> {
    let token = cookie(req, SESSION_COOKIE)?;
    let now = crate::time::now();
    let txn = web.handle.db.begin_read().ok()?;
    let session = sessions::get(&txn.open_table(SESSIONS).ok()?, &token, now).ok()??;
    let user = users::get(&txn.open_table(USERS).ok()?, &session.email).ok()??;
    user.active.then_some(Visitor {
        user,
        session,
        token,
    })
}

pub(super) fn login_page(
    web: &Web,
    query: &HashMap<String, String>,
    signed_in: bool,
    token: Option<String>,
) -> Page {
    if signed_in {
        return redirect("/", &[]);
    }
    let next = query.get("next").map(String::as_str).unwrap_or("/");
    render_login(web, next, "", None, flash(query), token)
}

/// Messages a redirect may ask the next page to show (never text from the request).
fn flash(query: &HashMap<String, String>) -> Option<String> {
    match query.get("flash").map(String::as_str) {
        Some("password-set") => Some("Your password is set. Sign in with it.".into()),
        Some("signed-out") => Some("You are signed out.".into()),
        _ => None,
    }
}

/// The sign-in form. Its CSRF token is the browser's login cookie when it has one (a second
/// tab or a background request must not invalidate the first form), else a new one.
fn render_login(
    web: &Web,
    next: &str,
    email: &str,
    error: Option<String>,
    flash: Option<String>,
    token: Option<String>,
) -> Page {
    #[derive(Template)]
    #[template(path = "login.html")]
    struct Login<'a> {
        nav: Nav,
        csrf: String,
        next: &'a str,
        email: &'a str,
    }
    let csrf = token
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| users::new_token().0);
    let mut nav = Nav::anonymous();
    nav.error = error.clone();
    nav.flash = flash;
    let body = Login {
        nav,
        csrf: csrf.clone(),
        next: safe_next(next),
        email,
    }
    .render()
    .unwrap_or_else(|e| format!("template error: {e}"));
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let mut resp = html(status, body);
    let cookie = set_cookie(
        LOGIN_CSRF_COOKIE,
        &csrf,
        "/login",
        3600,
        web.secure_cookies(),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp
}

/// A local path to go to after signing in; anything else becomes `/`.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

pub(super) async fn login(
    web: &Arc<Web>,
    form: &Form,
    sent_cookie: Option<String>,
    remote: IpAddr,
) -> Page {
    let next = form.get("next").unwrap_or("/");
    let email = form.get("email").unwrap_or("").trim().to_ascii_lowercase();
    let csrf_ok = sent_cookie
        .as_ref()
        .is_some_and(|c| Some(c.as_str()) == form.get("csrf") && !c.is_empty());
    if !csrf_ok {
        return message(
            StatusCode::FORBIDDEN,
            Nav::anonymous(),
            "Refused",
            "The sign-in form's CSRF token is missing or wrong. Reload the page and try again.",
        );
    }
    let now = crate::time::now();
    let keys = [format!("ip:{remote}"), format!("account:{email}")];
    if let Some(minutes) = web.throttled(&keys, now) {
        return message(
            StatusCode::TOO_MANY_REQUESTS,
            Nav::anonymous(),
            "Too many sign-in attempts",
            &format!("Too many failed sign-ins; try again in {minutes} minutes."),
        );
    }
    let password = form.get("password").unwrap_or("").to_string();
    let user = web.handle.db.begin_read().ok().and_then(|txn| {
        users::get(&txn.open_table(USERS).ok()?, &email)
            .ok()
            .flatten()
    });
    let verified = match user {
        Some(user) if user.active && !user.password_hash.is_empty() => {
            let hash = user.password_hash.clone();
            tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .unwrap_or(false)
        }
        _ => false,
    };
    if !verified {
        web.failed(&keys, now);
        return render_login(
            web,
            next,
            &email,
            Some("Wrong email or password.".into()),
            None,
            sent_cookie,
        );
    }
    let started = web
        .handle
        .write(move |txn| sessions::start(txn, &email, now));
    match started {
        Ok((token, _)) => {
            let cookie = set_cookie(
                SESSION_COOKIE,
                &token,
                "/",
                sessions::LIFETIME as i64,
                web.secure_cookies(),
            );
            redirect(safe_next(next), &[cookie])
        }
        Err(e) => store_error(Nav::anonymous(), e),
    }
}

pub(super) async fn logout(web: &Arc<Web>, visitor: &Visitor) -> Page {
    let token = visitor.token.clone();
    if let Err(e) = web.handle.write(move |txn| sessions::end(txn, &token)) {
        return store_error(Nav::of(visitor), e);
    }
    let gone = set_cookie(SESSION_COOKIE, "", "/", 0, web.secure_cookies());
    redirect("/login?flash=signed-out", &[gone])
}

//! Signing in and out: server-side sessions behind an HttpOnly cookie, the sign-in form with
//! its double-submit CSRF cookie, and the throttle on failed sign-ins per address and per
//! account. Who the visitor is gets decided here; what they may do, in the management layer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

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

impl Web {
    fn secure_cookies(&self) -> bool {
        self.handle.config.base_url().starts_with("https://")
    }
}

/// Failed sign-ins, remembered in bounded memory (a fixed number of fixed-size entries, keyed
/// by a keyed hash, so long or many emails cost nothing more) and answered with delays that
/// grow with each failure instead of a lock: failures for one account from one address slow
/// that pair down quickly; from one address over many accounts, that address; over many
/// addresses, the account, but only for a short while, so nobody can lock its owner out.
pub struct SignInThrottle {
    seen: Mutex<lru::LruCache<u64, Failures>>,
    keys: std::collections::hash_map::RandomState,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: f64,
}

/// (what is counted, failures before delays begin, the longest delay in seconds).
const PAIR: (u8, u32, f64) = (0, 5, 15.0 * 60.0);
const ADDRESS: (u8, u32, f64) = (1, 30, 15.0 * 60.0);
const ACCOUNT: (u8, u32, f64) = (2, 100, 60.0);
/// Failures are forgotten after this long without another.
const FORGET_AFTER: f64 = 15.0 * 60.0;
/// Entries remembered; past it the least recently failed go.
const REMEMBERED: usize = 65_536;

impl Default for SignInThrottle {
    fn default() -> SignInThrottle {
        SignInThrottle {
            seen: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(REMEMBERED).expect("non-zero"),
            )),
            keys: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl SignInThrottle {
    fn keys(&self, email: &str, address: IpAddr) -> [(u64, u32, f64); 3] {
        use std::hash::BuildHasher;
        let key = |kind: u8, parts: (&str, Option<IpAddr>)| self.keys.hash_one((kind, parts));
        [
            (key(PAIR.0, (email, Some(address))), PAIR.1, PAIR.2),
            (key(ADDRESS.0, ("", Some(address))), ADDRESS.1, ADDRESS.2),
            (key(ACCOUNT.0, (email, None)), ACCOUNT.1, ACCOUNT.2),
        ]
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, lru::LruCache<u64, Failures>> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds to wait before trying again, if a sign-in for `email` from `address` must wait.
    pub fn wait(&self, email: &str, address: IpAddr, now: f64) -> Option<u64> {
        let seen = self.seen();
        self.keys(email, address)
            .iter()
            .filter_map(|(key, free, longest)| {
                let f = seen.peek(key)?;
                if f.count < *free || now - f.last >= FORGET_AFTER {
                    return None;
                }
                let delay = 2f64.powi((f.count - free).min(20) as i32).min(*longest);
                let left = f.last + delay - now;
                (left > 0.0).then(|| left.ceil() as u64)
            })
            .max()
    }

    pub fn failed(&self, email: &str, address: IpAddr, now: f64) {
        let mut seen = self.seen();
        for (key, ..) in self.keys(email, address) {
            let f = seen.get_or_insert_mut(key, || Failures {
                count: 0,
                last: now,
            });
            if now - f.last >= FORGET_AFTER {
                f.count = 0;
            }
            f.count += 1;
            f.last = now;
        }
    }

    /// A successful sign-in forgets that pair's failures.
    pub fn succeeded(&self, email: &str, address: IpAddr) {
        let key = self.keys(email, address)[0].0;
        self.seen().pop(&key);
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.seen().len()
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

    /// The cookie token of this visit's session.
    pub fn session_token(&self) -> &str {
        &self.token
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

/// A local path to go to after signing in; anything else becomes `/`. Browsers drop tabs and
/// newlines from a URL and read `\\` as `/`, so `/\t/host` would leave the site: only plain
/// printable ASCII is taken.
fn safe_next(next: &str) -> &str {
    let plain = next.bytes().all(|b| b.is_ascii_graphic());
    if plain && next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
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
    if let Some(seconds) = web.sign_ins.wait(&email, remote, now) {
        let mut page = message(
            StatusCode::TOO_MANY_REQUESTS,
            Nav::anonymous(),
            "Too many sign-in attempts",
            &format!("Too many failed sign-ins; try again in {seconds} seconds."),
        );
        page.headers_mut()
            .insert("retry-after", HeaderValue::from(seconds));
        return page;
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
        web.sign_ins.failed(&email, remote, now);
        return render_login(
            web,
            next,
            &email,
            Some("Wrong email or password.".into()),
            None,
            sent_cookie,
        );
    }
    web.sign_ins.succeeded(&email, remote);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_failures_slow_down_the_pair_and_stay_bounded() {
        let t = SignInThrottle::default();
        let attacker: IpAddr = "192.0.2.7".parse().unwrap();
        let owner: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(t.wait("admin@example.com", attacker, 100.0), None);
            t.failed("admin@example.com", attacker, 100.0);
        }
        // The sixth try from that address waits, with a delay that grows with each failure.
        assert_eq!(t.wait("admin@example.com", attacker, 100.0), Some(1));
        for _ in 0..5 {
            t.failed("admin@example.com", attacker, 100.0);
        }
        assert_eq!(t.wait("admin@example.com", attacker, 100.0), Some(32));
        // The owner, elsewhere, signs in at once.
        assert_eq!(t.wait("admin@example.com", owner, 100.0), None);
        // Failures are forgotten after a quiet quarter of an hour.
        assert_eq!(t.wait("admin@example.com", attacker, 100.0 + 901.0), None);

        // Failures with 60 KB emails, and more accounts and addresses than it remembers, stay
        // within bounds: entries are keyed by a hash, and the least recent go.
        let long = "x".repeat(60_000);
        for i in 0..100u32 {
            t.failed(&long, IpAddr::from(i.to_be_bytes()), 200.0);
        }
        for i in 0..(REMEMBERED as u32 / 2) {
            t.failed(
                &format!("{i}@example.com"),
                IpAddr::from(i.to_be_bytes()),
                200.0,
            );
        }
        assert_eq!(t.remembered(), REMEMBERED);
    }

    #[test]
    fn only_same_origin_paths_are_followed_after_signing_in() {
        assert_eq!(
            safe_next("/projects/shop/issues/3/?q=a%20b"),
            "/projects/shop/issues/3/?q=a%20b"
        );
        for away in [
            "//evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\\evil.example",
            "https://evil.example",
            "/ /evil.example",
            "",
        ] {
            assert_eq!(safe_next(away), "/", "{away:?}");
        }
    }
}

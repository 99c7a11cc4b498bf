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
use crate::manage::sign_in::{Proof, SecondFactor};
use crate::manage::users::verify_password;
use crate::manage::{Actor, ManageError};
use crate::store::activity::Who;
use crate::store::audit::{self, AuditAction, AuditEntry};
use crate::store::sessions::{self, Session};
use crate::store::users::{self, User};
use crate::store::{SESSIONS, USERS};

pub(super) const SESSION_COOKIE: &str = "picket_session";
pub(super) const LOGIN_CSRF_COOKIE: &str = "picket_csrf";

impl Web {
    pub(super) fn secure_cookies(&self) -> bool {
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

pub(super) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
    secure: bool,
) -> String {
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

impl Web {
    /// Whether this visitor must have two-factor codes: `[auth] require_two_factor` holds
    /// for accounts that signed in with a password (a provider or proxy has its own).
    pub(super) fn two_factor_required(&self, visitor: &Visitor) -> bool {
        self.handle.config.auth.require_two_factor
            && matches!(visitor.session.method.as_str(), "password" | "")
    }
}

/// The visitor of a request, read once: signed in, or (the second) whose password was right
/// and who still owes a two-factor code.
pub(super) fn visitors(web: &Web, req: &Request<Incoming>) -> (Option<Visitor>, Option<Visitor>) {
    match signed_in(web, req) {
        Some(v) if v.session.awaiting_code => (None, Some(v)),
        signed_in => (signed_in, None),
    }
}

/// The visitor's session, whether signed in or still awaiting a two-factor code.
fn signed_in(web: &Web, req: &Request<Incoming>) -> Option<Visitor> {
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

/// The email a trusted proxy's header names, when the request comes from one of
/// `[auth] trusted_proxies` (from anywhere else the header is ignored).
pub(super) fn proxy_identity(web: &Web, req: &Request<Incoming>, peer: IpAddr) -> Option<String> {
    let auth = &web.handle.config.auth;
    if auth.trusted_header.is_empty() || !auth.trusted_proxies.iter().any(|r| r.contains(peer)) {
        return None;
    }
    let email = req
        .headers()
        .get(auth.trusted_header.as_str())?
        .to_str()
        .ok()?
        .trim()
        .to_ascii_lowercase();
    (!email.is_empty()).then_some(email)
}

/// Signs in the user a trusted proxy names: a new session, then the same page again.
pub(super) async fn proxy_sign_in(
    web: &Arc<Web>,
    email: String,
    old: Option<String>,
    path: &str,
    peer: IpAddr,
) -> Page {
    let identity = crate::identity::oidc::Identity {
        issuer: String::new(),
        subject: email.clone(),
        email,
        email_verified: true,
        groups: Vec::new(),
    };
    let handle = web.handle.clone();
    let account = tokio::task::spawn_blocking(move || {
        crate::manage::sign_in::account_for(&handle, &identity, Proof::Proxy, peer)
    })
    .await
    .unwrap_or_else(|e| Err(ManageError::Storage(format!("internal error: {e}"))));
    match account {
        Ok(user) => start_session(web, &user.email, Proof::Proxy.method(), old, path),
        Err(e) => refused_sign_in(&e),
    }
}

/// A sign-in the management layer refused, saying why.
pub(super) fn refused_sign_in(e: &ManageError) -> Page {
    let status = match e {
        ManageError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::FORBIDDEN,
    };
    message(status, Nav::anonymous(), "Sign-in refused", &e.to_string())
}

/// Starts a full session (ending `old`, the browser's previous one: signing in rotates the
/// session id) and goes to `next` with its cookie.
pub(super) fn start_session(
    web: &Web,
    email: &str,
    method: &'static str,
    old: Option<String>,
    next: &str,
) -> Page {
    match open_session(web, email, Some(method), old, None) {
        Ok(cookie) => redirect(safe_next(next), &[cookie]),
        Err(e) => store_error(Nav::anonymous(), e),
    }
}

/// Ends `old` and starts a session signed in by `method` (or, without one, a session that
/// waits for a two-factor code), recording `audit` in the same transaction; the cookie that
/// carries it.
fn open_session(
    web: &Web,
    email: &str,
    method: Option<&'static str>,
    old: Option<String>,
    audit: Option<AuditEntry>,
) -> Result<String, crate::store::StoreError> {
    let now = crate::time::now();
    let email = email.to_string();
    let (token, _) = web.handle.write(move |txn| {
        if let Some(old) = old {
            sessions::end(txn, &old)?;
        }
        if let Some(entry) = &audit {
            audit::record(txn, entry)?;
        }
        match method {
            Some(method) => sessions::start(txn, &email, now, method),
            None => sessions::start_awaiting_code(txn, &email, now),
        }
    })?;
    let lifetime = if method.is_some() {
        sessions::LIFETIME
    } else {
        sessions::CODE_WAIT
    };
    Ok(set_cookie(
        SESSION_COOKIE,
        &token,
        "/",
        lifetime as i64,
        web.secure_cookies(),
    ))
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
        Some("code-expired") => {
            Some("The sign-in waited too long for its code; sign in again.".into())
        }
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
        next_encoded: String,
        email: &'a str,
        /// "Sign in with …", when single sign-on is on.
        sso_label: Option<String>,
        /// The password form is shown.
        passwords: bool,
        /// "Forgot password?" is offered (mail is configured).
        forgot: bool,
    }
    let config = &web.handle.config;
    let csrf = login_csrf(token);
    let mut nav = Nav::anonymous();
    nav.error = error.clone();
    nav.flash = flash;
    let body = Login {
        nav,
        csrf: csrf.clone(),
        next: safe_next(next),
        next_encoded: form_urlencoded::byte_serialize(safe_next(next).as_bytes()).collect(),
        email,
        sso_label: config
            .oidc
            .enabled()
            .then(|| config.oidc.button_label.clone()),
        passwords: config.oidc.password_login
            || !config.oidc.enabled()
            || !config.oidc.break_glass_admin.is_empty(),
        forgot: !config.smtp_url.is_empty() && config.oidc.password_login,
    }
    .render()
    .unwrap_or_else(|e| format!("template error: {e}"));
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    with_login_cookie(web, html(status, body), &csrf)
}

/// The CSRF token of the forms before signing in: the browser's login cookie when it has one
/// (a second tab must not invalidate the first form), else a new one.
pub(super) fn login_csrf(token: Option<String>) -> String {
    token
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| users::new_token().0)
}

/// The page with the login cookie holding `csrf` (sent back to every form under `/login`).
pub(super) fn with_login_cookie(web: &Web, mut resp: Page, csrf: &str) -> Page {
    let cookie = set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
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
pub(super) fn safe_next(next: &str) -> &str {
    let plain = next.bytes().all(|b| b.is_ascii_graphic());
    if plain && next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/"
    }
}

/// Refuses a form whose double-submit CSRF token does not match the browser's login cookie.
pub(super) fn login_csrf_ok(form: &Form, sent_cookie: &Option<String>) -> bool {
    sent_cookie
        .as_ref()
        .is_some_and(|c| Some(c.as_str()) == form.get("csrf") && !c.is_empty())
}

pub(super) fn csrf_refused() -> Page {
    message(
        StatusCode::FORBIDDEN,
        Nav::anonymous(),
        "Refused",
        "The sign-in form's CSRF token is missing or wrong. Reload the page and try again.",
    )
}

/// "Try again in N seconds", when the throttle says so.
pub(super) fn throttled(seconds: u64, what: &str) -> Page {
    let mut page = message(
        StatusCode::TOO_MANY_REQUESTS,
        Nav::anonymous(),
        "Too many attempts",
        &format!("Too many failed {what}; try again in {seconds} seconds."),
    );
    page.headers_mut()
        .insert("retry-after", HeaderValue::from(seconds));
    page
}

pub(super) async fn login(
    web: &Arc<Web>,
    req_session: Option<String>,
    form: &Form,
    sent_cookie: Option<String>,
    remote: IpAddr,
) -> Page {
    let next = form.get("next").unwrap_or("/");
    let email = form.get("email").unwrap_or("").trim().to_ascii_lowercase();
    if !login_csrf_ok(form, &sent_cookie) {
        return csrf_refused();
    }
    let now = crate::time::now();
    if let Some(seconds) = web.sign_ins.wait(&email, remote, now) {
        return throttled(seconds, "sign-ins");
    }
    let password = form.get("password").unwrap_or("").to_string();
    let user = web.handle.db.begin_read().ok().and_then(|txn| {
        users::get(&txn.open_table(USERS).ok()?, &email)
            .ok()
            .flatten()
    });
    let passwords_on = web.handle.config.oidc.password_allowed(&email);
    let verified = match &user {
        Some(user) if user.active && !user.password_hash.is_empty() && passwords_on => {
            let hash = user.password_hash.clone();
            tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .unwrap_or(false)
        }
        _ => false,
    };
    if !verified {
        web.sign_ins.failed(&email, remote, now);
        let why = if passwords_on {
            "wrong email or password"
        } else {
            "password sign-in is off"
        };
        let h = web.handle.clone();
        let subject = email.clone();
        let _ = tokio::task::spawn_blocking(move || {
            crate::manage::sign_in::record(
                &h,
                None,
                AuditAction::SignInFailed,
                &subject,
                remote,
                why,
            )
        })
        .await;
        let shown = if passwords_on {
            "Wrong email or password."
        } else {
            "Password sign-in is off: sign in with single sign-on."
        };
        return render_login(web, next, &email, Some(shown.into()), None, sent_cookie);
    }
    web.sign_ins.succeeded(&email, remote);
    // With two-factor codes, the session waits for the code (and opens nothing else); the
    // sign-in is recorded once the code is right.
    let needs_code = user.as_ref().is_some_and(|u| u.has_two_factor());
    let signed_in = (!needs_code).then(|| {
        AuditEntry::new(Some(Who::User(email.clone())), AuditAction::SignIn, &email)
            .detail("password")
            .from_address(remote)
    });
    let method = (!needs_code).then_some("password");
    match open_session(web, &email, method, req_session, signed_in) {
        Ok(cookie) if needs_code => {
            let next: String =
                form_urlencoded::byte_serialize(safe_next(next).as_bytes()).collect();
            redirect(&format!("/login/code?next={next}"), &[cookie])
        }
        Ok(cookie) => redirect(safe_next(next), &[cookie]),
        Err(e) => store_error(Nav::anonymous(), e),
    }
}

#[derive(Template)]
#[template(path = "login_code.html")]
struct CodePage<'a> {
    nav: Nav,
    csrf: &'a str,
    next: &'a str,
    email: &'a str,
}

/// The form for the two-factor code, for a session whose password was right.
pub(super) fn code_page(awaiting: Option<Visitor>, query: &HashMap<String, String>) -> Page {
    let Some(visitor) = awaiting else {
        return redirect("/login?flash=code-expired", &[]);
    };
    let next = query.get("next").map(String::as_str).unwrap_or("/");
    super::render(CodePage {
        nav: Nav::anonymous(),
        csrf: &visitor.session.csrf,
        next: safe_next(next),
        email: &visitor.user.email,
    })
}

/// Checks the two-factor (or recovery) code; a right one turns the waiting session into a
/// new, full one.
pub(super) async fn code(
    web: &Arc<Web>,
    awaiting: Option<Visitor>,
    form: &Form,
    remote: IpAddr,
) -> Page {
    let Some(visitor) = awaiting else {
        return redirect("/login?flash=code-expired", &[]);
    };
    if form.get("csrf") != Some(visitor.session.csrf.as_str()) {
        return csrf_refused();
    }
    let email = visitor.user.email.clone();
    let now = crate::time::now();
    if let Some(seconds) = web.codes.wait(&email, remote, now) {
        return throttled(seconds, "codes");
    }
    let next = form.get("next").unwrap_or("/").to_string();
    let code = form.get("code").unwrap_or("").to_string();
    let (h, e) = (web.handle.clone(), email.clone());
    let checked = tokio::task::spawn_blocking(move || {
        crate::manage::sign_in::check_second_factor(&h, &e, &code, remote)
    })
    .await
    .unwrap_or_else(|e| Err(ManageError::Storage(format!("internal error: {e}"))));
    match checked {
        Ok(how) => {
            web.codes.succeeded(&email, remote);
            let method = match how {
                SecondFactor::Code => "two_factor",
                SecondFactor::RecoveryCode => "recovery_code",
            };
            start_session(web, &email, method, Some(visitor.token.clone()), &next)
        }
        Err(ManageError::Invalid(why)) => {
            web.codes.failed(&email, remote, now);
            let mut nav = Nav::anonymous();
            nav.error = Some(why);
            let mut page = super::render(CodePage {
                nav,
                csrf: &visitor.session.csrf,
                next: safe_next(&next),
                email: &email,
            });
            *page.status_mut() = StatusCode::UNAUTHORIZED;
            page
        }
        Err(e) => super::manage_error(Nav::anonymous(), &e),
    }
}

pub(super) async fn logout(web: &Arc<Web>, visitor: &Visitor) -> Page {
    let token = visitor.token.clone();
    let who = Some(visitor.actor().who());
    let entry = AuditEntry::new(who, AuditAction::SignOut, &visitor.user.email);
    if let Err(e) = web.handle.write(move |txn| {
        sessions::end(txn, &token)?;
        audit::record(txn, &entry).map(|_| ())
    }) {
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

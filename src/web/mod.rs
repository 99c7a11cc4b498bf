//! The web UI, served by the same hyper server and port as intake: sign-in with server-side
//! sessions, the projects page, the issue list, the issue page with the event, project settings
//! and user administration. Pages are askama templates compiled into the binary (every value
//! escaped), with one stylesheet and no JavaScript; a strict Content-Security-Policy forbids
//! scripts altogether. Every form carries a CSRF token; sign-in attempts are throttled per
//! address and per account. Buttons go through the same management requests as the CLI.

mod charts;
pub mod pages;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, LOCATION, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use redb::ReadableDatabase;

use crate::control::Handle;
use crate::pipeline::Stats;
use crate::store::key_cache::KeyCache;
use crate::store::sessions::{self, Session};
use crate::store::users::{self, User};
use crate::store::{SESSIONS, StoreError, USERS};

pub type Page = Response<Full<Bytes>>;

const SESSION_COOKIE: &str = "picket_session";
const LOGIN_CSRF_COOKIE: &str = "picket_csrf";
/// Largest form body accepted.
const MAX_FORM: usize = 64 * 1024;
/// Failed sign-ins allowed per address and per account within the window.
const MAX_FAILURES: u32 = 10;
const FAILURE_WINDOW: f64 = 15.0 * 60.0;

/// What the web UI needs of the running server.
pub struct Web {
    pub handle: Handle,
    pub keys: Arc<KeyCache>,
    pub stats: Arc<Stats>,
    /// Failed sign-ins by "ip:…" and "account:…": (failures, first failure).
    failures: Mutex<HashMap<String, (u32, f64)>>,
    /// Each issue's charts and tag distributions, by its event count (and the hour, for the
    /// charts' window), so issue pages stay fast while events stream in.
    aggregates: Mutex<lru::LruCache<AggregatesKey, Arc<pages::Aggregates>>>,
    /// Each project's issues as of some commit, refreshed by re-reading only the issues that
    /// later commits changed.
    snapshots: Mutex<HashMap<u64, Arc<pages::IssueSnapshot>>>,
}

#[derive(Hash, PartialEq, Eq, Clone, Debug)]
struct AggregatesKey {
    project: u64,
    issue: u64,
    count: u64,
    hour: u64,
}

impl Web {
    pub fn new(handle: Handle, keys: Arc<KeyCache>, stats: Arc<Stats>) -> Web {
        Web {
            handle,
            keys,
            stats,
            failures: Mutex::new(HashMap::new()),
            aggregates: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(256).unwrap_or(NonZeroUsize::MIN),
            )),
            snapshots: Mutex::new(HashMap::new()),
        }
    }

    fn aggregates(
        &self,
        key: AggregatesKey,
        make: impl FnOnce() -> Result<pages::Aggregates, StoreError>,
    ) -> Result<Arc<pages::Aggregates>, StoreError> {
        let hit = self
            .aggregates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(hit) = hit {
            return Ok(hit);
        }
        let value = Arc::new(make()?);
        self.aggregates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .put(key, value.clone());
        Ok(value)
    }

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

/// What every page's layout shows.
pub struct Nav {
    pub user: Option<String>,
    pub admin: bool,
    pub csrf: String,
    pub flash: Option<String>,
    pub error: Option<String>,
}

impl Nav {
    fn anonymous() -> Nav {
        Nav {
            user: None,
            admin: false,
            csrf: String::new(),
            flash: None,
            error: None,
        }
    }

    fn of(visitor: &Visitor) -> Nav {
        Nav {
            user: Some(visitor.user.email.clone()),
            admin: visitor.user.is_admin,
            csrf: visitor.session.csrf.clone(),
            flash: None,
            error: None,
        }
    }
}

/// A page with the headers every UI response carries.
pub fn page(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Page {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(content_type));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}

pub fn html(status: StatusCode, body: String) -> Page {
    page(status, "text/html; charset=utf-8", body)
}

fn redirect(location: &str, cookies: &[String]) -> Page {
    let mut resp = page(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(LOCATION, v);
    }
    for cookie in cookies {
        if let Ok(v) = HeaderValue::from_str(cookie) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
    resp
}

/// A plain page saying something (not found, forbidden, …).
pub fn message(status: StatusCode, nav: Nav, heading: &str, text: &str) -> Page {
    use askama::Template;
    #[derive(Template)]
    #[template(path = "message.html")]
    struct Message<'a> {
        nav: Nav,
        heading: &'a str,
        text: &'a str,
    }
    let body = Message { nav, heading, text }
        .render()
        .unwrap_or_else(|e| format!("template error: {e}"));
    html(status, body)
}

fn not_found(nav: Nav) -> Page {
    message(
        StatusCode::NOT_FOUND,
        nav,
        "Not found",
        "There is no such page, or you may not see it.",
    )
}

fn store_error(nav: Nav, e: &StoreError) -> Page {
    let status = match e {
        StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::Invalid(_) | StoreError::Conflict(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    message(status, nav, "That did not work", &e.to_string())
}

/// A submitted form's fields (first value of each, plus all values of repeated ones).
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form {
            fields: form_urlencoded::parse(body).into_owned().collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.fields
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn cookie(req: &Request<Incoming>, name: &str) -> Option<String> {
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

/// The query string as pairs.
pub fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Whether a path belongs to the web UI rather than to intake.
pub fn is_ui_path(path: &str) -> bool {
    !(path.starts_with("/api/") || path == "/api" || path == "/health" || path == "/metrics")
}

fn visitor(web: &Web, req: &Request<Incoming>) -> Option<Visitor> {
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

/// Serves one UI request.
pub async fn handle(web: Arc<Web>, req: Request<Incoming>, remote: IpAddr) -> Page {
    let path = req.uri().path().to_string();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method().clone();
    if method == Method::GET && seg.as_slice() == ["static", "picket.css"] {
        let mut resp = page(
            StatusCode::OK,
            "text/css; charset=utf-8",
            include_str!("picket.css"),
        );
        resp.headers_mut()
            .insert("cache-control", HeaderValue::from_static("max-age=3600"));
        return resp;
    }
    let visitor = visitor(&web, &req);
    let query = query(&req);
    let login_cookie = cookie(&req, LOGIN_CSRF_COOKIE);
    let form = if method == Method::POST {
        match Limited::new(req.into_body(), MAX_FORM).collect().await {
            Ok(body) => Form::parse(&body.to_bytes()),
            Err(_) => {
                return message(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Nav::anonymous(),
                    "Too large",
                    "The form is larger than picket accepts.",
                );
            }
        }
    } else {
        Form { fields: Vec::new() }
    };
    // Forms without a session: signing in (double-submit cookie) and setting a password with a
    // one-time link (the link is the secret).
    match (&method, seg.as_slice()) {
        (&Method::GET, ["login"]) => {
            return login_page(&web, &query, visitor.is_some(), login_cookie);
        }
        (&Method::GET, ["favicon.ico"]) => {
            return page(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "");
        }
        (&Method::POST, ["login"]) => {
            return login(&web, &form, login_cookie.clone(), remote).await;
        }
        (&Method::GET, ["set-password", token]) => return pages::set_password_page(&web, token),
        (&Method::POST, ["set-password", token]) => {
            return pages::set_password(&web, token, &form).await;
        }
        _ => {}
    }
    let Some(visitor) = visitor else {
        if method == Method::GET {
            let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>();
            return redirect(&format!("/login?next={next}"), &[]);
        }
        return message(
            StatusCode::FORBIDDEN,
            Nav::anonymous(),
            "Signed out",
            "Sign in again, then repeat what you were doing.",
        );
    };
    if method == Method::POST && form.get("csrf") != Some(visitor.session.csrf.as_str()) {
        return message(
            StatusCode::FORBIDDEN,
            Nav::of(&visitor),
            "Refused",
            "The form's CSRF token is missing or wrong. Reload the page and try again.",
        );
    }
    match (&method, seg.as_slice()) {
        (&Method::POST, ["logout"]) => logout(&web, &visitor).await,
        (&Method::GET, []) => pages::projects(&web, &visitor),
        (&Method::GET, ["account"]) => pages::account(&web, &visitor, None),
        (&Method::POST, ["account"]) => pages::change_password(&web, &visitor, &form).await,
        (&Method::GET, ["admin", "users"]) => pages::users(&web, &visitor, None),
        (&Method::POST, ["admin", "users", action]) => {
            pages::user_action(&web, &visitor, action, &form).await
        }
        (&Method::GET, ["projects", slug]) => pages::issue_list(&web, &visitor, slug, &query),
        (&Method::POST, ["projects", slug, "issues", "bulk"]) => {
            pages::bulk(&web, &visitor, slug, &form).await
        }
        (&Method::GET, ["projects", slug, "issues", id]) => {
            pages::issue_page(&web, &visitor, slug, id, &query)
        }
        (&Method::POST, ["projects", slug, "issues", id, "status"]) => {
            pages::issue_status(&web, &visitor, slug, id, &form).await
        }
        (&Method::GET, ["projects", slug, "events", file]) => {
            pages::raw_event(&web, &visitor, slug, file)
        }
        (&Method::GET, ["projects", slug, "settings"]) => pages::settings(&web, &visitor, slug),
        (&Method::POST, ["projects", slug, "settings", action]) => {
            pages::settings_action(&web, &visitor, slug, action, &form).await
        }
        _ => not_found(Nav::of(&visitor)),
    }
}

fn login_page(
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
    use askama::Template;
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

async fn login(web: &Arc<Web>, form: &Form, sent_cookie: Option<String>, remote: IpAddr) -> Page {
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
            tokio::task::spawn_blocking(move || users::verify_password(&password, &hash))
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
        Err(e) => store_error(Nav::anonymous(), &e),
    }
}

async fn logout(web: &Arc<Web>, visitor: &Visitor) -> Page {
    let token = visitor.token.clone();
    if let Err(e) = web.handle.write(move |txn| sessions::end(txn, &token)) {
        return store_error(Nav::of(visitor), &e);
    }
    let gone = set_cookie(SESSION_COOKIE, "", "/", 0, web.secure_cookies());
    redirect("/login?flash=signed-out", &[gone])
}

//! The web UI, served by the same hyper server and port as intake: sign-in with server-side
//! sessions, the projects page, the issue list, the issue page with the event, project settings
//! and user administration. Pages are askama templates compiled into the binary (every value
//! escaped), with one stylesheet and one small script of picket's own (live updates; every
//! page works without it); a strict Content-Security-Policy allows no inline script or style
//! and nothing from another origin. Every form carries a CSRF token; sign-in attempts are throttled per
//! address and per account. Every button is a management operation applied on behalf of the
//! signed-in user, so the management layer alone decides what they may do.
//!
//! This file holds what every page shares (the [`Web`] state, the layout's [`Nav`], responses
//! and forms); `routes` maps requests to pages, `sessions` signs people in and out, and one
//! module per page family reads what its pages show.

mod accounts;
mod charts;
mod feedback;
mod issue;
mod issue_events;
mod issues;
mod live;
mod monitors;
mod projects;
mod releases;
mod routes;
mod sessions;
mod settings;
mod snapshot;
mod sourcemaps;
mod sso;
mod triage;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use askama::Template;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, LOCATION, SET_COOKIE};
use hyper::{Request, Response, StatusCode};

use crate::manage::{Handle, ManageError};
use crate::pipeline::Stats;
use crate::store::StoreError;

pub use issue::Aggregates;
pub use routes::{handle, is_ui_path};
pub use sessions::Visitor;
pub use snapshot::IssueSnapshot;

/// Pages rendered outside a request, for the benchmarks.
pub mod pages {
    pub use super::issue::issue_page;
    pub use super::issue_events::events_page as issue_events;
    pub use super::issues::issue_list;
    pub use super::live::live;
    pub use super::projects::projects;
}

pub type Page = Response<Full<Bytes>>;

/// What the web UI needs of the running server.
pub struct Web {
    pub handle: Handle,
    pub stats: Arc<Stats>,
    /// Failed sign-ins, and how long the next must wait.
    sign_ins: sessions::SignInThrottle,
    /// Wrong two-factor codes, likewise.
    codes: sessions::SignInThrottle,
    /// Password-reset requests, likewise (each one counts).
    resets: sessions::SignInThrottle,
    /// The single sign-on provider, when `[oidc]` configures one.
    sso: Option<crate::identity::oidc::Provider>,
    sso_pending: sso::PendingSignIns,
    /// Mail for password resets, when `smtp_url` is set.
    mailer: Option<crate::alert::mail::Mailer>,
    /// Each issue's charts and tag distributions, by its event count (and the hour, for the
    /// charts' window), so issue pages stay fast while events stream in.
    aggregates: Mutex<lru::LruCache<AggregatesKey, Arc<Aggregates>>>,
    /// Each project's issues as of some commit, refreshed by re-reading only the issues that
    /// later commits changed.
    snapshots: Mutex<HashMap<u64, Arc<IssueSnapshot>>>,
}

#[derive(Hash, PartialEq, Eq, Clone, Debug)]
struct AggregatesKey {
    project: u64,
    issue: u64,
    count: u64,
    hour: u64,
}

impl Web {
    pub fn new(handle: Handle, stats: Arc<Stats>) -> Web {
        let config = handle.config.clone();
        let sso = crate::identity::oidc::Provider::new(&config).unwrap_or_else(|e| {
            tracing::error!("single sign-on is off: {e}");
            None
        });
        let mailer = (!config.smtp_url.is_empty())
            .then(|| {
                crate::alert::mail::Mailer::new(
                    &config.smtp_url,
                    &config.mail_from,
                    config.alerts.smtp_timeout.0,
                )
                .map_err(|e| tracing::error!("password-reset mail is off: {e}"))
                .ok()
            })
            .flatten();
        Web {
            handle,
            stats,
            sign_ins: sessions::SignInThrottle::default(),
            codes: sessions::SignInThrottle::default(),
            resets: sessions::SignInThrottle::default(),
            sso,
            sso_pending: sso::PendingSignIns::default(),
            mailer,
            aggregates: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(256).unwrap_or(NonZeroUsize::MIN),
            )),
            snapshots: Mutex::new(HashMap::new()),
        }
    }

    fn aggregates(
        &self,
        key: AggregatesKey,
        make: impl FnOnce() -> Result<Aggregates, StoreError>,
    ) -> Result<Arc<Aggregates>, StoreError> {
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

    /// Applies a management operation as the visitor; a failure becomes the page saying why.
    async fn act<O>(&self, visitor: &Visitor, op: O) -> Result<O::Answer, Page>
    where
        O: crate::manage::Operation + Send + 'static,
        O::Answer: Send + 'static,
    {
        self.handle
            .run_async(visitor.actor(), op)
            .await
            .map_err(|e| manage_error(Nav::of(visitor), &e))
    }

    /// The project a visitor may see, by slug; `None` for a project that does not exist and
    /// for one the visitor may not see, alike.
    fn visible_project(
        &self,
        visitor: &Visitor,
        slug: &str,
    ) -> Option<crate::store::projects::Project> {
        self.handle.project(&visitor.actor(), slug).ok()
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
            "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
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

fn render(t: impl Template) -> Page {
    match t.render() {
        Ok(body) => html(StatusCode::OK, body),
        Err(e) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("template error: {e}"),
        ),
    }
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

fn store_error(nav: Nav, e: StoreError) -> Page {
    manage_error(nav, &e.into())
}

fn manage_error(nav: Nav, e: &ManageError) -> Page {
    let status = match e {
        ManageError::NotFound(_) => StatusCode::NOT_FOUND,
        ManageError::Invalid(_) | ManageError::Conflict(_) => StatusCode::BAD_REQUEST,
        ManageError::Forbidden(_) => StatusCode::FORBIDDEN,
        ManageError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    message(status, nav, "That did not work", &e.to_string())
}

/// "3 minutes ago".
fn ago(t: f64) -> String {
    let secs = (crate::time::now() - t).max(0.0) as u64;
    let (n, unit) = match secs {
        0..=59 => return "just now".into(),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        86_400..=2_591_999 => (secs / 86_400, "day"),
        _ => (secs / 2_592_000, "month"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn now_hour() -> u64 {
    (crate::time::now() / 3600.0) as u64
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

    fn empty() -> Form {
        Form { fields: Vec::new() }
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

    /// A field trimmed, or "".
    fn field(&self, name: &str) -> String {
        self.get(name).unwrap_or("").trim().to_string()
    }
}

/// The query string as pairs.
pub fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

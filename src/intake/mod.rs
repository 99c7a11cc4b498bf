//! Intake: everything between the wire and the queue that needs no database. Routing,
//! credentials (checked against the store's in-memory key cache), rate limits, body decoding
//! and envelope parsing are here; normalization (`event`) and grouping and compression
//! (`pipeline::Arrival`) are called from here. All of it runs on the async workers and in
//! parallel, so that a rejected request costs little and the writer only ever sees events that
//! are ready to store.

pub mod auth;
pub mod cron;
pub mod decode;
pub mod dialog;
pub mod disk;
pub mod envelope;
pub mod http;
pub mod items;
pub mod ratelimit;
pub mod sessions;
pub mod udp;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::conn::BodyError;
use crate::event::NormalizeError;
use crate::store::outcomes::{OutcomeKey, Source};
use auth::AuthError;
use decode::DecodeError;
use envelope::EnvelopeError;

/// Seconds a client is asked to wait while the disk is nearly full.
const DISK_FULL_RETRY: u64 = 10;

/// An ingest route, from the request path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/api/{id}/store/`, or `/api/store/` where the key names the project.
    Store { project: Option<u64> },
    /// `/api/{id}/envelope/`.
    Envelope { project: u64 },
}

/// Everything intake refuses, each with the status and message the client sees.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("bad envelope authentication header: {0}")]
    EnvelopeAuth(String),
    #[error("bad project path parameter")]
    BadProjectPath,
    #[error("{0}")]
    Dialog(&'static str),
    #[error("event submission rejected: {0}")]
    Rejected(&'static str),
    #[error("empty request body")]
    EmptyBody,
    #[error("request body exceeds the limit of {limit} bytes ({name})")]
    TooLarge { name: &'static str, limit: u64 },
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Envelope(#[from] EnvelopeError),
    #[error("{0}")]
    Event(#[from] NormalizeError),
    #[error("{0}")]
    ClientReport(#[from] items::ClientReportError),
    #[error("{0}")]
    Session(#[from] sessions::SessionError),
    #[error("{0}")]
    CheckIn(#[from] crate::monitors::checkin::CheckInError),
    /// A check-in for a monitor that does not exist, or one too many.
    #[error("{0}")]
    Monitor(String),
    #[error("{0} header mismatch between envelope and request")]
    HeaderMismatch(&'static str),
    #[error("{0}")]
    Body(#[from] crate::conn::BodyError),
    #[error("could not schedule event processing: the queue is full")]
    QueueFull,
    #[error("not enough free disk space to store events (retention.min_free_disk); retry later")]
    DiskFull,
    #[error("rate limit of the {} exceeded; retry after {retry_after} s", if *.scope == ratelimit::Scope::Key { "client key" } else { "server" })]
    RateLimited {
        scope: ratelimit::Scope,
        retry_after: u64,
    },
    #[error("could not store the event: {0}")]
    Unavailable(String),
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("UDP receive failed: {0}")]
    Receive(std::io::Error),
}

impl IntakeError {
    pub fn status(&self) -> u16 {
        match self {
            IntakeError::Auth(AuthError::UnsupportedVersion(_)) => 400,
            IntakeError::Auth(_) | IntakeError::EnvelopeAuth(_) => 401,
            IntakeError::Rejected(_) => 403,
            IntakeError::TooLarge { .. }
            | IntakeError::Decode(DecodeError::TooLarge { .. })
            | IntakeError::Body(BodyError::TooLarge { .. }) => 413,
            IntakeError::Body(BodyError::TooSlow { .. }) => 408,
            IntakeError::Decode(DecodeError::UnknownEncoding(_)) => 415,
            IntakeError::QueueFull
            | IntakeError::Unavailable(_)
            | IntakeError::Receive(_)
            | IntakeError::Body(BodyError::Busy) => 503,
            IntakeError::RateLimited { .. } | IntakeError::DiskFull => 429,
            IntakeError::Event(NormalizeError::TooDeep { .. }) => 413,
            IntakeError::NotFound | IntakeError::Monitor(_) => 404,
            IntakeError::MethodNotAllowed => 405,
            _ => 400,
        }
    }

    /// Headers that tell the client when to come back.
    pub fn retry_headers(&self) -> Vec<(&'static str, String)> {
        match self {
            IntakeError::RateLimited { scope, retry_after } => vec![
                ("retry-after", retry_after.to_string()),
                (
                    "x-sentry-rate-limits",
                    format!("{retry_after}::{}", scope.as_str()),
                ),
            ],
            IntakeError::QueueFull | IntakeError::Body(BodyError::Busy) => {
                vec![("retry-after", "1".to_string())]
            }
            IntakeError::DiskFull => vec![
                ("retry-after", DISK_FULL_RETRY.to_string()),
                (
                    "x-sentry-rate-limits",
                    format!("{DISK_FULL_RETRY}::organization"),
                ),
            ],
            _ => Vec::new(),
        }
    }

    /// A short stable name for counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            IntakeError::Auth(_) | IntakeError::EnvelopeAuth(_) => "auth",
            IntakeError::Rejected(_) => "rejected_key",
            IntakeError::BadProjectPath | IntakeError::NotFound | IntakeError::MethodNotAllowed => {
                "route"
            }
            IntakeError::TooLarge { .. } | IntakeError::Decode(DecodeError::TooLarge { .. }) => {
                "too_large"
            }
            IntakeError::Decode(_) | IntakeError::Body(_) | IntakeError::EmptyBody => "bad_body",
            IntakeError::Envelope(_)
            | IntakeError::HeaderMismatch(_)
            | IntakeError::ClientReport(_)
            | IntakeError::Session(_)
            | IntakeError::CheckIn(_) => "bad_envelope",
            IntakeError::Monitor(_) => "unknown_monitor",
            IntakeError::Event(_) | IntakeError::Dialog(_) => "bad_event",
            IntakeError::QueueFull => "queue_full",
            IntakeError::DiskFull => "disk_full",
            IntakeError::RateLimited { .. } => "rate_limited",
            IntakeError::Unavailable(_) | IntakeError::Receive(_) => "unavailable",
        }
    }
}

/// What intake has seen since start: events accepted, requests refused by reason, UDP
/// datagrams dropped by reason, and envelope items accepted but not kept (sessions, client
/// reports, transactions…) by type.
#[derive(Default)]
pub struct Counters {
    /// Events acknowledged: HTTP ones once committed, UDP ones once queued.
    pub events_accepted: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    udp_dropped: Mutex<BTreeMap<&'static str, u64>>,
    dropped_items: Mutex<BTreeMap<String, u64>>,
    /// Events inbound filters dropped, by reason.
    filtered: Mutex<BTreeMap<&'static str, u64>>,
    /// What was dropped per project, waiting to be counted in the data file.
    outcomes: Mutex<HashMap<OutcomeKey, u64>>,
}

/// Distinct per-project drop counters waiting to be written; past it, new ones wait for the
/// next flush under `other`.
const MAX_PENDING_OUTCOMES: usize = 10_000;

/// Item types are client-chosen strings; past this many distinct ones, the rest count as "other".
const MAX_ITEM_TYPES: usize = 64;

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    *map.entry(key).or_default() += 1;
}

fn copy<K: Ord + Clone>(map: &Mutex<BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    map.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

impl Counters {
    pub fn accept_event(&self) {
        self.events_accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reject(&self, reason: &'static str) {
        bump(&self.rejected, reason);
    }

    pub fn drop_udp(&self, reason: &'static str) {
        bump(&self.udp_dropped, reason);
    }

    /// Counts `n` of `category` that `project` did not keep, and why.
    pub fn count_outcome(
        &self,
        project: u64,
        source: Source,
        category: &str,
        reason: &str,
        n: u64,
    ) {
        let mut map = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = OutcomeKey {
            project,
            source,
            category: category.to_string(),
            reason: reason.to_string(),
        };
        if map.len() >= MAX_PENDING_OUTCOMES && !map.contains_key(&key) {
            key.category = "other".into();
            key.reason = "other".into();
        }
        *map.entry(key).or_default() += n;
    }

    /// Takes the per-project drop counts waiting to be written.
    pub fn take_outcomes(&self) -> HashMap<OutcomeKey, u64> {
        std::mem::take(&mut *self.outcomes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts back counts that could not be written yet.
    pub fn restore_outcomes(&self, counts: HashMap<OutcomeKey, u64>) {
        let mut map = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        for (k, n) in counts {
            *map.entry(k).or_default() += n;
        }
    }

    /// Counts an item of type `ty` that `project` accepted and does not keep.
    pub fn drop_item(&self, project: u64, ty: &str) {
        let ty = items::label(ty);
        self.count_outcome(project, Source::Server, &ty, "not_stored", 1);
        let ty = ty.as_str();
        let known = self.dropped_items.lock().unwrap_or_else(|e| e.into_inner());
        let key = if known.contains_key(ty) || known.len() < MAX_ITEM_TYPES {
            ty
        } else {
            "other"
        };
        drop(known);
        bump(&self.dropped_items, key.to_string());
    }

    /// Counts an event a project's inbound filters dropped.
    pub fn filtered(&self, project: u64, reason: crate::event::filters::FilterReason) {
        let reason = reason.as_str();
        self.count_outcome(
            project,
            Source::Server,
            "error",
            &format!("filtered:{reason}"),
            1,
        );
        bump(&self.filtered, reason);
    }

    pub fn filtered_by_reason(&self) -> BTreeMap<&'static str, u64> {
        copy(&self.filtered)
    }

    pub fn rejected(&self) -> BTreeMap<&'static str, u64> {
        copy(&self.rejected)
    }

    pub fn udp_dropped(&self) -> BTreeMap<&'static str, u64> {
        copy(&self.udp_dropped)
    }

    pub fn dropped_items(&self) -> BTreeMap<String, u64> {
        copy(&self.dropped_items)
    }
}

/// Whether intake answers this path: an ingest route or the crash-report dialog.
pub fn serves(path: &str) -> bool {
    route(path).is_some() || dialog::is_dialog_path(path) || cron::route(path).is_some()
}

/// Maps a request path to an ingest route. Runs of slashes fold into one and the trailing
/// slash is optional. `None` for paths that are not ingest routes.
pub fn route(path: &str) -> Option<Result<Route, IntakeError>> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["api", "store"] => Some(Ok(Route::Store { project: None })),
        ["api", id, kind @ ("store" | "envelope")] => {
            let Ok(project) = id.parse::<u64>() else {
                return Some(Err(IntakeError::BadProjectPath));
            };
            Some(Ok(if *kind == "store" {
                Route::Store {
                    project: Some(project),
                }
            } else {
                Route::Envelope { project }
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_with_and_without_slashes() {
        assert_eq!(
            route("/api/1/store/").unwrap().unwrap(),
            Route::Store { project: Some(1) }
        );
        assert_eq!(
            route("/api/1/store").unwrap().unwrap(),
            Route::Store { project: Some(1) }
        );
        assert_eq!(
            route("//api//1//envelope").unwrap().unwrap(),
            Route::Envelope { project: 1 }
        );
        assert_eq!(
            route("/api/store/").unwrap().unwrap(),
            Route::Store { project: None }
        );
        assert!(matches!(
            route("/api/abc/store/"),
            Some(Err(IntakeError::BadProjectPath))
        ));
        assert!(route("/login").is_none());
    }
}

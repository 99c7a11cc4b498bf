//! Store-and-forward: the supervised worker that sends each forwarding project's accepted
//! events to its upstream Sentry-compatible server, from the durable outbox the writer fills
//! in the transaction that stores each event.
//!
//! Every entry is sent as an envelope to `{upstream}/api/{id}/envelope/` with the upstream key
//! in `X-Sentry-Auth` and the envelope's `dsn` header set to match; the event keeps its
//! `event_id` and timestamp, and `sent_at` is refreshed on every try. An entry leaves the
//! outbox only in the write that records the answer: 2xx (or an old server's 403 "already
//! exists") delivers it; network errors and 502–504 keep it, with capped exponential backoff;
//! 429 pauses the project for the time the upstream asked and then resends; 500 is retried a
//! few times; other refusals move it to the dead-letter list. Entries older than
//! `forward.max_pending_age`, or whose event was deleted first, are dropped and counted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use redb::{Database, ReadableDatabase};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config;
use crate::ids::Dsn;
use crate::outbound::{Client, OutboundError, Reply};
use crate::pipeline::Queue;
use crate::store::outbox::{self, Outbox, OutboxEntry, Outcome};
use crate::store::projects::{self, Project};
use crate::store::tables::Tables;
use crate::store::{EVENTS, FORWARD_COUNTS, FORWARD_OUTBOX, PROJECTS, StoreError, events};

/// How often an idle forwarder looks for new entries.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// Tries of an entry the upstream answers 500 to before it becomes a dead letter.
const SERVER_ERROR_TRIES: u32 = 3;
/// Longest wait between tries after network errors.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest rate-limit pause honoured, so a broken header cannot stop forwarding for days.
const MAX_PAUSE: Duration = Duration::from_secs(24 * 3600);
/// Entries read per project per round, per request in flight.
const PER_SLOT: usize = 16;

/// What the forwarder knows about each upstream beyond the file: pauses, errors, tries.
#[derive(Debug, Default, Clone)]
struct Upstream {
    /// Unix seconds until which nothing is sent.
    paused_until: Option<f64>,
    last_error: Option<String>,
    /// Network failures in a row, for the backoff.
    failures: u32,
    /// 500 answers per entry (by sequence number).
    server_errors: HashMap<u64, u32>,
}

/// The forwarder's state, shared with `picket status` and `/metrics`.
pub struct State {
    db: Arc<Database>,
    upstreams: Mutex<HashMap<u64, Upstream>>,
}

impl State {
    pub fn new(db: Arc<Database>) -> State {
        State {
            db,
            upstreams: Mutex::new(HashMap::new()),
        }
    }

    fn upstreams(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Upstream>> {
        self.upstreams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What each forwarding project (by slug) has pending, delivered, dead-lettered and
    /// dropped, and whether its upstream (shown without its secret) is paused.
    pub fn report(&self) -> BTreeMap<String, ForwardReport> {
        // One snapshot for the projects and their counters.
        let read = || -> Result<_, StoreError> {
            let txn = self.db.begin_read()?;
            let counts = txn.open_table(FORWARD_COUNTS)?;
            forwarding_in(&txn)?
                .into_iter()
                .map(|(p, dsn)| Ok((outbox::counts(&counts, p.id)?, p, dsn)))
                .collect::<Result<Vec<_>, StoreError>>()
        };
        let Ok(projects) = read() else {
            return BTreeMap::new();
        };
        let upstreams = self.upstreams();
        projects
            .into_iter()
            .map(|(c, project, dsn)| {
                let up = upstreams.get(&project.id).cloned().unwrap_or_default();
                let report = ForwardReport {
                    upstream: dsn.public(),
                    pending: c.pending,
                    delivered: c.delivered,
                    dead_letter: c.dead_letter,
                    dropped: c.dropped,
                    paused_until: up
                        .paused_until
                        .filter(|t| *t > crate::time::now())
                        .map(crate::time::rfc3339),
                    last_error: up.last_error,
                };
                (project.slug, report)
            })
            .collect()
    }
}

/// One forwarding project's figures in `picket status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardReport {
    pub upstream: String,
    pub pending: u64,
    pub delivered: u64,
    pub dead_letter: u64,
    pub dropped: u64,
    pub paused_until: Option<String>,
    pub last_error: Option<String>,
}

/// The projects that forward, with their parsed upstream DSN.
fn forwarding(db: &Database) -> Result<Vec<(Project, Dsn)>, StoreError> {
    forwarding_in(&db.begin_read()?)
}

fn forwarding_in(txn: &redb::ReadTransaction) -> Result<Vec<(Project, Dsn)>, StoreError> {
    let all = projects::list(&txn.open_table(PROJECTS)?)?;
    Ok(all
        .into_iter()
        .filter_map(|p| {
            let dsn = Dsn::parse(p.forward_to.as_deref()?).ok()?;
            Some((p, dsn))
        })
        .collect())
}

/// One entry ready to send: its envelope, and what deleting its event needs.
struct Ready {
    entry: OutboxEntry,
    issue: u64,
    envelope: Bytes,
}

/// What became of an entry this round.
enum Verdict {
    Done(OutboxEntry, Outcome, Option<u64>),
    /// Stays pending; stop sending this project for now.
    Wait,
}

#[derive(Clone)]
pub struct Forwarder {
    db: Arc<Database>,
    queue: Queue,
    client: Client,
    config: config::Forward,
    state: Arc<State>,
}

impl Forwarder {
    pub fn new(
        db: Arc<Database>,
        queue: Queue,
        client: Client,
        config: config::Forward,
        state: Arc<State>,
    ) -> Forwarder {
        Forwarder {
            db,
            queue,
            client,
            config,
            state,
        }
    }

    /// Runs until `stop`; a failed round is logged and retried after a pause.
    pub async fn run(self, stop: tokio::sync::watch::Receiver<bool>) {
        crate::supervisor::poll_until_stopped("forwarding", stop, IDLE_POLL, || self.round()).await
    }

    /// One pass over every forwarding project. Returns whether anything left the outbox.
    async fn round(&self) -> Result<bool, StoreError> {
        let db = self.db.clone();
        let projects = tokio::task::spawn_blocking(move || forwarding(&db))
            .await
            .map_err(|e| StoreError::Db(e.to_string()))??;
        let mut progressed = false;
        for (project, dsn) in projects {
            let paused = self
                .state
                .upstreams()
                .get(&project.id)
                .and_then(|u| u.paused_until);
            if paused.is_some_and(|t| t > crate::time::now()) {
                continue;
            }
            progressed |= self.forward_project(&project, &dsn).await?;
        }
        Ok(progressed)
    }

    async fn forward_project(&self, project: &Project, dsn: &Dsn) -> Result<bool, StoreError> {
        let limit = self.config.concurrency.max(1) * PER_SLOT;
        let (ready, mut finished) = {
            let db = self.db.clone();
            let (id, dsn, max_age) = (project.id, dsn.clone(), self.config.max_pending_age.0);
            tokio::task::spawn_blocking(move || load(&db, id, &dsn, limit, max_age))
                .await
                .map_err(|e| StoreError::Db(e.to_string()))??
        };
        let url = dsn.envelope_url();
        let auth = dsn.auth_header(concat!("picket/", env!("CARGO_PKG_VERSION")));
        'chunks: for chunk in ready.chunks(self.config.concurrency.max(1)) {
            let mut sends = tokio::task::JoinSet::new();
            for (i, ready) in chunk.iter().enumerate() {
                let (client, url, auth) = (self.client.clone(), url.clone(), auth.clone());
                let body = refresh_sent_at(&ready.envelope);
                sends.spawn(async move {
                    let headers = [
                        ("content-type", "application/x-sentry-envelope".to_string()),
                        ("x-sentry-auth", auth),
                    ];
                    (i, client.post(&url, &headers, body).await)
                });
            }
            // Answers come in the order they complete; put them back in the chunk's.
            let mut answers = sends.join_all().await;
            answers.sort_by_key(|(i, _)| *i);
            let mut stop = false;
            for (ready, (_, answer)) in chunk.iter().zip(answers) {
                match self.judge(project.id, ready, answer) {
                    Verdict::Done(entry, outcome, issue) => finished.push((entry, outcome, issue)),
                    Verdict::Wait => stop = true,
                }
            }
            if stop {
                break 'chunks;
            }
        }
        if finished.is_empty() {
            return Ok(false);
        }
        let keep_local = self.config.keep_local;
        let n = finished.len();
        self.queue
            .write(move |txn| record(txn, &finished, keep_local))?;
        tracing::debug!("forwarding: {n} entries of '{}' done", project.slug);
        Ok(true)
    }

    /// Reads an upstream's answer (or the failure to get one) for one entry.
    fn judge(&self, project: u64, ready: &Ready, answer: Result<Reply, OutboundError>) -> Verdict {
        let mut upstreams = self.state.upstreams();
        let up = upstreams.entry(project).or_default();
        let now = crate::time::now();
        let seq = ready.entry.seq;
        let reply = match answer {
            Ok(reply) => reply,
            Err(e) => {
                backoff(up, now, e.to_string());
                return Verdict::Wait;
            }
        };
        let pause = crate::outbound::rate_limit(reply.status, &reply.headers, "error");
        if let Some(pause) = pause {
            let pause = pause.min(MAX_PAUSE);
            let until = now + pause.as_secs_f64();
            up.paused_until = Some(up.paused_until.map_or(until, |t| t.max(until)));
        }
        let body = String::from_utf8_lossy(&reply.body);
        let status = reply.status;
        let detail = || {
            format!(
                "HTTP {status}: {}",
                body.chars().take(300).collect::<String>()
            )
        };
        match status {
            200..=299 => {
                up.failures = 0;
                up.server_errors.remove(&seq);
                Verdict::Done(ready.entry, Outcome::Delivered, Some(ready.issue))
            }
            // Servers before Relay answered a duplicate event id with this.
            403 if body.contains("already exists") => {
                Verdict::Done(ready.entry, Outcome::Delivered, Some(ready.issue))
            }
            429 => {
                up.last_error = Some(detail());
                if pause.is_none() {
                    backoff(up, now, detail());
                }
                Verdict::Wait
            }
            502..=504 => {
                backoff(up, now, detail());
                Verdict::Wait
            }
            500..=599 => {
                let tries = up.server_errors.entry(seq).or_default();
                *tries += 1;
                if *tries >= SERVER_ERROR_TRIES {
                    up.server_errors.remove(&seq);
                    up.last_error = Some(detail());
                    let reason = body.chars().take(500).collect();
                    Verdict::Done(ready.entry, Outcome::Dead { status, reason }, None)
                } else {
                    backoff(up, now, detail());
                    Verdict::Wait
                }
            }
            _ => {
                up.last_error = Some(detail());
                let reason = body.chars().take(500).collect();
                Verdict::Done(ready.entry, Outcome::Dead { status, reason }, None)
            }
        }
    }
}

/// Pauses an upstream after a failure: 1 s, doubling with each failure in a row, up to 60 s.
fn backoff(up: &mut Upstream, now: f64, error: String) {
    up.failures = up.failures.saturating_add(1);
    let wait = Duration::from_secs(1 << up.failures.min(6).saturating_sub(1)).min(MAX_BACKOFF);
    up.paused_until = Some(now + wait.as_secs_f64());
    up.last_error = Some(error);
}

/// Reads up to `limit` pending entries of a project and builds their envelopes. Entries too
/// old or whose event is gone come back as already finished (dropped).
#[allow(clippy::type_complexity)]
fn load(
    db: &Database,
    project: u64,
    dsn: &Dsn,
    limit: usize,
    max_age: Duration,
) -> Result<(Vec<Ready>, Vec<(OutboxEntry, Outcome, Option<u64>)>), StoreError> {
    let txn = db.begin_read()?;
    let entries = outbox::pending(&txn.open_table(FORWARD_OUTBOX)?, project, limit)?;
    let table = txn.open_table(EVENTS)?;
    let oldest = crate::time::now() - max_age.as_secs_f64();
    let mut ready = Vec::new();
    let mut dropped = Vec::new();
    for entry in entries {
        if entry.queued < oldest {
            dropped.push((entry, Outcome::Dropped, None));
            continue;
        }
        match events::get(&table, project, &entry.event_id)? {
            Some(stored) => ready.push(Ready {
                entry,
                issue: stored.issue,
                envelope: envelope(dsn, &stored.event),
            }),
            None => dropped.push((entry, Outcome::Dropped, None)),
        }
    }
    Ok((ready, dropped))
}

/// The envelope for an event: a header with its id and the upstream DSN, then the event.
/// `sent_at` is added by [`refresh_sent_at`] just before each try.
fn envelope(dsn: &Dsn, event: &crate::event::Event) -> Bytes {
    let payload = serde_json::to_vec(event).unwrap_or_default();
    let header = json!({ "event_id": event.event_id, "dsn": dsn.public() });
    let item =
        json!({ "type": "event", "length": payload.len(), "content_type": "application/json" });
    let mut out = Vec::with_capacity(payload.len() + 256);
    out.extend_from_slice(header.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(item.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&payload);
    out.push(b'\n');
    Bytes::from(out)
}

/// The envelope with `sent_at` set to now in its header (the header is picket's own JSON
/// object, so the field goes in before its closing brace).
fn refresh_sent_at(envelope: &Bytes) -> Bytes {
    let end = envelope.iter().position(|&b| b == b'\n').unwrap_or(0);
    let Some(close) = envelope[..end].iter().rposition(|&b| b == b'}') else {
        return envelope.clone();
    };
    let sent_at = format!(
        ",\"sent_at\":\"{}\"",
        crate::time::rfc3339(crate::time::now())
    );
    let mut out = Vec::with_capacity(envelope.len() + sent_at.len());
    out.extend_from_slice(&envelope[..close]);
    out.extend_from_slice(sent_at.as_bytes());
    out.extend_from_slice(&envelope[close..]);
    Bytes::from(out)
}

/// Records a round's outcomes in one write: entries leave the outbox, dead letters are kept,
/// and without `keep_local` a delivered event is deleted here.
fn record(
    txn: &redb::WriteTransaction,
    finished: &[(OutboxEntry, Outcome, Option<u64>)],
    keep_local: bool,
) -> Result<(), StoreError> {
    let mut delivered = Vec::new();
    {
        let mut outbox = Outbox::open(txn)?;
        for (entry, outcome, issue) in finished {
            let was_there = outbox.finish(entry, outcome.clone())?;
            if was_there && *outcome == Outcome::Delivered && !keep_local {
                delivered.extend(issue.map(|issue| (*entry, issue)));
            }
        }
    }
    if !delivered.is_empty() {
        let mut rows = Tables::open(txn)?;
        for (entry, issue) in delivered {
            rows.remove_event(entry.project, issue, entry.seq, &entry.event_id)?;
        }
    }
    Ok(())
}

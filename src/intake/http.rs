//! The HTTP side of intake: the hyper service for the ingest routes (`/api/{id}/store/`,
//! `/api/{id}/envelope/`, `/api/store/`), CORS for browser SDKs, and `/health`. A request is
//! answered 200 only after its event is committed; every refusal gets a status and a JSON
//! `{"detail": …}` naming the problem (also in `X-Sentry-Error`).

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::auth::{self, Credentials, Sources};
use super::decode::{self, Encoding};
use super::{IntakeError, Route, route};
use super::{envelope, items, sessions};
use crate::config::Limits;
use crate::conn::{BodyRate, BodyReader, client_ip};
use crate::event::Event;
use crate::event::normalize::{self, Context};
use crate::ids::{Dsn, EventId};
use crate::pipeline::{Ack, Arrival, Queue, QueueError};
use crate::store::StoreError;
use crate::store::attachments::EncodedAttachment;
use crate::store::key_cache::KeyCache;
use crate::store::outcomes::Source;
use tokio::sync::oneshot;

/// Everything a request handler needs, shared by all connections.
pub struct Intake {
    pub keys: Arc<KeyCache>,
    pub queue: Queue,
    pub limits: Limits,
    pub counters: super::Counters,
    pub limiter: super::ratelimit::RateLimiter,
    /// The rate limit of keys that have none of their own.
    pub default_key_limit: crate::ids::RateLimit,
    /// Refuses events while the disk is nearly full.
    pub disk: crate::intake::disk::DiskGuard,
    /// Compresses events for storage, with the store's trained dictionary.
    pub codec: Arc<crate::store::dictionary::Codec>,
    /// Maps JavaScript frames through the project's uploaded source maps.
    pub symbolicator: Arc<crate::artifacts::Symbolicator>,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<crate::ids::IpRange>,
}

type Body = Full<Bytes>;

/// A 1×1 transparent GIF, the answer to `GET /api/{id}/store/?sentry_data=…`.
const PIXEL_GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

pub async fn handle(state: Arc<Intake>, req: Request<Incoming>, remote: IpAddr) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/health" {
        return health(&state);
    }
    if super::dialog::is_dialog_path(&path) {
        if req.method() == Method::OPTIONS {
            return preflight();
        }
        return super::dialog::handle(&state, req)
            .await
            .unwrap_or_else(|e| {
                state.counters.reject(e.reason());
                error_response(&e)
            });
    }
    if let Some(cron) = super::cron::route(&path) {
        let answer = match req.method().clone() {
            Method::OPTIONS => return preflight(),
            Method::GET | Method::POST => super::cron::handle(&state, req, cron).await,
            _ => Err(IntakeError::MethodNotAllowed),
        };
        return match answer {
            Ok((status, body)) => {
                let mut resp = json_ok(None);
                *resp.status_mut() = status;
                *resp.body_mut() = Full::new(Bytes::from(body.to_string()));
                resp
            }
            Err(e) => {
                state.counters.reject(e.reason());
                error_response(&e)
            }
        };
    }
    let Some(route) = route(&path) else {
        return error_response(&IntakeError::NotFound);
    };
    let outcome = match (req.method().clone(), route) {
        (Method::OPTIONS, _) => return preflight(),
        (_, Err(e)) => Err(e),
        (Method::POST, Ok(route)) => ingest(&state, req, route, remote).await.map(json_ok),
        (Method::GET, Ok(Route::Store { project })) => {
            store_get(&state, req, project, remote).await
        }
        _ => Err(IntakeError::MethodNotAllowed),
    };
    match outcome {
        Ok(response) => response,
        Err(e) => {
            state.counters.reject(e.reason());
            tracing::debug!("refused {path}: {e}");
            error_response(&e)
        }
    }
}

fn health(state: &Intake) -> Response<Body> {
    let running = state
        .queue
        .stats()
        .running
        .load(std::sync::atomic::Ordering::SeqCst);
    let (status, text) = if crate::store::damage().is_some() {
        (
            503,
            "the data file is damaged: see the log; run picket check\n",
        )
    } else if !running {
        (503, "writer not running\n")
    } else if crate::store::backend::waiting_for_space().is_some() {
        (503, "the disk is full: the writer waits for space\n")
    } else {
        (200, "ok\n")
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    resp
}

pub(super) fn cors(headers: &mut HeaderMap) {
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    headers.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("x-sentry-error, x-sentry-rate-limits, retry-after"),
    );
}

fn preflight() -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    let h = resp.headers_mut();
    cors(h);
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static(
            "x-sentry-auth, x-requested-with, x-forwarded-for, origin, referer, accept, content-type, \
             authentication, authorization, content-encoding, transfer-encoding, sentry-trace, baggage",
        ),
    );
    h.insert("access-control-max-age", HeaderValue::from_static("3600"));
    resp
}

fn json_ok(id: Option<EventId>) -> Response<Body> {
    // Written out: an id is hex, nothing in it to escape.
    let body = match id {
        Some(id) => format!("{{\"id\":\"{id}\"}}"),
        None => "{}".to_string(),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    cors(resp.headers_mut());
    resp
}

pub fn error_response(e: &IntakeError) -> Response<Body> {
    let detail = e.to_string();
    let body = serde_json::json!({ "detail": detail });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    // Header values cannot carry control characters; the JSON body has the exact text.
    let printable: String = detail
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&printable) {
        h.insert("x-sentry-error", v);
    }
    for (name, value) in e.retry_headers() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    cors(h);
    resp
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn credentials(parts: &hyper::http::request::Parts) -> Result<Option<Credentials>, IntakeError> {
    Ok(auth::from_sources(Sources {
        x_sentry_auth: header(&parts.headers, "x-sentry-auth"),
        authorization: header(&parts.headers, "authorization"),
        query: parts.uri.query(),
    })?)
}

async fn ingest(
    state: &Intake,
    req: Request<Incoming>,
    route: Route,
    remote: IpAddr,
) -> Result<Option<EventId>, IntakeError> {
    let (parts, body) = req.into_parts();
    let creds = credentials(&parts)?;
    let path_project = match route {
        Route::Store { project } => project,
        Route::Envelope { project } => Some(project),
    };
    let (name, limit) = match route {
        Route::Store { .. } => ("max_store_body_size", state.limits.max_store_body_size.0),
        Route::Envelope { .. } => (
            "max_envelope_body_size",
            state.limits.max_envelope_body_size.0,
        ),
    };
    let rate = BodyRate::of(&state.limits);
    let declared =
        header(&parts.headers, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    // Everything that can refuse without the body decides before reading it. A body within
    // reach is still read and discarded, so the client sees the answer instead of a reset
    // connection; a body far over the limit is not read at all.
    let admitted = match &creds {
        Some(c) => state.admit(c, path_project).map(Some),
        None if matches!(route, Route::Envelope { .. }) => Ok(None),
        None => Err(auth::AuthError::Missing.into()),
    }
    .and_then(|project| match declared {
        Some(n) if n > limit => Err(IntakeError::TooLarge { name, limit }),
        _ => Ok(project),
    });
    let project = match admitted {
        Ok(project) => project,
        Err(e) => {
            let budget = limit.saturating_mul(DRAIN_FACTOR);
            if declared.is_none_or(|n| n <= budget) {
                discard(BodyReader::new(body, rate), budget).await;
            }
            return Err(e);
        }
    };
    let encodings =
        decode::parse_content_encoding(header(&parts.headers, "content-encoding").unwrap_or(""))?;
    let body = read_body(body, name, limit, rate).await?;
    let data = decode_body(state, body, &encodings, route)?;
    let origin = Origin {
        received: crate::time::now(),
        client_ip: client_ip(&parts.headers, remote, &state.trusted_proxies).to_string(),
        limits: state.limits.event(),
    };

    let is_envelope = matches!(route, Route::Envelope { .. })
        || header(&parts.headers, "content-type")
            .is_some_and(|ct| ct.trim().starts_with("application/x-sentry-envelope"));
    if is_envelope {
        accept_envelope(state, &data, creds.as_ref(), project, path_project, &origin).await
    } else {
        let Some(project) = project else {
            return Err(auth::AuthError::Missing.into());
        };
        let json = decode_store_body(state, data)?;
        let event = normalize::normalize(&json, &origin.context(None))?;
        // Old SDKs post transactions to /store/ too; like envelope transactions they are
        // accepted and not kept.
        if event.other.get("type").and_then(|t| t.as_str()) == Some("transaction") {
            state.counters.drop_item(project, "transaction");
            return Ok(Some(event.event_id));
        }
        state.submit(project, event).await.map(Some)
    }
}

/// Bodies up to this many times their limit are read and discarded before a 413.
const DRAIN_FACTOR: u64 = 4;

async fn read_body(
    body: Incoming,
    name: &'static str,
    limit: u64,
    rate: BodyRate,
) -> Result<Vec<u8>, IntakeError> {
    let mut body = BodyReader::new(body, rate);
    // The pieces as they came, joined once at the end: a body still arriving holds what it
    // sent and no more (a growing buffer would hold up to twice that).
    let mut pieces = Vec::new();
    while let Some(data) = body.data().await {
        let data = data?;
        if body.read() > limit {
            drop(pieces);
            let budget = limit.saturating_mul(DRAIN_FACTOR);
            discard(body, budget).await;
            return Err(IntakeError::TooLarge { name, limit });
        }
        pieces.push(data);
    }
    Ok(pieces.concat())
}

/// Reads a body without keeping it until `budget` bytes of it have come (counting what was
/// read before), so that the client sees the answer that follows; what is left past the
/// budget the connection's lingering close drains.
async fn discard(mut body: BodyReader<Incoming>, budget: u64) {
    while body.read() <= budget {
        match body.data().await {
            Some(Ok(_)) => {}
            _ => return,
        }
    }
}

fn decode_body(
    state: &Intake,
    body: Vec<u8>,
    encodings: &[Encoding],
    route: Route,
) -> Result<Vec<u8>, IntakeError> {
    if body.is_empty() {
        return Err(IntakeError::EmptyBody);
    }
    let (name, cap) = match route {
        Route::Store { .. } => ("max_event_size", state.limits.max_event_size.0),
        Route::Envelope { .. } => ("max_envelope_size", state.limits.max_envelope_size.0),
    };
    let data = decode::decode_content(body, encodings, usize::try_from(cap).unwrap_or(usize::MAX))
        .map_err(|e| match e {
            decode::DecodeError::TooLarge { .. } => IntakeError::TooLarge { name, limit: cap },
            other => other.into(),
        })?;
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(IntakeError::EmptyBody);
    }
    Ok(data)
}

/// Unwraps a legacy store body, capped at the event size limit.
fn decode_store_body(state: &Intake, data: Vec<u8>) -> Result<Vec<u8>, IntakeError> {
    let limit = state.limits.max_event_size.0;
    decode::decode_store_body(data, usize::try_from(limit).unwrap_or(usize::MAX)).map_err(|e| {
        match e {
            decode::DecodeError::TooLarge { .. } => IntakeError::TooLarge {
                name: "max_event_size",
                limit,
            },
            other => other.into(),
        }
    })
}

/// Where and when a request came from, for normalizing its events.
struct Origin {
    received: f64,
    client_ip: String,
    limits: crate::event::EventLimits,
}

impl Origin {
    fn context(&self, event_id: Option<EventId>) -> Context<'_> {
        Context {
            received: self.received,
            event_id,
            client_ip: Some(&self.client_ip),
            limits: self.limits,
        }
    }
}

async fn accept_envelope(
    state: &Intake,
    data: &[u8],
    creds: Option<&Credentials>,
    project: Option<u64>,
    path_project: Option<u64>,
    origin: &Origin,
) -> Result<Option<EventId>, IntakeError> {
    let env = envelope::parse(data)?;
    let dsn = env
        .header
        .dsn
        .as_deref()
        .map(|d| Dsn::parse(d).map_err(|e| IntakeError::EnvelopeAuth(e.to_string())))
        .transpose()?;
    if let Some(dsn) = &dsn {
        if let Some(p) = path_project
            && dsn.project_id != p.to_string()
        {
            return Err(IntakeError::HeaderMismatch("project id"));
        }
        if let Some(c) = creds
            && c.public_key != dsn.public_key
        {
            return Err(IntakeError::HeaderMismatch("public key"));
        }
    }
    let project = match (project, &dsn) {
        (Some(p), _) => p,
        (None, Some(dsn)) => {
            let creds = Credentials {
                public_key: dsn.public_key.clone(),
                secret_key: dsn.secret_key.clone(),
                ..Default::default()
            };
            state.admit(&creds, path_project)?
        }
        (None, None) => return Err(auth::AuthError::Missing.into()),
    };

    let header_id = env.header.event_id.as_deref().and_then(EventId::parse);
    let max_items = state.limits.max_envelope_items;
    if env.items.len() > max_items {
        return Err(IntakeError::TooLarge {
            name: "max_envelope_items",
            limit: max_items as u64,
        });
    }
    let mut event = None;
    let mut feedback = Vec::new();
    let mut attachments = Vec::new();
    let mut attachments_size = 0u64;
    let mut dropped: Vec<(String, &'static str, u64)> = Vec::new();
    let mut reports = Vec::new();
    let mut health = Vec::new();
    let mut check_ins = Vec::new();
    let event_size = |item: &envelope::Item<'_>| {
        let limit = state.limits.max_event_size.0;
        if item.payload.len() as u64 > limit {
            return Err(IntakeError::TooLarge {
                name: "max_event_size",
                limit,
            });
        }
        Ok(())
    };
    for item in &env.items {
        match item.header.ty.as_str() {
            "event" if event.is_none() => {
                event_size(item)?;
                event = Some(normalize::normalize(
                    item.payload,
                    &origin.context(header_id),
                )?);
            }
            "feedback" => {
                event_size(item)?;
                let parsed = normalize::normalize(item.payload, &origin.context(header_id))?;
                feedback.push(crate::event::feedback::from_event(&parsed)?);
            }
            "user_report" => {
                event_size(item)?;
                feedback.push(crate::event::feedback::from_user_report(
                    item.payload,
                    origin.received,
                    header_id,
                )?);
            }
            "attachment" => {
                let size = item.payload.len() as u64;
                attachments_size += size;
                let limit = state.limits.max_attachments_size.0;
                if attachments_size > limit {
                    return Err(IntakeError::TooLarge {
                        name: "max_attachments_size",
                        limit,
                    });
                }
                if size > state.limits.max_attachment_size.0 {
                    dropped.push(("attachment".into(), "too_large", 1));
                } else {
                    attachments.push(items::AttachmentItem::of(item));
                }
            }
            "client_report" => reports.extend(items::client_report(item.payload)?),
            "session" => match sessions::session(item.payload, origin.received)? {
                Some(counts) => health.push(counts),
                None => dropped.push(("session".into(), "no_release", 1)),
            },
            "sessions" => health.extend(sessions::aggregates(item.payload, origin.received)?),
            "check_in" => {
                event_size(item)?;
                check_ins.push(crate::monitors::checkin::from_item(item.payload)?);
            }
            other => dropped.push((items::label(other), "not_stored", 1)),
        }
    }
    // Everything is parsed before anything is queued: a bad item refuses the whole envelope.
    for (category, reason, n) in reports {
        state
            .counters
            .count_outcome(project, Source::Client, &category, &reason, n);
    }
    if event.is_none()
        && attachments
            .iter()
            .any(items::AttachmentItem::is_crash_report)
    {
        event = Some(crash_report_event(header_id, origin)?);
    }
    if event.is_none() && !attachments.is_empty() {
        // Attachments are kept with the event they came with; alone they have nothing to
        // belong to.
        dropped.push(("attachment".into(), "no_event", attachments.len() as u64));
        attachments.clear();
    }
    for (category, reason, n) in dropped {
        if reason == "not_stored" {
            state.counters.drop_item(project, &category);
        } else {
            state
                .counters
                .count_outcome(project, Source::Server, &category, reason, n);
        }
    }
    let mut answer = header_id;
    if let Some(event) = event {
        let encoded = encode_attachments(attachments).await;
        answer = Some(state.submit_with(project, event, encoded).await?);
    }
    for feedback in feedback {
        let id = state.submit_feedback(project, feedback).await?;
        answer = answer.or(Some(id));
    }
    if !health.is_empty() {
        let arrival = crate::pipeline::SessionArrival {
            project,
            counts: health,
        };
        let done = state.queue.submit_sessions(arrival).map_err(queue_error)?;
        settle(done.await)?;
    }
    state.check_ins(project, check_ins).await?;
    Ok(answer)
}

/// The event a crash report sent without one stands for, so that its attachment is kept and
/// the crash is seen: a fatal, unhandled native crash whose report is attached.
fn crash_report_event(id: Option<EventId>, origin: &Origin) -> Result<Event, IntakeError> {
    let mut body = serde_json::json!({
        "level": "fatal",
        "platform": "native",
        "exception": {"values": [{
            "type": "Minidump",
            "value": "Native crash (the crash report is attached; picket does not symbolicate it)",
            "mechanism": {"type": "minidump", "handled": false, "synthetic": true},
        }]},
    });
    if let Some(id) = id {
        body["event_id"] = id.to_string().into();
    }
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Ok(normalize::normalize(&bytes, &origin.context(id))?)
}

/// Attachments above this many bytes together are compressed off the async workers.
const BLOCKING_COMPRESSION: usize = 256 << 10;

/// Compresses attachments for storage.
async fn encode_attachments(attachments: Vec<items::AttachmentItem<'_>>) -> Vec<EncodedAttachment> {
    let encode = |a: &items::AttachmentItem<'_>| {
        crate::store::attachments::encode_attachment(
            &a.name,
            a.content_type.as_deref(),
            &a.attachment_type,
            a.payload,
        )
    };
    let total: usize = attachments.iter().map(|a| a.payload.len()).sum();
    if total <= BLOCKING_COMPRESSION {
        return attachments.iter().map(encode).collect();
    }
    tokio::task::block_in_place(|| attachments.iter().map(encode).collect())
}

impl Intake {
    /// Authenticates the credentials' key (against the project in the URL, when there is
    /// one), then applies the disk guard and the key's and the server's rate limits; the
    /// project the key sends to.
    pub fn admit(
        &self,
        creds: &Credentials,
        path_project: Option<u64>,
    ) -> Result<u64, IntakeError> {
        let key = self
            .keys
            .authorize(&creds.public_key, creds.secret_key.as_deref(), path_project)
            .map_err(|refusal| IntakeError::Rejected(refusal.as_str()))?;
        if self.disk.low() {
            return Err(IntakeError::DiskFull);
        }
        if let Some(detail) = crate::store::damage() {
            return Err(IntakeError::Unavailable(
                StoreError::Damaged(detail.to_string()).to_string(),
            ));
        }
        let limit = key.rate_limit.unwrap_or(self.default_key_limit);
        self.limiter
            .admit(&key.public_key, limit)
            .map_err(|(scope, retry_after)| IntakeError::RateLimited { scope, retry_after })?;
        Ok(key.project)
    }

    /// Applies the project's inbound filters and scrubbing, then symbolicates, groups,
    /// compresses and queues an event; the receiver resolves once it is durable. `None`: the
    /// filters dropped it (counted; the client is answered as if it were stored).
    pub fn enqueue(
        &self,
        project: u64,
        event: Event,
    ) -> Result<Option<oneshot::Receiver<Result<Ack, StoreError>>>, IntakeError> {
        self.enqueue_with(project, event, Vec::new())
    }

    fn enqueue_with(
        &self,
        project: u64,
        mut event: Event,
        attachments: Vec<EncodedAttachment>,
    ) -> Result<Option<oneshot::Receiver<Result<Ack, StoreError>>>, IntakeError> {
        let policy = self.keys.policy(project);
        if let Some(reason) = crate::event::filters::check(&event, &policy.filters) {
            self.counters.filtered(project, reason);
            return Ok(None);
        }
        crate::event::scrub::scrub(&mut event, &policy.privacy);
        self.symbolicator.symbolicate(project, &mut event);
        let mut arrival = Arrival::new(project, event, &self.codec);
        arrival.attachments = attachments;
        self.queue.submit(arrival).map_err(queue_error).map(Some)
    }
}

impl Intake {
    /// Queues user feedback and waits until it is durable; its id.
    pub async fn submit_feedback(
        &self,
        project: u64,
        feedback: crate::event::feedback::Feedback,
    ) -> Result<EventId, IntakeError> {
        let id = feedback.id;
        let done = self
            .queue
            .submit_feedback(crate::pipeline::FeedbackArrival { project, feedback })
            .map_err(queue_error)?;
        settle(done.await).map(|_| id)
    }

    /// Queues an event and waits until it is durable; its id.
    pub async fn submit(&self, project: u64, event: Event) -> Result<EventId, IntakeError> {
        self.submit_with(project, event, Vec::new()).await
    }

    /// Queues an event with its attachments and waits until it is durable; its id.
    pub async fn submit_with(
        &self,
        project: u64,
        event: Event,
        attachments: Vec<EncodedAttachment>,
    ) -> Result<EventId, IntakeError> {
        let id = event.event_id;
        if let Some(done) = self.enqueue_with(project, event, attachments)? {
            settle(done.await)?;
            self.counters.accept_event();
        }
        Ok(id)
    }
}

/// What the writer's answer means to the client.
fn settle(
    answer: Result<Result<Ack, StoreError>, oneshot::error::RecvError>,
) -> Result<Ack, IntakeError> {
    match answer {
        Ok(Ok(ack)) => Ok(ack),
        Ok(Err(e)) => Err(IntakeError::Unavailable(e.to_string())),
        Err(_) => Err(IntakeError::Unavailable("the writer has stopped".into())),
    }
}

fn queue_error(e: QueueError) -> IntakeError {
    match e {
        QueueError::Full => IntakeError::QueueFull,
        QueueError::Closed => IntakeError::Unavailable("the writer has stopped".into()),
    }
}

/// `GET /api/{id}/store/?sentry_key=…&sentry_data=…`: old browser clients; answers a pixel.
async fn store_get(
    state: &Intake,
    req: Request<Incoming>,
    path_project: Option<u64>,
    remote: IpAddr,
) -> Result<Response<Body>, IntakeError> {
    let (parts, _) = req.into_parts();
    let creds = credentials(&parts)?.ok_or(auth::AuthError::Missing)?;
    let project = state.admit(&creds, path_project)?;
    let data = form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "sentry_data")
        .map(|(_, v)| v.into_owned().into_bytes())
        .filter(|d| !d.is_empty())
        .ok_or(IntakeError::EmptyBody)?;
    let json = decode_store_body(state, data)?;
    let origin = Origin {
        received: crate::time::now(),
        client_ip: client_ip(&parts.headers, remote, &state.trusted_proxies).to_string(),
        limits: state.limits.event(),
    };
    let event = normalize::normalize(&json, &origin.context(None))?;
    let id = state.submit(project, event).await?;
    let mut resp = Response::new(Full::new(Bytes::from_static(PIXEL_GIF)));
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("image/gif"));
    if let Ok(v) = HeaderValue::from_str(&id.to_string()) {
        resp.headers_mut().insert("x-sentry-id", v);
    }
    cors(resp.headers_mut());
    Ok(resp)
}

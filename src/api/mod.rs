//! The Sentry Web API (`/api/0/…`), the management layer's third front end: bearer tokens,
//! the one organization, projects and their keys, issues (search, show, resolve, delete),
//! events, releases and deploys, in Sentry's shapes, so sentry-cli and tools that read Sentry's
//! API work against picket. Every request is authenticated here, then applied as the token's
//! [`Actor`], so the management layer decides what it may see and do, exactly as for the UI.
//! Paths picket does not serve answer 404 and are counted, so an operator sees what a tool
//! wanted.

mod artifacts;
mod issues;
pub mod query;
mod releases;
pub mod shapes;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::conn::{BodyError, BodyRate, BodyReader};
use crate::intake::ratelimit::RateLimiter;
use crate::manage::keys::KeyList;
use crate::manage::{Actor, Handle, ManageError, Operation};
use crate::store::projects::Project;

/// Largest request body accepted.
const MAX_BODY: usize = 1024 * 1024;
/// Issues per page when the client does not say, and at most.
const ISSUES_PAGE: usize = 25;
const ISSUES_MAX: usize = 100;
/// Events per page of an issue's events.
const EVENTS_PAGE: usize = 50;
/// Distinct unsupported paths counted before new ones are counted together.
const MAX_UNSUPPORTED: usize = 200;

/// Why a request was refused. Each answers with a status and `{"detail": …}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Manage(#[from] ManageError),
    #[error("{0}")]
    BadRequest(String),
    #[error("rate limit of this token exceeded; retry after {0} s")]
    RateLimited(u64),
    #[error("{0}")]
    NotSupported(String),
    #[error("method {0} not allowed here")]
    MethodNotAllowed(Method),
    #[error("{0}")]
    TooLarge(String),
    #[error("body: {0}")]
    Body(#[from] BodyError),
}

impl From<query::BadParameter> for ApiError {
    fn from(e: query::BadParameter) -> ApiError {
        ApiError::BadRequest(e.0)
    }
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Manage(ManageError::NotFound(_)) | ApiError::NotSupported(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::Manage(ManageError::Invalid(_)) | ApiError::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::Manage(ManageError::Conflict(_)) => StatusCode::CONFLICT,
            ApiError::Manage(ManageError::Forbidden(_)) => StatusCode::FORBIDDEN,
            ApiError::Manage(ManageError::Storage(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) | ApiError::Body(BodyError::TooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Body(BodyError::TooSlow { .. }) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Body(BodyError::Broken(_)) => StatusCode::BAD_REQUEST,
            ApiError::Body(BodyError::Busy) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// A successful answer: a status, a JSON body, and the `Link` header of a page.
struct Reply {
    status: StatusCode,
    body: Value,
    link: Option<String>,
    /// A file served as a download instead of `body`: its `Content-Disposition` and bytes.
    download: Option<(String, Vec<u8>)>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply::with_status(StatusCode::OK, body)
    }

    fn with_status(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            body,
            link: None,
            download: None,
        }
    }

    /// Bytes as a download, never rendered: `application/octet-stream`, `nosniff`.
    fn download(disposition: String, bytes: Vec<u8>) -> Reply {
        Reply {
            download: Some((disposition, bytes)),
            ..Reply::ok(Value::Null)
        }
    }
}

/// The API's state: the management handle, the per-token rate limiter and the count of
/// requests for paths picket does not serve.
pub struct Api {
    handle: Handle,
    limiter: RateLimiter,
    unsupported: Arc<Unsupported>,
}

/// Requests for paths picket does not serve, by method and path as sent, for `picket status`
/// and `/metrics`. Past a few hundred distinct paths, new ones are counted together.
#[derive(Default)]
pub struct Unsupported(Mutex<BTreeMap<String, u64>>);

impl Unsupported {
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn count(&self, what: String) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let key = if map.len() >= MAX_UNSUPPORTED && !map.contains_key(&what) {
            "(other paths)".to_string()
        } else {
            what
        };
        *map.entry(key).or_default() += 1;
    }
}

/// Whether a path belongs to the Web API (intake's `/api/{project}/store/` and
/// `/api/{project}/envelope/` are matched first by the server).
pub fn is_api_path(path: &str) -> bool {
    path == "/api/0" || path.starts_with("/api/0/")
}

/// One request as the handlers see it.
struct Call<'a> {
    api: &'a Api,
    actor: Actor,
    method: Method,
    query: Vec<(String, String)>,
    body: Bytes,
    /// `scheme://host` of this request, for the `Link` header.
    origin: String,
    content_type: String,
    path: String,
}

impl Api {
    pub fn new(handle: Handle, unsupported: Arc<Unsupported>) -> Api {
        Api {
            handle,
            limiter: RateLimiter::new(crate::ids::RateLimit {
                per_minute: 0,
                burst: 0,
            }),
            unsupported,
        }
    }

    fn organization(&self) -> &str {
        &self.handle.config.organization
    }

    fn check_org(&self, org: &str) -> Result<(), ApiError> {
        if org == self.organization() {
            Ok(())
        } else {
            Err(ManageError::NotFound(format!(
                "organization '{org}' not found: this picket's organization is '{}' (the config key organization)",
                self.organization()
            ))
            .into())
        }
    }
}

/// Serves one API request.
pub async fn handle(api: Arc<Api>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let answer = serve(&api, req).await;
    match answer {
        Ok(Reply {
            download: Some((disposition, bytes)),
            ..
        }) => {
            let mut resp = Response::new(Full::new(Bytes::from(bytes)));
            let headers = resp.headers_mut();
            headers.insert(
                "content-type",
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                headers.insert("content-disposition", v);
            }
            resp
        }
        Ok(reply) => respond(reply.status, &reply.body, reply.link, None),
        Err(e) => {
            if matches!(e, ApiError::NotSupported(_)) {
                api.unsupported.count(format!("{method} {path}"));
            }
            let retry = match e {
                ApiError::RateLimited(s) => Some(s),
                _ => None,
            };
            respond(e.status(), &json!({"detail": e.to_string()}), None, retry)
        }
    }
}

fn respond(
    status: StatusCode,
    body: &Value,
    link: Option<String>,
    retry_after: Option<u64>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert("link", link);
    }
    if let Some(s) = retry_after {
        headers.insert("retry-after", HeaderValue::from(s));
    }
    resp
}

/// The bearer secret of a request: `Authorization: Bearer …` (or Sentry's older `Token …`).
fn bearer(req: &Request<Incoming>) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?.trim();
    let (scheme, secret) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| secret.trim().to_string())
}

async fn serve(api: &Api, req: Request<Incoming>) -> Result<Reply, ApiError> {
    let Some(secret) = bearer(&req) else {
        return Err(ApiError::Unauthorized(
            "authentication credentials were not provided: send Authorization: Bearer <token> (make one with picket token create)",
        ));
    };
    let handle = api.handle.clone();
    let actor = tokio::task::spawn_blocking(move || handle.authenticate(&secret))
        .await
        .map_err(|e| ManageError::Storage(format!("internal error: {e}")))??
        .ok_or(ApiError::Unauthorized("invalid token"))?;
    if let Actor::Token(t) = &actor {
        let limit = api.handle.config.api.per_token();
        if let Err((_, wait)) = api.limiter.admit(&t.token.id.to_string(), limit) {
            return Err(ApiError::RateLimited(wait));
        }
    }
    let path = req.uri().path().to_string();
    let segments = crate::ids::path_segments(path.trim_start_matches("/api/0"));
    let query = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let origin = {
        let host = req
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        match host {
            Some(h) if api.handle.config.base_url.is_empty() => format!("http://{h}"),
            _ => api.handle.config.base_url(),
        }
    };
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Chunk uploads carry up to maxRequestSize of multipart; everything else is small JSON.
    let limit = if path.ends_with("/chunk-upload/") || path.ends_with("/files/") {
        crate::manage::artifacts::MAX_REQUEST + 64 * 1024
    } else {
        MAX_BODY
    };
    // A declared size over the limit is refused before a byte of the body is read.
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limit as u64) {
        return Err(ApiError::TooLarge(format!(
            "body: {n} bytes is more than the {limit} this endpoint takes"
        )));
    }
    let rate = BodyRate::of(&api.handle.config.limits);
    let body = BodyReader::new(req.into_body(), rate)
        .to_end(limit as u64)
        .await?;
    let call = Call {
        api,
        actor,
        method,
        query,
        body,
        origin,
        content_type,
        path,
    };
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    route(&call, &seg).await
}

/// Answers 405 for a known path asked with another method.
fn only(call: &Call<'_>, allowed: &[Method]) -> Result<(), ApiError> {
    if allowed.contains(&call.method) {
        Ok(())
    } else {
        Err(ApiError::MethodNotAllowed(call.method.clone()))
    }
}

async fn route(call: &Call<'_>, seg: &[&str]) -> Result<Reply, ApiError> {
    use Method as M;
    match seg {
        [] => {
            only(call, &[M::GET])?;
            root(call)
        }
        ["organizations"] => {
            only(call, &[M::GET])?;
            Ok(Reply::ok(json!([shapes::organization(
                call.api.organization()
            )])))
        }
        ["organizations", org] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            Ok(Reply::ok(shapes::organization(org)))
        }
        ["organizations", org, "projects"] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            projects(call).await
        }
        ["projects"] => {
            only(call, &[M::GET])?;
            projects(call).await
        }
        ["projects", org, project] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            let p = visible_project(call, project).await?;
            Ok(Reply::ok(shapes::project(&p, call.api.organization())))
        }
        ["projects", org, project, "keys"] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            keys(call, project).await
        }
        ["organizations", org, "issues"] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            issues::list(call, None).await
        }
        ["projects", org, project, "issues"] => {
            only(call, &[M::GET, M::PUT, M::DELETE])?;
            call.api.check_org(org)?;
            match call.method {
                M::GET => issues::list(call, Some(project)).await,
                _ => issues::bulk(call, project).await,
            }
        }
        ["issues", id] => issues::one(call, id).await,
        ["organizations", org, "issues", id] => {
            call.api.check_org(org)?;
            issues::one(call, id).await
        }
        ["issues", id, "events"] => {
            only(call, &[M::GET])?;
            issues::events(call, id).await
        }
        ["organizations", org, "issues", id, "events"] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            issues::events(call, id).await
        }
        ["issues", id, "events", which] => {
            only(call, &[M::GET])?;
            issues::event(call, id, which).await
        }
        ["organizations", org, "issues", id, "events", which] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            issues::event(call, id, which).await
        }
        ["projects", org, project, "events", event_id] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            issues::project_event(call, project, event_id).await
        }
        ["projects", org, project, "events", event_id, "attachments"] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            issues::attachments(call, project, event_id, None).await
        }
        [
            "projects",
            org,
            project,
            "events",
            event_id,
            "attachments",
            id,
        ] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            issues::attachments(call, project, event_id, Some(id)).await
        }
        ["organizations", org, "releases"] => {
            only(call, &[M::GET, M::POST])?;
            call.api.check_org(org)?;
            match call.method {
                M::GET => releases::list(call, None).await,
                _ => releases::create(call, None).await,
            }
        }
        ["projects", org, project, "releases"] => {
            only(call, &[M::GET, M::POST])?;
            call.api.check_org(org)?;
            match call.method {
                M::GET => releases::list(call, Some(project)).await,
                _ => releases::create(call, Some(project)).await,
            }
        }
        ["organizations", org, "releases", version] | ["projects", org, _, "releases", version] => {
            only(call, &[M::GET, M::PUT, M::DELETE])?;
            call.api.check_org(org)?;
            releases::one(call, version).await
        }
        ["organizations", org, "chunk-upload"] => {
            only(call, &[M::GET, M::POST])?;
            call.api.check_org(org)?;
            match call.method {
                M::GET => Ok(artifacts::options(call, org)),
                _ => artifacts::upload(call).await,
            }
        }
        ["organizations", org, "artifactbundle", "assemble"] => {
            only(call, &[M::POST])?;
            call.api.check_org(org)?;
            artifacts::assemble(call).await
        }
        ["organizations", org, "releases", version, "files"] => {
            only(call, &[M::GET, M::POST])?;
            call.api.check_org(org)?;
            artifacts::release_files(call, None, version).await
        }
        ["projects", org, project, "releases", version, "files"] => {
            only(call, &[M::GET, M::POST])?;
            call.api.check_org(org)?;
            artifacts::release_files(call, Some(project), version).await
        }
        ["organizations", org, "releases", version, "deploys"] => {
            only(call, &[M::GET, M::POST])?;
            call.api.check_org(org)?;
            releases::deploys(call, version).await
        }
        _ => Err(ApiError::NotSupported(format!(
            "{} {} is not supported by picket (see the README's \"API and sentry-cli\" section)",
            call.method, call.path
        ))),
    }
}

/// Applies an operation as the request's actor.
async fn run<O>(call: &Call<'_>, op: O) -> Result<O::Answer, ApiError>
where
    O: Operation + Send + 'static,
    O::Answer: Send + 'static,
{
    Ok(call.api.handle.run_async(call.actor.clone(), op).await?)
}

/// Reads the handle on a blocking thread, as the actor.
async fn read<T, F>(call: &Call<'_>, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Handle, &Actor) -> Result<T, ManageError> + Send + 'static,
{
    let (handle, actor) = (call.api.handle.clone(), call.actor.clone());
    Ok(tokio::task::spawn_blocking(move || work(&handle, &actor))
        .await
        .map_err(|e| ManageError::Storage(format!("internal error: {e}")))??)
}

async fn visible_project(call: &Call<'_>, slug: &str) -> Result<Project, ApiError> {
    let slug = slug.to_string();
    read(call, move |h, actor| h.project(actor, &slug)).await
}

async fn visible_projects(call: &Call<'_>) -> Result<Vec<Project>, ApiError> {
    read(call, |h, actor| h.visible_projects(actor)).await
}

fn param<'a>(call: &'a Call<'_>, name: &str) -> Option<&'a str> {
    call.query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn params<'a>(call: &'a Call<'_>, name: &str) -> Vec<&'a str> {
    call.query
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The JSON body as `T`; a body that is not gets 400 naming what is wrong.
fn body<T: DeserializeOwned>(call: &Call<'_>) -> Result<T, ApiError> {
    let bytes: &[u8] = if call.body.is_empty() {
        b"{}"
    } else {
        &call.body
    };
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadRequest(format!("body: {e}")))
}

/// An RFC 3339 time from a request field, naming the field when it is not one.
fn time_field(field: &str, value: Option<&str>) -> Result<Option<f64>, ApiError> {
    match value {
        None => Ok(None),
        Some(v) => crate::time::parse_iso(v).map(Some).ok_or_else(|| {
            ApiError::BadRequest(format!("{field}: '{v}' is not a date and time (RFC 3339)"))
        }),
    }
}

fn root(call: &Call<'_>) -> Result<Reply, ApiError> {
    let scopes: Vec<String> = match &call.actor {
        Actor::Token(t) => t.token.scopes.clone(),
        _ => crate::manage::SCOPES
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    Ok(Reply::ok(json!({
        "version": "0",
        "auth": {"scopes": scopes},
        "user": shapes::user(&call.actor),
    })))
}

async fn projects(call: &Call<'_>) -> Result<Reply, ApiError> {
    call.actor.require_scope("project:read")?;
    let org = call.api.organization().to_string();
    let list = visible_projects(call).await?;
    Ok(Reply::ok(
        list.iter().map(|p| shapes::project(p, &org)).collect(),
    ))
}

async fn keys(call: &Call<'_>, project: &str) -> Result<Reply, ApiError> {
    let keys = run(
        call,
        KeyList {
            project: project.to_string(),
        },
    )
    .await?;
    Ok(Reply::ok(
        keys.iter()
            .enumerate()
            .map(|(n, k)| shapes::key(k, &format!("Key {}", n + 1)))
            .collect(),
    ))
}

//! The Sentry Web API (`/api/0/…`), the management layer's third front end: bearer tokens,
//! the one organization, projects and their keys, issues (search, show, resolve, delete),
//! events, releases and deploys, in Sentry's shapes, so sentry-cli and tools that read Sentry's
//! API work against picket. Every request is authenticated here, then applied as the token's
//! [`Actor`], so the management layer decides what it may see and do, exactly as for the UI.
//! Paths picket does not serve answer 404 and are counted, so an operator sees what a tool
//! wanted.

pub mod query;
pub mod shapes;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::intake::ratelimit::RateLimiter;
use crate::manage::issues::{
    EventDetail, EventList, IssueDelete, IssuePage, IssueSearch, IssueShow, IssueStatus, IssueView,
};
use crate::manage::keys::KeyList;
use crate::manage::releases::{
    DeployCreate, DeployList, ReleaseCreate, ReleaseDelete, ReleaseList, ReleaseShow, ReleaseUpdate,
};
use crate::manage::{Actor, Handle, ManageError, Operation};
use crate::store::issues::StatusChange;
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
        }
    }
}

/// A successful answer: a status, a JSON body, and the `Link` header of a page.
struct Reply {
    status: StatusCode,
    body: Value,
    link: Option<String>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            body,
            link: None,
        }
    }

    fn with_status(status: StatusCode, body: Value) -> Reply {
        Reply {
            status,
            body,
            link: None,
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
    let segments: Vec<String> = path
        .trim_start_matches("/api/0")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
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
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Err(ApiError::BadRequest(format!(
                "body: cannot read it ({e}); at most {MAX_BODY} bytes"
            )));
        }
    };
    let call = Call {
        api,
        actor,
        method,
        query,
        body,
        origin,
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
            issues(call, None).await
        }
        ["projects", org, project, "issues"] => {
            only(call, &[M::GET, M::PUT, M::DELETE])?;
            call.api.check_org(org)?;
            match call.method {
                M::GET => issues(call, Some(project)).await,
                _ => bulk(call, project).await,
            }
        }
        ["issues", id] => issue(call, id).await,
        ["organizations", org, "issues", id] => {
            call.api.check_org(org)?;
            issue(call, id).await
        }
        ["issues", id, "events"] => {
            only(call, &[M::GET])?;
            issue_events(call, id).await
        }
        ["organizations", org, "issues", id, "events"] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            issue_events(call, id).await
        }
        ["issues", id, "events", which] => {
            only(call, &[M::GET])?;
            issue_event(call, id, which).await
        }
        ["organizations", org, "issues", id, "events", which] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            issue_event(call, id, which).await
        }
        ["projects", org, project, "events", event_id] => {
            only(call, &[M::GET])?;
            call.api.check_org(org)?;
            project_event(call, project, event_id).await
        }
        ["organizations", org, "releases"] => {
            only(call, &[M::GET, M::POST])?;
            call.api.check_org(org)?;
            match call.method {
                M::GET => releases(call, None).await,
                _ => new_release(call, None).await,
            }
        }
        ["projects", org, project, "releases"] => {
            only(call, &[M::GET, M::POST])?;
            call.api.check_org(org)?;
            match call.method {
                M::GET => releases(call, Some(project)).await,
                _ => new_release(call, Some(project)).await,
            }
        }
        ["organizations", org, "releases", version] | ["projects", org, _, "releases", version] => {
            only(call, &[M::GET, M::PUT, M::DELETE])?;
            call.api.check_org(org)?;
            release(call, version).await
        }
        ["organizations", org, "releases", version, "deploys"] => {
            only(call, &[M::GET, M::POST])?;
            call.api.check_org(org)?;
            deploys(call, version).await
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

/// `<…?cursor=0:OFFSET:0>; rel="previous"; results="…"; cursor="…", <…>; rel="next"; …`, as
/// Sentry paginates.
fn link(call: &Call<'_>, offset: usize, limit: usize, more: bool) -> String {
    let url = |cursor: &str| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in call.query.iter().filter(|(k, _)| k != "cursor") {
            q.append_pair(k, v);
        }
        q.append_pair("cursor", cursor);
        format!("{}{}?{}", call.origin, call.path, q.finish())
    };
    let prev = format!("0:{}:1", offset.saturating_sub(limit));
    let next = format!("0:{}:0", offset + limit);
    format!(
        "<{}>; rel=\"previous\"; results=\"{}\"; cursor=\"{prev}\", <{}>; rel=\"next\"; results=\"{more}\"; cursor=\"{next}\"",
        url(&prev),
        offset > 0,
        url(&next),
    )
}

async fn issues(call: &Call<'_>, project: Option<&str>) -> Result<Reply, ApiError> {
    let search = query::search(param(call, "query").unwrap_or("is:unresolved"))?;
    let now = crate::time::now();
    let since = match (param(call, "start"), param(call, "statsPeriod")) {
        (Some(start), _) => time_field("start", Some(start))?,
        (None, Some(p)) if !p.is_empty() => Some(now - query::period(p)?),
        _ => None,
    };
    let until = time_field("end", param(call, "end"))?;
    let limit = query::limit(param(call, "limit"), ISSUES_PAGE, ISSUES_MAX)?;
    let offset = param(call, "cursor")
        .map(query::cursor)
        .transpose()?
        .unwrap_or(0);
    let mut projects: Vec<String> = match project {
        Some(p) => vec![p.to_string()],
        None => params(call, "project")
            .into_iter()
            .filter(|p| *p != "-1")
            .map(str::to_string)
            .collect(),
    };
    projects.dedup();
    let environments = params(call, "environment");
    let op = IssueSearch {
        projects,
        status: search.status,
        level: search.level,
        release: search.release,
        environment: search
            .environment
            .or_else(|| environments.first().map(|e| e.to_string())),
        text: search.text,
        since,
        until,
        sort: query::sort(param(call, "sort").unwrap_or(""))?,
        offset,
        limit,
    };
    let page: IssuePage = run(call, op).await?;
    let all = visible_projects(call).await?;
    let body = issue_list(call, &page.issues, &all);
    Ok(Reply {
        status: StatusCode::OK,
        body,
        link: Some(link(call, offset, limit, page.more)),
    })
}

fn issue_list(call: &Call<'_>, issues: &[IssueView], projects: &[Project]) -> Value {
    let base = call.api.handle.config.base_url();
    let org = call.api.organization();
    issues
        .iter()
        .filter_map(|i| {
            let p = projects.iter().find(|p| p.id == i.project_id)?;
            Some(shapes::issue(i, p, org, &base))
        })
        .collect()
}

/// The project and issue an API issue id names, if the actor may see the project.
async fn issue_ref(call: &Call<'_>, id: &str) -> Result<(Project, u64), ApiError> {
    let missing = || ApiError::Manage(ManageError::NotFound(format!("no issue {id}")));
    let id: u64 = id.parse().map_err(|_| missing())?;
    let (project, issue) = shapes::split_issue_id(id);
    let project = visible_project(call, &project.to_string())
        .await
        .map_err(|_| missing())?;
    Ok((project, issue))
}

/// What a status change in a request body asks for.
fn status_change(v: &Value) -> Result<Option<StatusChange>, ApiError> {
    let Some(status) = v.get("status") else {
        return Ok(None);
    };
    let details = v.get("statusDetails").cloned().unwrap_or(Value::Null);
    Ok(Some(match status.as_str() {
        Some("resolved" | "resolvedInNextRelease") => StatusChange::Resolve,
        Some("unresolved") => StatusChange::Unresolve,
        Some("ignored" | "archived" | "muted") => {
            let minutes = details.get("ignoreDuration").and_then(Value::as_f64);
            let until = match details.get("ignoreUntil").and_then(Value::as_str) {
                Some(t) => time_field("statusDetails.ignoreUntil", Some(t))?,
                None => minutes.map(|m| crate::time::now() + m * 60.0),
            };
            let more_events = details
                .get("ignoreCount")
                .or_else(|| details.get("ignoreUserCount"))
                .and_then(Value::as_u64);
            StatusChange::Ignore { until, more_events }
        }
        _ => {
            return Err(ApiError::BadRequest(format!(
                "status: {status} is not a status (resolved, unresolved or ignored)"
            )));
        }
    }))
}

async fn issue(call: &Call<'_>, id: &str) -> Result<Reply, ApiError> {
    only(call, &[Method::GET, Method::PUT, Method::DELETE])?;
    let (project, number) = issue_ref(call, id).await?;
    let slug = project.id.to_string();
    let base = call.api.handle.config.base_url();
    let org = call.api.organization().to_string();
    match call.method {
        Method::GET => {
            let view = run(
                call,
                IssueShow {
                    project: slug,
                    issue: number,
                },
            )
            .await?;
            Ok(Reply::ok(shapes::issue(&view, &project, &org, &base)))
        }
        Method::PUT => {
            let change: Value = body(call)?;
            let view = match status_change(&change)? {
                Some(change) => {
                    run(
                        call,
                        IssueStatus {
                            project: slug,
                            issue: number,
                            change,
                        },
                    )
                    .await?
                }
                None => {
                    run(
                        call,
                        IssueShow {
                            project: slug,
                            issue: number,
                        },
                    )
                    .await?
                }
            };
            Ok(Reply::ok(shapes::issue(&view, &project, &org, &base)))
        }
        _ => {
            call.actor.require_admin("delete issues")?;
            run(
                call,
                IssueDelete {
                    project: slug,
                    issue: number,
                },
            )
            .await?;
            Ok(Reply::with_status(StatusCode::ACCEPTED, Value::Null))
        }
    }
}

/// `PUT` or `DELETE` on a project's issues: `?id=…` (repeated) names them; without ids it
/// applies to the issues the `query` finds (as Sentry does), at most a page of them.
async fn bulk(call: &Call<'_>, project: &str) -> Result<Reply, ApiError> {
    let project = visible_project(call, project).await?;
    let mut ids = Vec::new();
    for id in params(call, "id") {
        let n: u64 = id
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("id: '{id}' is not an issue id")))?;
        let (p, issue) = shapes::split_issue_id(n);
        if p != project.id {
            return Err(ManageError::NotFound(format!("no issue {id}")).into());
        }
        ids.push(issue);
    }
    if ids.is_empty() {
        let search = query::search(param(call, "query").unwrap_or("is:unresolved"))?;
        let page: IssuePage = run(
            call,
            IssueSearch {
                projects: vec![project.id.to_string()],
                status: search.status,
                level: search.level,
                release: search.release,
                environment: search.environment,
                text: search.text,
                limit: ISSUES_MAX,
                ..Default::default()
            },
        )
        .await?;
        ids = page.issues.iter().map(|i| i.id).collect();
    }
    if call.method == Method::DELETE {
        call.actor.require_admin("delete issues")?;
        for issue in ids {
            run(
                call,
                IssueDelete {
                    project: project.id.to_string(),
                    issue,
                },
            )
            .await?;
        }
        return Ok(Reply::with_status(StatusCode::NO_CONTENT, Value::Null));
    }
    let asked: Value = body(call)?;
    let change = status_change(&asked)?
        .ok_or_else(|| ApiError::BadRequest("status: give the status to set".into()))?;
    for issue in &ids {
        run(
            call,
            IssueStatus {
                project: project.id.to_string(),
                issue: *issue,
                change,
            },
        )
        .await?;
    }
    let mut answer = asked;
    if let Value::Object(map) = &mut answer {
        map.entry("statusDetails").or_insert_with(|| json!({}));
    }
    Ok(Reply::ok(answer))
}

async fn issue_events(call: &Call<'_>, id: &str) -> Result<Reply, ApiError> {
    let (project, issue) = issue_ref(call, id).await?;
    let all = run(
        call,
        EventList {
            project: project.id.to_string(),
            issue,
        },
    )
    .await?;
    let limit = query::limit(param(call, "limit"), EVENTS_PAGE, ISSUES_MAX)?;
    let offset = param(call, "cursor")
        .map(query::cursor)
        .transpose()?
        .unwrap_or(0);
    let more = all.len() > offset + limit;
    let body = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|e| shapes::event_summary(e, &project))
        .collect();
    Ok(Reply {
        status: StatusCode::OK,
        body,
        link: Some(link(call, offset, limit, more)),
    })
}

async fn issue_event(call: &Call<'_>, id: &str, which: &str) -> Result<Reply, ApiError> {
    let (project, issue) = issue_ref(call, id).await?;
    let view = run(
        call,
        IssueShow {
            project: project.id.to_string(),
            issue,
        },
    )
    .await?;
    let event_id = match which {
        "latest" | "recommended" | "helpful" => view.last_event.to_string(),
        "oldest" => view.first_event.to_string(),
        other => other.to_string(),
    };
    let found = run(
        call,
        EventDetail {
            project: project.id.to_string(),
            event_id,
        },
    )
    .await?;
    if found.issue != issue {
        return Err(ManageError::NotFound(format!("no event {which} in issue {id}")).into());
    }
    Ok(Reply::ok(shapes::event(&found.event, &project, issue)))
}

async fn project_event(call: &Call<'_>, project: &str, event_id: &str) -> Result<Reply, ApiError> {
    let project = visible_project(call, project).await?;
    let found = run(
        call,
        EventDetail {
            project: project.id.to_string(),
            event_id: event_id.to_string(),
        },
    )
    .await?;
    Ok(Reply::ok(shapes::event(
        &found.event,
        &project,
        found.issue,
    )))
}

async fn releases(call: &Call<'_>, project: Option<&str>) -> Result<Reply, ApiError> {
    let list = run(
        call,
        ReleaseList {
            project: project.map(str::to_string),
        },
    )
    .await?;
    let org = call.api.organization();
    let wanted = param(call, "query").unwrap_or("");
    Ok(Reply::ok(
        list.iter()
            .filter(|r| r.version.contains(wanted))
            .map(|r| shapes::release(r, org))
            .collect(),
    ))
}

/// A project named in a release body: a slug, or a numeric id.
fn project_names(v: Option<&Value>) -> Result<Option<Vec<String>>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|p| match p {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                other => Err(ApiError::BadRequest(format!(
                    "projects: {other} is not a project slug or id"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(ApiError::BadRequest(format!(
            "projects: {other} is not a list of projects"
        ))),
    }
}

fn text_field(v: &Value, field: &str) -> Result<Option<String>, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{field}: {other} is not a string"
        ))),
    }
}

async fn new_release(call: &Call<'_>, project: Option<&str>) -> Result<Reply, ApiError> {
    let v: Value = body(call)?;
    let version = text_field(&v, "version")?
        .ok_or_else(|| ApiError::BadRequest("version: this field is required".into()))?;
    let mut projects = project_names(v.get("projects"))?.unwrap_or_default();
    if let Some(p) = project {
        projects.push(p.to_string());
    }
    let op = ReleaseCreate {
        version,
        projects,
        url: text_field(&v, "url")?,
        reference: text_field(&v, "ref")?,
        date_started: time_field("dateStarted", text_field(&v, "dateStarted")?.as_deref())?,
        date_released: time_field("dateReleased", text_field(&v, "dateReleased")?.as_deref())?,
    };
    let made = run(call, op).await?;
    let status = if made.created {
        StatusCode::CREATED
    } else {
        StatusCode::ALREADY_REPORTED
    };
    Ok(Reply::with_status(
        status,
        shapes::release(&made.release, call.api.organization()),
    ))
}

async fn release(call: &Call<'_>, version: &str) -> Result<Reply, ApiError> {
    let org = call.api.organization().to_string();
    let version = version.to_string();
    match call.method {
        Method::GET => {
            let r = run(call, ReleaseShow { version }).await?;
            Ok(Reply::ok(shapes::release(&r, &org)))
        }
        Method::PUT => {
            let v: Value = body(call)?;
            let op = ReleaseUpdate {
                version,
                projects: project_names(v.get("projects"))?,
                url: text_field(&v, "url")?,
                reference: text_field(&v, "ref")?,
                date_started: time_field("dateStarted", text_field(&v, "dateStarted")?.as_deref())?,
                date_released: time_field(
                    "dateReleased",
                    text_field(&v, "dateReleased")?.as_deref(),
                )?,
            };
            let r = run(call, op).await?;
            Ok(Reply::ok(shapes::release(&r, &org)))
        }
        _ => {
            run(call, ReleaseDelete { version }).await?;
            Ok(Reply::with_status(StatusCode::NO_CONTENT, Value::Null))
        }
    }
}

async fn deploys(call: &Call<'_>, version: &str) -> Result<Reply, ApiError> {
    let version = version.to_string();
    if call.method == Method::GET {
        let list = run(call, DeployList { version }).await?;
        return Ok(Reply::ok(list.iter().map(shapes::deploy).collect()));
    }
    let v: Value = body(call)?;
    let environment = text_field(&v, "environment")?
        .ok_or_else(|| ApiError::BadRequest("environment: this field is required".into()))?;
    let op = DeployCreate {
        version,
        environment,
        name: text_field(&v, "name")?,
        url: text_field(&v, "url")?,
        date_started: time_field("dateStarted", text_field(&v, "dateStarted")?.as_deref())?,
        date_finished: time_field("dateFinished", text_field(&v, "dateFinished")?.as_deref())?,
    };
    let d = run(call, op).await?;
    Ok(Reply::with_status(StatusCode::CREATED, shapes::deploy(&d)))
}

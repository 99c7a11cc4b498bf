//! The issue and event endpoints: search with Sentry's query syntax and cursor pages, show,
//! change the status of one or many, delete, and read an issue's events or one event with
//! its `entries`, and an event's attachments (listed, or one downloaded).

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::{
    ApiError, Call, EVENTS_PAGE, ISSUES_MAX, ISSUES_PAGE, Reply, body, only, param, params, query,
    run, shapes, time_field, visible_project, visible_projects,
};
use crate::manage::ManageError;
use crate::manage::activity::IssueAssign;
use crate::manage::attachments::{AttachmentFetch, AttachmentList, Which};
use crate::manage::issues::{
    EventDetail, EventFound, EventList, IssueDelete, IssuePage, IssueSearch, IssueShow,
    IssueStatus, IssueView,
};
use crate::store::issues::StatusChange;
use crate::store::projects::Project;

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

pub(super) async fn list(call: &Call<'_>, project: Option<&str>) -> Result<Reply, ApiError> {
    let search = param(call, "query").unwrap_or("is:unresolved").to_string();
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
    let environments = params(call, "environment")
        .into_iter()
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    let op = IssueSearch {
        projects,
        query: search,
        environments,
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
        link: Some(link(call, offset, limit, page.more)),
        ..Reply::ok(body)
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
        Some("resolvedInNextRelease") => StatusChange::ResolveInNextRelease,
        Some("resolved") => match (
            details.get("inNextRelease").and_then(Value::as_bool),
            details.get("inRelease").and_then(Value::as_str),
        ) {
            (Some(true), _) => StatusChange::ResolveInNextRelease,
            (_, Some(release)) => StatusChange::ResolveIn {
                release: release.to_string(),
            },
            _ => StatusChange::Resolve,
        },
        Some("unresolved") => StatusChange::Unresolve,
        Some("ignored" | "archived" | "muted") => {
            let minutes = details.get("ignoreDuration").and_then(Value::as_f64);
            let until = match details.get("ignoreUntil").and_then(Value::as_str) {
                Some(t) => time_field("statusDetails.ignoreUntil", Some(t))?,
                None => minutes.map(|m| crate::time::now() + m * 60.0),
            };
            let more_events = details.get("ignoreCount").and_then(Value::as_u64);
            let more_users = details.get("ignoreUserCount").and_then(Value::as_u64);
            StatusChange::Ignore {
                until,
                more_events,
                more_users,
            }
        }
        _ => {
            return Err(ApiError::BadRequest(format!(
                "status: {status} is not a status (resolved, unresolved or ignored)"
            )));
        }
    }))
}

/// Sentry's `assignedTo`: an email, `user:EMAIL`, or null or "" to unassign.
fn assignee(v: &Value) -> Result<Option<String>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(
            s.trim()
                .strip_prefix("user:")
                .unwrap_or(s.trim())
                .to_string(),
        )),
        other => Err(ApiError::BadRequest(format!(
            "assignedTo: {other} is not a user (an email, or null to unassign)"
        ))),
    }
}

pub(super) async fn one(call: &Call<'_>, id: &str) -> Result<Reply, ApiError> {
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
            if let Some(status) = status_change(&change)? {
                let op = IssueStatus {
                    project: slug.clone(),
                    issue: number,
                    change: status,
                };
                run(call, op).await?;
            }
            if let Some(to) = change.get("assignedTo") {
                let op = IssueAssign {
                    project: slug.clone(),
                    issue: number,
                    to: assignee(to)?,
                };
                run(call, op).await?;
            }
            let op = IssueShow {
                project: slug,
                issue: number,
            };
            let view = run(call, op).await?;
            Ok(Reply::ok(shapes::issue(&view, &project, &org, &base)))
        }
        _ => {
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
pub(super) async fn bulk(call: &Call<'_>, project: &str) -> Result<Reply, ApiError> {
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
        let page: IssuePage = run(
            call,
            IssueSearch {
                projects: vec![project.id.to_string()],
                query: param(call, "query").unwrap_or("is:unresolved").to_string(),
                limit: ISSUES_MAX,
                ..Default::default()
            },
        )
        .await?;
        ids = page.issues.iter().map(|i| i.id).collect();
    }
    if call.method == Method::DELETE {
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
                change: change.clone(),
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

pub(super) async fn events(call: &Call<'_>, id: &str) -> Result<Reply, ApiError> {
    let (project, issue) = issue_ref(call, id).await?;
    let limit = query::limit(param(call, "limit"), EVENTS_PAGE, ISSUES_MAX)?;
    let offset = param(call, "cursor")
        .map(query::cursor)
        .transpose()?
        .unwrap_or(0);
    let page = run(
        call,
        EventList {
            project: project.id.to_string(),
            issue,
            query: param(call, "query").map(str::to_string),
            offset,
            limit: Some(limit),
        },
    )
    .await?;
    let more = page.more;
    let body = page
        .events
        .iter()
        .map(|e| shapes::event_summary(e, &project))
        .collect();
    Ok(Reply {
        link: Some(link(call, offset, limit, more)),
        ..Reply::ok(body)
    })
}

pub(super) async fn event(call: &Call<'_>, id: &str, which: &str) -> Result<Reply, ApiError> {
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

/// A project the caller may see and one of its stored events.
async fn event_of(
    call: &Call<'_>,
    project: &str,
    event_id: &str,
) -> Result<(Project, EventFound), ApiError> {
    let project = visible_project(call, project).await?;
    let found = run(
        call,
        EventDetail {
            project: project.id.to_string(),
            event_id: event_id.to_string(),
        },
    )
    .await?;
    Ok((project, found))
}

pub(super) async fn project_event(
    call: &Call<'_>,
    project: &str,
    event_id: &str,
) -> Result<Reply, ApiError> {
    let (project, found) = event_of(call, project, event_id).await?;
    Ok(Reply::ok(shapes::event(
        &found.event,
        &project,
        found.issue,
    )))
}

/// An event's attachments as Sentry lists them; with an id, that one, and with `download`
/// in the query its bytes.
pub(super) async fn attachments(
    call: &Call<'_>,
    project: &str,
    event_id: &str,
    id: Option<&str>,
) -> Result<Reply, ApiError> {
    let (project, found) = event_of(call, project, event_id).await?;
    let event_id = found.event.event_id.to_string();
    let received = found.event.received;
    let Some(id) = id else {
        let list = run(
            call,
            AttachmentList {
                project: project.id.to_string(),
                event_id: event_id.clone(),
            },
        )
        .await?;
        return Ok(Reply::ok(Value::Array(
            list.iter()
                .map(|a| shapes::attachment(a, &event_id, received))
                .collect(),
        )));
    };
    let id = id.parse::<u32>().map_err(|_| {
        ManageError::NotFound(format!("attachment '{id}' not found: its id is a number"))
    })?;
    let fetched = run(
        call,
        AttachmentFetch {
            project: project.id.to_string(),
            event_id: event_id.clone(),
            which: Which::Id(id),
        },
    )
    .await?;
    if call.query.iter().any(|(k, _)| k == "download") {
        return Ok(Reply::download(
            fetched.view.content_disposition(),
            fetched.data,
        ));
    }
    Ok(Reply::ok(shapes::attachment(
        &fetched.view,
        &event_id,
        received,
    )))
}

//! The JSON of the Web API, shaped as Sentry's own answers with the fields clients read
//! (sentry-cli, GitLab's error tracking, Grafana's data source): camelCase names, ids as
//! strings, times in RFC 3339, an event's interfaces as `entries`.

use serde_json::{Map, Value, json};

use crate::event::Event;
use crate::event::model::{Breadcrumb, Exception, Frame, Json, Stacktrace};
use crate::manage::Actor;
use crate::manage::attachments::AttachmentView;
use crate::manage::issues::{EventSummary, IssueView};
use crate::manage::keys::KeyView;
use crate::manage::releases::{DeployView, ReleaseView};
use crate::store::projects::Project;
use crate::time::rfc3339;

/// The id the API shows for a project's issue: issue numbers are per project, Sentry's ids
/// are global, so the project's id goes in the high 32 bits.
pub fn issue_id(project: u64, issue: u64) -> u64 {
    (project << 32) | (issue & 0xffff_ffff)
}

/// The (project, issue) an API issue id stands for.
pub fn split_issue_id(id: u64) -> (u64, u64) {
    (id >> 32, id & 0xffff_ffff)
}

/// What `GET /api/0/` says about the caller.
pub fn user(actor: &Actor) -> Value {
    match actor.user() {
        Some(u) => json!({
            "id": u.email,
            "name": u.email,
            "username": u.email,
            "email": u.email,
            "isSuperuser": u.is_admin,
            "isActive": u.active,
        }),
        None => json!({
            "id": "0",
            "name": "picket operator",
            "username": "operator",
            "email": "operator",
            "isSuperuser": true,
            "isActive": true,
        }),
    }
}

pub fn organization(slug: &str) -> Value {
    json!({
        "id": "1",
        "slug": slug,
        "name": slug,
        "dateCreated": "1970-01-01T00:00:00.000Z",
        "status": {"id": "active", "name": "active"},
        "isEarlyAdopter": false,
        "require2FA": false,
        "requireEmailVerification": false,
        "features": [],
        "access": [],
        "avatar": {"avatarType": "letter_avatar", "avatarUuid": null},
    })
}

pub fn project(p: &Project, org: &str) -> Value {
    json!({
        "id": p.id.to_string(),
        "slug": p.slug,
        "name": p.name,
        "platform": null,
        "dateCreated": rfc3339(p.created),
        "isBookmarked": false,
        "isMember": true,
        "hasAccess": true,
        "isPublic": false,
        "status": "active",
        "features": [],
        "firstEvent": null,
        "organization": {"id": "1", "slug": org, "name": org},
    })
}

pub fn key(k: &KeyView, name: &str) -> Value {
    let dsn = crate::ids::Dsn::parse(&k.dsn).ok();
    json!({
        "id": k.public_key,
        "name": name,
        "label": name,
        "public": k.public_key,
        "secret": k.secret_key,
        "projectId": k.project,
        "isActive": k.active,
        "dateCreated": k.created,
        "dsn": {
            "secret": k.dsn,
            "public": dsn.as_ref().map_or_else(|| k.dsn.clone(), |d| d.public()),
        },
        "rateLimit": k.rate_limit.map(|r| json!({"window": 60, "count": r.per_minute})),
    })
}

/// `ZeroDivisionError: division by zero` → (type, value), as Sentry's `metadata` has them.
fn type_and_value(title: &str) -> (&str, &str) {
    title.split_once(": ").unwrap_or((title, ""))
}

pub fn issue(i: &IssueView, p: &Project, org: &str, base_url: &str) -> Value {
    let (ty, value) = type_and_value(&i.title);
    let mut status_details = serde_json::Map::new();
    if let Some(until) = &i.ignore_until {
        status_details.insert("ignoreUntil".into(), json!(until));
    }
    if let Some(count) = i.ignore_until_count {
        status_details.insert("ignoreCount".into(), json!(count));
    }
    if let Some(users) = i.ignore_until_users {
        status_details.insert("ignoreUserCount".into(), json!(users));
    }
    match (&i.resolved_in, i.resolved_in_next_release) {
        (Some(_), true) => {
            status_details.insert("inNextRelease".into(), json!(true));
        }
        (Some(release), false) => {
            status_details.insert("inRelease".into(), json!(release));
        }
        (None, _) => {}
    }
    let release = |v: &Option<String>| v.as_ref().map(|v| json!({"version": v, "shortVersion": v}));
    json!({
        "id": issue_id(p.id, i.id).to_string(),
        "shortId": format!("{}-{}", p.slug.to_ascii_uppercase(), i.id),
        "title": i.title,
        "culprit": i.culprit,
        "permalink": format!("{base_url}/projects/{}/issues/{}", p.slug, i.id),
        "logger": null,
        "level": i.level,
        "status": i.status,
        "statusDetails": status_details,
        "substatus": if i.status == "unresolved" && i.regressions > 0 { "regressed" } else { "ongoing" },
        "isPublic": false,
        "platform": i.platform,
        "project": {"id": p.id.to_string(), "name": p.name, "slug": p.slug, "platform": null},
        "type": if i.grouping.contains("exception") || !value.is_empty() { "error" } else { "default" },
        "issueType": "error",
        "issueCategory": "error",
        "metadata": {"type": ty, "value": value, "title": i.title},
        "numComments": i.comments,
        "assignedTo": i.assignee.as_ref().map(|email| json!({
            "type": "user", "id": email, "name": email, "email": email,
        })),
        "isBookmarked": false,
        "isSubscribed": false,
        "hasSeen": false,
        "annotations": [],
        "isUnhandled": false,
        "count": i.filtered.map_or(i.count, |f| f.count).to_string(),
        "userCount": i.filtered.map_or(i.users, |f| f.users),
        "filtered": i.filtered.map(|f| json!({"count": f.count.to_string(), "userCount": f.users})),
        "lifetime": {"count": i.count.to_string(), "userCount": i.users},
        "firstSeen": i.first_seen,
        "lastSeen": i.last_seen,
        "firstRelease": release(&i.first_release),
        "lastRelease": release(&i.last_release),
        "organization": {"slug": org},
    })
}

fn frame(f: &Frame) -> Value {
    let mut context = Vec::new();
    if let Some(line) = f.lineno {
        let first = line.saturating_sub(f.pre_context.len() as u64);
        for (n, text) in f.pre_context.iter().enumerate() {
            context.push(json!([first + n as u64, text]));
        }
        if let Some(text) = &f.context_line {
            context.push(json!([line, text]));
        }
        for (n, text) in f.post_context.iter().enumerate() {
            context.push(json!([line + 1 + n as u64, text]));
        }
    }
    json!({
        "filename": f.filename,
        "absPath": f.abs_path,
        "module": f.module,
        "package": f.package,
        "platform": f.platform,
        "function": f.function,
        "rawFunction": null,
        "symbol": null,
        "instructionAddr": f.instruction_addr,
        "lineNo": f.lineno,
        "colNo": f.colno,
        "inApp": f.in_app.unwrap_or(false),
        "context": context,
        "vars": f.vars,
        "trust": null,
        "errors": null,
    })
}

fn stacktrace(s: &Stacktrace) -> Value {
    json!({
        "frames": s.frames.iter().map(frame).collect::<Vec<_>>(),
        "framesOmitted": null,
        "registers": null,
        "hasSystemFrames": s.frames.iter().any(|f| f.in_app == Some(false)),
    })
}

fn exception(e: &Exception) -> Value {
    json!({
        "type": e.ty,
        "value": e.value,
        "module": e.module,
        "mechanism": e.mechanism,
        "stacktrace": e.stacktrace.as_ref().map(stacktrace),
        "rawStacktrace": null,
        "threadId": null,
    })
}

fn breadcrumb(b: &Breadcrumb) -> Value {
    json!({
        "type": b.ty.as_deref().unwrap_or("default"),
        "category": b.category,
        "level": b.level.as_deref().unwrap_or("info"),
        "message": b.message,
        "data": b.data,
        "timestamp": b.timestamp.map(rfc3339),
        "event_id": null,
    })
}

/// Headers and other name/value lists as `[[name, value], …]`, whichever form the SDK sent.
fn pairs(v: Option<&Value>) -> Value {
    match v {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| json!([k, v])).collect(),
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

fn request(r: &Value) -> Value {
    let query = match r.get("query_string") {
        Some(Value::String(q)) => form_urlencoded::parse(q.trim_start_matches('?').as_bytes())
            .map(|(k, v)| json!([k, v]))
            .collect(),
        other => pairs(other),
    };
    json!({
        "url": r.get("url"),
        "method": r.get("method"),
        "query": query,
        "fragment": r.get("fragment"),
        "data": r.get("data"),
        "headers": pairs(r.get("headers")),
        "cookies": pairs(r.get("cookies")),
        "env": r.get("env"),
        "inferredContentType": null,
    })
}

/// An event's interfaces as Sentry's API lists them.
fn entries(ev: &Event) -> Vec<Value> {
    let mut out = Vec::new();
    if !ev.exception.is_empty() {
        out.push(json!({
            "type": "exception",
            "data": {
                "values": ev.exception.iter().map(exception).collect::<Vec<_>>(),
                "hasSystemFrames": ev.exception.iter().flat_map(|e| &e.stacktrace)
                    .any(|s| s.frames.iter().any(|f| f.in_app == Some(false))),
                "excOmitted": null,
            },
        }));
    }
    if let Some(log) = &ev.logentry {
        out.push(json!({
            "type": "message",
            "data": {
                "formatted": log.formatted.as_ref().or(log.message.as_ref()),
                "message": log.message,
                "params": log.params,
            },
        }));
    }
    let threads: Vec<Value> = ev
        .threads
        .iter()
        .filter(|t| t.stacktrace.is_some())
        .map(|t| {
            json!({
                "id": t.id, "name": t.name, "crashed": t.crashed, "current": t.current,
                "stacktrace": t.stacktrace.as_ref().map(stacktrace),
            })
        })
        .collect();
    if !threads.is_empty() {
        out.push(json!({"type": "threads", "data": {"values": threads}}));
    }
    if !ev.breadcrumbs.is_empty() {
        out.push(json!({
            "type": "breadcrumbs",
            "data": {"values": ev.breadcrumbs.iter().map(breadcrumb).collect::<Vec<_>>()},
        }));
    }
    if let Some(r) = &ev.request {
        out.push(json!({"type": "request", "data": request(r)}));
    }
    out
}

fn tags(ev: &Event) -> Value {
    ev.tags
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect()
}

fn event_user(ev: &Event) -> Value {
    match &ev.user {
        Some(u) => json!({
            "id": u.id, "email": u.email, "username": u.username,
            "ip_address": u.ip_address, "name": u.name, "data": u.other,
        }),
        None => Value::Null,
    }
}

/// A whole event, as `…/events/{id}/` and `…/events/latest/` answer.
pub fn event(ev: &Event, project: &Project, issue: u64) -> Value {
    let (ty, value) = {
        let title = ev.title();
        let (t, v) = type_and_value(&title);
        (t.to_string(), v.to_string())
    };
    let message = ev
        .logentry
        .as_ref()
        .and_then(|l| l.formatted.clone().or_else(|| l.message.clone()))
        .unwrap_or_default();
    let mut contexts = Map::new();
    for (k, v) in &ev.contexts {
        contexts.insert(k.clone(), v.value());
    }
    json!({
        "id": ev.event_id.to_string(),
        "eventID": ev.event_id.to_string(),
        "groupID": issue_id(project.id, issue).to_string(),
        "projectID": project.id.to_string(),
        "projectSlug": project.slug,
        "title": ev.title(),
        "message": message,
        "culprit": ev.culprit(),
        "location": ev.culprit(),
        "platform": ev.platform,
        "type": if ev.exception.is_empty() { "default" } else { "error" },
        "metadata": {"type": ty, "value": value},
        "dateCreated": rfc3339(ev.timestamp),
        "dateReceived": rfc3339(ev.received),
        "level": ev.level.as_str(),
        "logger": ev.logger,
        "release": ev.release.as_ref().map(|v| json!({"version": v, "shortVersion": v})),
        "dist": ev.dist,
        "environment": ev.environment,
        "user": event_user(ev),
        "tags": tags(ev),
        "entries": entries(ev),
        "contexts": contexts,
        "context": ev.extra,
        "sdk": ev.sdk,
        "fingerprints": ev.fingerprint,
        "errors": [],
        "packages": ev.modules.as_ref().map_or_else(|| json!({}), Json::value),
    })
}

/// An event in an issue's list of events.
pub fn event_summary(e: &EventSummary, project: &Project) -> Value {
    json!({
        "id": e.event_id.to_string(),
        "eventID": e.event_id.to_string(),
        "groupID": issue_id(project.id, e.issue).to_string(),
        "projectID": project.id.to_string(),
        "title": e.title,
        "message": e.title,
        "dateCreated": e.timestamp,
        "dateReceived": e.received,
        "level": e.level,
        "tags": [{"key": "level", "value": e.level}],
        "platform": null,
        "user": null,
    })
}

pub fn release(r: &ReleaseView, org: &str) -> Value {
    let last_deploy = r.deploys.first().map(deploy);
    json!({
        "version": r.version,
        "shortVersion": r.version,
        "ref": r.reference,
        "url": r.url,
        "status": "open",
        "dateCreated": r.date_created,
        "dateStarted": r.date_started,
        "dateReleased": r.date_released,
        "firstEvent": r.first_event,
        "lastEvent": r.last_event,
        "newGroups": r.new_issues,
        "data": {},
        "commitCount": 0,
        "deployCount": r.deploys.len(),
        "lastDeploy": last_deploy,
        "lastCommit": null,
        "authors": [],
        "owner": null,
        "projects": r.projects.iter().map(|p| json!({
            "id": p.id, "slug": p.slug, "name": p.name, "platform": null, "platforms": [],
            "newGroups": null, "hasHealthData": false,
        })).collect::<Vec<_>>(),
        "organization": {"slug": org},
        "events": r.events,
    })
}

pub fn deploy(d: &DeployView) -> Value {
    json!({
        "id": d.id,
        "environment": d.environment,
        "name": d.name,
        "url": d.url,
        "dateStarted": d.date_started,
        "dateFinished": d.date_finished,
    })
}

/// An event's attachment as Sentry lists it (`sha1` is not kept: picket stores the bytes
/// compressed and does not hash them on arrival).
pub fn attachment(a: &AttachmentView, event_id: &str, received: f64) -> Value {
    let mimetype = a
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    json!({
        "id": a.id.to_string(),
        "event_id": event_id,
        "type": a.attachment_type,
        "name": a.name,
        "mimetype": mimetype,
        "size": a.size,
        "sha1": null,
        "dateCreated": rfc3339(received),
        "headers": {"Content-Type": mimetype},
    })
}

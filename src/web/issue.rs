//! The issue page: the issue's figures, charts and tag distributions, one of its events in
//! full (exception with frames and context, breadcrumbs, request, user, contexts, tags) with
//! links to the newer and older ones, and the raw event as JSON.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use redb::ReadableDatabase;
use serde_json::Value;

use super::charts::Range;
use super::{
    AggregatesKey, Nav, Page, Visitor, Web, ago, charts, not_found, now_hour, render, store_error,
};
use crate::event::Event;
use crate::event::model::Json;
use crate::manage::search::Scope;
use crate::store::issues::{self, Issue};
use crate::store::{EVENTS, ISSUE_EVENTS, ISSUE_TAGS, ISSUES, StoreError, events};

/// User feedback shown on an issue page, the latest first.
const FEEDBACK_SHOWN: usize = 20;

struct TagValue {
    value: String,
    percent: u64,
}

struct TagView {
    key: String,
    values: Vec<TagValue>,
}

struct IssueView {
    id: u64,
    title: String,
    culprit: String,
    level: &'static str,
    status: &'static str,
    /// Events in the chosen environment and release (all of them when none is chosen).
    count: u64,
    /// Events ever, for the live updates.
    total: u64,
    stored: u64,
    users: u64,
    users_estimated: bool,
    regressions: u64,
    /// The releases of its first event and of its latest one that named a release.
    first_release: Option<String>,
    last_release: Option<String>,
    first_seen: String,
    first_seen_exact: String,
    last_seen: String,
    last_seen_exact: String,
    strategy: &'static str,
    /// User feedback about its events.
    feedback: u64,
    /// The charts and tag distributions, shared with the cache.
    agg: Arc<Aggregates>,
    assignee: Option<String>,
    /// Why it is resolved or ignored, and until when ("ignored until 100 more events").
    state_detail: Option<String>,
    /// Releases its events named (for "resolve in release").
    releases: Vec<String>,
}

/// Why an issue is resolved or ignored, in words.
pub fn state_detail(issue: &Issue) -> Option<String> {
    use crate::store::issues::Status;
    match issue.status {
        Status::Resolved => issue.resolved_in.as_ref().map(|r| {
            if r.next {
                format!("in the next release (after {})", r.release)
            } else {
                format!("in release {}", r.release)
            }
        }),
        Status::Ignored => {
            let left = issue
                .ignore_until_count
                .map(|n| n.saturating_sub(issue.count));
            let users = issue
                .ignore_until_users
                .map(|n| n.saturating_sub(issue.user_count()));
            Some(
                crate::manage::activity::ignore_condition(issue.ignore_until, left, users)
                    .trim_start_matches("ignored ")
                    .to_string(),
            )
        }
        Status::Unresolved => None,
    }
}

struct FrameView {
    location: String,
    /// `file:line`, for the copy button.
    file_line: String,
    in_app: bool,
    first_line: u64,
    context: Vec<(String, bool)>,
    vars: Vec<(String, String)>,
    /// Why source maps could not map the frame.
    map_error: Option<String>,
}

/// Consecutive frames, in-app or not: the page opens in-app ones and folds the others into
/// one "N framework frames" group.
struct FrameGroup {
    folded: bool,
    frames: Vec<FrameView>,
}

/// Frames (newest first) in groups: runs of frames that are not the app's are folded, unless
/// `full` is asked for or no frame is marked as the app's.
fn frame_groups(frames: Vec<FrameView>, full: bool) -> Vec<FrameGroup> {
    let fold = !full && frames.iter().any(|f| f.in_app);
    let mut groups: Vec<FrameGroup> = Vec::new();
    for frame in frames {
        let folded = fold && !frame.in_app;
        match groups.last_mut() {
            Some(g) if g.folded == folded => g.frames.push(frame),
            _ => groups.push(FrameGroup {
                folded,
                frames: vec![frame],
            }),
        }
    }
    groups
}

struct ExceptionView {
    ty: String,
    value: String,
    mechanism: Option<String>,
    /// How it relates to the exception shown above it: "caused by", "during handling of",
    /// or none (the one raised, or a member of a group).
    label: Option<&'static str>,
    groups: Vec<FrameGroup>,
    /// The frames as the SDK sent them, when source maps changed them.
    raw_frames: Vec<FrameView>,
    /// Nesting in an exception group (0: top level).
    depth: usize,
    /// Whether it is an exception group (its children follow, indented).
    group: bool,
}

/// The order to show exceptions in, with their depth: an exception group's tree (parents
/// before their children, by `mechanism.exception_id` and `parent_id`) or, without one, the
/// chain newest first.
fn exception_order(list: &[crate::event::model::Exception]) -> Vec<(usize, usize)> {
    let id_of = |i: usize, key: &str| {
        list[i]
            .mechanism
            .as_ref()
            .and_then(|m| m.get(key))
            .and_then(Value::as_u64)
    };
    if !(0..list.len()).any(|i| id_of(i, "parent_id").is_some()) {
        return (0..list.len()).rev().map(|i| (i, 0)).collect();
    }
    let mut out = Vec::with_capacity(list.len());
    let mut shown = vec![false; list.len()];
    let mut stack: Vec<(usize, usize)> = (0..list.len())
        .rev()
        .filter(|&i| id_of(i, "parent_id").is_none())
        .map(|i| (i, 0))
        .collect();
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut shown[i], true) {
            continue;
        }
        out.push((i, depth));
        if let Some(id) = id_of(i, "exception_id") {
            // The SDKs list a group's exceptions newest first: the last listed child is the
            // group's first, and is shown first.
            let children =
                (0..list.len()).filter(|&c| !shown[c] && id_of(c, "parent_id") == Some(id));
            // A chain (a cause) stays at its depth; a group's members are nested under it.
            let nested = depth + usize::from(is_group(&list[i]));
            stack.extend(children.map(|c| (c, nested)));
        }
    }
    // Anything the tree did not reach (a broken parent link) still shows.
    for i in (0..list.len()).rev() {
        if !shown[i] {
            out.push((i, 0));
        }
    }
    out
}

fn is_group(e: &crate::event::model::Exception) -> bool {
    e.mechanism
        .as_ref()
        .and_then(|m| m.get("is_exception_group"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// How an exception relates to the one shown before it, from its mechanism's `source`
/// (`__cause__`, `cause`: caused by; `__context__`: during handling of); a group's members
/// (`exceptions[…]`) have none. Without a source, a chained exception is its cause.
fn chain_label(
    e: &crate::event::model::Exception,
    first: bool,
    in_group: bool,
) -> Option<&'static str> {
    if first || in_group {
        return None;
    }
    let source = e
        .mechanism
        .as_ref()
        .and_then(|m| m.get("source"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if source.starts_with("exceptions") {
        None
    } else if source == "__context__" {
        Some("during handling of")
    } else {
        Some("caused by")
    }
}

/// A stack trace's frames as the page shows them, newest first.
fn frame_views(trace: Option<&crate::event::model::Stacktrace>) -> Vec<FrameView> {
    trace
        .iter()
        .flat_map(|st| st.frames.iter().rev())
        .map(frame_view)
        .collect()
}

/// A frame as the event page shows it, newest first within its exception.
fn frame_view(f: &crate::event::model::Frame) -> FrameView {
    let file = f
        .filename
        .clone()
        .or_else(|| f.abs_path.clone())
        .or_else(|| f.module.clone())
        .unwrap_or_else(|| "?".into());
    let mut location = file.clone();
    let file_line = match f.lineno {
        Some(l) => format!("{file}:{l}"),
        None => file,
    };
    if let Some(l) = f.lineno {
        location.push_str(&format!(":{l}"));
        if let Some(c) = f.colno {
            location.push_str(&format!(":{c}"));
        }
    }
    if let Some(func) = &f.function {
        location.push_str(&format!(" in {func}"));
    }
    let mut context: Vec<(String, bool)> =
        f.pre_context.iter().map(|l| (l.clone(), false)).collect();
    if let Some(line) = &f.context_line {
        context.push((line.clone(), true));
    }
    context.extend(f.post_context.iter().map(|l| (l.clone(), false)));
    FrameView {
        location,
        file_line,
        in_app: f.in_app == Some(true),
        first_line: f
            .lineno
            .unwrap_or(1)
            .saturating_sub(f.pre_context.len() as u64)
            .max(1),
        context: if f.context_line.is_some() {
            context
        } else {
            Vec::new()
        },
        vars: rows_of(f.vars.as_ref().map(Json::value).as_ref()),
        map_error: f.map_error.clone(),
    }
}

struct Crumb {
    time: String,
    category: String,
    level: String,
    message: String,
}

struct EventView {
    event_id: String,
    timestamp: String,
    timestamp_exact: String,
    summary: Vec<(&'static str, String)>,
    message: Option<String>,
    exceptions: Vec<ExceptionView>,
    breadcrumbs: Vec<Crumb>,
    sections: Vec<(String, Vec<(String, String)>)>,
    attachments: Vec<crate::manage::attachments::AttachmentView>,
}

#[derive(Template)]
#[template(path = "issue.html")]
struct IssuePage {
    nav: Nav,
    slug: String,
    project_name: String,
    issue: IssueView,
    event: Option<EventView>,
    missing: String,
    position: String,
    newer: Option<String>,
    older: Option<String>,
    /// The latest user feedback about its events.
    feedback: Vec<super::feedback::FeedbackRow>,
    /// The crash-free rates of the issue's last release, when its SDK sends sessions.
    release_health: Option<String>,
    /// Who changed what, with the comments.
    activity: Vec<super::triage::Entry>,
    /// Who it can be assigned to.
    assignable: Vec<String>,
    /// The visitor owns the project (may delete the issue).
    owner: bool,
    /// The commit the page shows, for the live updates.
    version: u64,
    /// The events chart over the chosen range, of the chosen environment and release.
    chart: String,
    /// Every frame open (the toggle), and the links to turn it on and off.
    full: bool,
    full_link: String,
    filter: IssueFilter,
}

/// What the issue page counts: an environment, a release, and the chart's range.
struct IssueFilter {
    scope: Scope,
    range: Range,
    environment: String,
    release: String,
    environments: Vec<String>,
    releases: Vec<String>,
    /// Query strings of each range with the rest of the filter.
    ranges: Vec<(&'static str, &'static str, String, bool)>,
    /// "in production, of release shop@1.1"; empty for all events.
    counting: String,
}

impl IssueFilter {
    fn from(query: &HashMap<String, String>, issue: &Issue) -> IssueFilter {
        let get = |k: &str| {
            query
                .get(k)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let (environment, release) = (get("environment"), get("release"));
        let range = Range::named(&get("range"));
        let scope = Scope {
            environments: [environment.clone()]
                .into_iter()
                .filter(|e| !e.is_empty())
                .collect(),
            releases: [release.clone()]
                .into_iter()
                .filter(|r| !r.is_empty())
                .collect(),
            since: None,
        };
        let ranges = charts::RANGES
            .iter()
            .map(|r| {
                let mut q = form_urlencoded::Serializer::new(String::new());
                for (k, v) in [("environment", &environment), ("release", &release)] {
                    if !v.is_empty() {
                        q.append_pair(k, v);
                    }
                }
                q.append_pair("range", r.name);
                (r.name, r.label, q.finish(), r.name == range.name)
            })
            .collect();
        IssueFilter {
            counting: scope.describe(""),
            scope,
            range,
            environment,
            release,
            environments: issue.environments.clone(),
            releases: issue.releases.iter().rev().cloned().collect(),
            ranges,
        }
    }

    /// The chart: hourly counts by the events' own time (the filtered slices, or the issue's
    /// own buckets when unfiltered); the last hour from the newest stored events.
    fn chart(&self, txn: &redb::ReadTransaction, issue: &Issue) -> Result<String, StoreError> {
        let now = crate::time::now();
        let now_hour = now_hour();
        let counts = if self.range.hours_per_bucket == 0 {
            self.range
                .bucket_times(&self.recent_times(txn, issue, now)?, now)
        } else {
            let from = self.range.first_hour(now_hour);
            let points = self.scope.hourly(txn, issue, from, now_hour)?;
            self.range.bucket_hours(&points, now_hour)
        };
        Ok(charts::timeline(
            &counts,
            self.range.start(now),
            self.range.bucket_secs(),
        ))
    }

    /// When the issue's events of the last hour happened (by their own clock), read from
    /// the newest stored events (at most [`RECENT_EVENTS_READ`]).
    fn recent_times(
        &self,
        txn: &redb::ReadTransaction,
        issue: &Issue,
        now: f64,
    ) -> Result<Vec<f64>, StoreError> {
        let order = txn.open_table(ISSUE_EVENTS)?;
        let table = txn.open_table(EVENTS)?;
        let mut out = Vec::new();
        let range = (issue.project, issue.id, 0)..=(issue.project, issue.id, u64::MAX);
        for row in order.range(range)?.rev().take(RECENT_EVENTS_READ) {
            let (_, id) = row?;
            let Some(id) = crate::ids::EventId::from_slice(id.value()) else {
                continue;
            };
            let Some(stored) = events::get(&table, issue.project, &id)? else {
                continue;
            };
            let ev = &stored.event;
            if ev.received < now - 3600.0 {
                break;
            }
            let slice =
                crate::store::slices::slice_name(ev.environment.as_deref(), ev.release.as_deref());
            if self.scope.admits(&slice) {
                out.push(ev.happened());
            }
        }
        Ok(out)
    }
}

/// Stored events read for the last hour's chart.
const RECENT_EVENTS_READ: usize = 5000;

/// An issue's tag distributions, cached by its event count and the hour.
pub struct Aggregates {
    tags: Vec<TagView>,
}

fn aggregates(web: &Web, issue: &Issue) -> Result<Arc<Aggregates>, StoreError> {
    let now = now_hour();
    let key = AggregatesKey {
        project: issue.project,
        issue: issue.id,
        count: issue.count,
        hour: now,
    };
    web.aggregates(key, || {
        let txn = web.handle.db.begin_read()?;
        let mut by_key: std::collections::BTreeMap<String, Vec<(String, u64)>> = Default::default();
        for (k, v, n) in issues::tags(&txn.open_table(ISSUE_TAGS)?, issue.project, issue.id)? {
            by_key.entry(k).or_default().push((v, n));
        }
        let tags = by_key
            .into_iter()
            .map(|(key, mut values)| {
                values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                values.truncate(5);
                TagView {
                    key,
                    values: values
                        .into_iter()
                        .map(|(value, n)| TagValue {
                            value,
                            percent: (n * 100).checked_div(issue.count).unwrap_or(0).min(100),
                        })
                        .collect(),
                }
            })
            .collect();
        Ok(Aggregates { tags })
    })
}

pub fn issue_page(
    web: &Web,
    visitor: &Visitor,
    slug: &str,
    id: &str,
    query: &HashMap<String, String>,
) -> Page {
    let (Some(project), Ok(id)) = (web.visible_project(visitor, slug), id.parse::<u64>()) else {
        return not_found(Nav::of(visitor));
    };
    let build = || -> Result<Option<IssuePage>, StoreError> {
        // The version first: what is read after it is at least that new.
        let version = web.stats.version.load(std::sync::atomic::Ordering::Acquire);
        let txn = web.handle.db.begin_read()?;
        let Some(issue) = issues::get(&txn.open_table(ISSUES)?, project.id, id)? else {
            return Ok(None);
        };
        let agg = aggregates(web, &issue)?;
        let filter = IssueFilter::from(query, &issue);
        let full = query.get("full").is_some_and(|v| v == "1");
        let counted = filter.scope.count(&txn, &issue)?;
        let chart = filter.chart(&txn, &issue)?;
        let ids = events::of_issue(&txn.open_table(ISSUE_EVENTS)?, project.id, id)?;
        let wanted = query
            .get("event")
            .map(|e| e.trim().replace('-', "").to_ascii_lowercase());
        let index = match &wanted {
            Some(w) if !w.is_empty() => ids.iter().position(|i| i.to_string() == *w),
            _ => ids.len().checked_sub(1),
        };
        let table = txn.open_table(EVENTS)?;
        let stored = match index {
            Some(i) => events::get(&table, project.id, &ids[i])?,
            None => None,
        };
        let link = |i: usize| format!("/projects/{}/issues/{id}/?event={}", project.slug, ids[i]);
        let feedback = if issue.feedback == 0 {
            Vec::new()
        } else {
            let op = crate::manage::feedback::FeedbackList {
                project: project.slug.clone(),
                issue: Some(id),
                limit: Some(FEEDBACK_SHOWN),
            };
            match web.handle.run(&visitor.actor(), op) {
                Ok(list) => list.into_iter().map(Into::into).collect(),
                Err(e) => {
                    tracing::warn!("feedback of issue {id} not shown: {e}");
                    Vec::new()
                }
            }
        };
        let missing = match (&wanted, index) {
            (Some(w), None) if !w.is_empty() => format!("No stored event {w} in this issue."),
            _ => "No event of this issue is stored any more (retention removed them).".into(),
        };
        let release_health = match &issue.last_release {
            Some(release) => {
                let h = crate::store::health::of_release(
                    &txn,
                    &[project.id],
                    release,
                    crate::time::now(),
                )?;
                (h.sessions > 0).then(|| {
                    format!(
                        "{} crash-free sessions, {} crash-free users ({} sessions)",
                        super::releases::percent(h.crash_free_sessions),
                        super::releases::percent(h.crash_free_users),
                        h.sessions
                    )
                })
            }
            None => None,
        };
        Ok(Some(IssuePage {
            activity: super::triage::timeline(web, visitor, &project, id),
            assignable: super::triage::assignable(web, &project),
            owner: visitor.actor().may_own(&project),
            version,
            release_health,
            nav: Nav::of(visitor),
            slug: project.slug.clone(),
            project_name: project.name.clone(),
            position: match index {
                Some(i) => format!("Event {} of {} stored", ids.len() - i, ids.len()),
                None => String::new(),
            },
            newer: index.filter(|&i| i + 1 < ids.len()).map(|i| link(i + 1)),
            older: index.filter(|&i| i > 0).map(|i| link(i - 1)),
            event: stored.map(|s| {
                let mut view = event_view(&s.event, full);
                let op = crate::manage::attachments::AttachmentList {
                    project: project.slug.clone(),
                    event_id: s.event.event_id.to_string(),
                };
                match web.handle.run(&visitor.actor(), op) {
                    Ok(list) => view.attachments = list,
                    Err(e) => tracing::warn!("attachments of an event not shown: {e}"),
                }
                view
            }),
            missing,
            issue: IssueView {
                id: issue.id,
                title: issue.title.clone(),
                culprit: issue.culprit.clone(),
                level: issue.level.as_str(),
                status: issue.status.as_str(),
                count: counted.events,
                total: issue.count,
                stored: issue.stored,
                users: counted.users,
                users_estimated: counted.users_estimated,
                regressions: issue.regressions,
                first_release: issue.first_release.clone(),
                last_release: issue.last_release.clone(),
                first_seen: ago(issue.first_seen),
                first_seen_exact: crate::time::rfc3339(issue.first_seen),
                last_seen: ago(issue.last_seen),
                last_seen_exact: crate::time::rfc3339(issue.last_seen),
                strategy: issue.strategy.as_str(),
                feedback: issue.feedback,
                agg,
                assignee: issue.assignee.clone(),
                state_detail: state_detail(&issue),
                releases: issue.releases.clone(),
            },
            chart,
            full,
            full_link: {
                let mut q = form_urlencoded::Serializer::new(String::new());
                for (k, v) in query.iter().filter(|(k, _)| k.as_str() != "full") {
                    q.append_pair(k, v);
                }
                if !full {
                    q.append_pair("full", "1");
                }
                format!("?{}", q.finish())
            },
            filter,
            feedback,
        }))
    };
    match build() {
        Ok(Some(page)) => render(page),
        Ok(None) => not_found(Nav::of(visitor)),
        Err(e) => store_error(Nav::of(visitor), e),
    }
}

/// A JSON value as text: strings as they are, the rest as compact JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

fn rows_of(v: Option<&Value>) -> Vec<(String, String)> {
    match v {
        Some(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Some(other) if !other.is_null() => vec![(String::new(), text(other))],
        _ => Vec::new(),
    }
}

fn event_view(ev: &Event, full: bool) -> EventView {
    let mut summary: Vec<(&'static str, String)> = vec![
        ("level", ev.level.as_str().to_string()),
        ("platform", ev.platform.clone()),
    ];
    for (label, value) in [
        ("environment", &ev.environment),
        ("release", &ev.release),
        ("server name", &ev.server_name),
        ("transaction", &ev.transaction),
        ("logger", &ev.logger),
    ] {
        if let Some(v) = value {
            summary.push((label, v.clone()));
        }
    }
    if let Some(url) = ev.request_field("url") {
        let method = ev.request_field("method").unwrap_or("");
        summary.push(("request", format!("{method} {url}").trim().to_string()));
    }
    if let Some(user) = &ev.user {
        let who = [&user.id, &user.email, &user.username, &user.ip_address]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(" · ");
        if !who.is_empty() {
            summary.push(("user", who));
        }
    }
    if !ev.truncated.is_empty() {
        summary.push(("truncated", ev.truncated.join(", ")));
    }
    let filtered = crate::event::scrub::filtered_count(ev);
    if filtered > 0 {
        summary.push((
            "scrubbed",
            format!(
                "{filtered} value{} filtered before storing (_meta in the raw JSON says which and why)",
                if filtered == 1 { "" } else { "s" }
            ),
        ));
    }
    let order = exception_order(&ev.exception);
    let exceptions = order
        .iter()
        .enumerate()
        .map(|(n, &(i, depth))| {
            let e = &ev.exception[i];
            let frames = frame_views(e.stacktrace.as_ref());
            ExceptionView {
                depth: depth.min(5),
                group: is_group(e),
                label: chain_label(e, n == 0, depth > 0),
                ty: e.ty.clone().unwrap_or_else(|| "Error".into()),
                value: e.value.clone().unwrap_or_default(),
                mechanism: e
                    .mechanism
                    .as_ref()
                    .map(|m| text(&m["type"]))
                    .filter(|m| !m.is_empty()),
                groups: frame_groups(frames, full),
                raw_frames: frame_views(e.raw_stacktrace.as_ref()),
            }
        })
        .collect();
    let breadcrumbs = ev
        .breadcrumbs
        .iter()
        .map(|b| Crumb {
            time: b.timestamp.map(crate::time::rfc3339).unwrap_or_default(),
            category: b
                .category
                .clone()
                .or_else(|| b.ty.clone())
                .unwrap_or_default(),
            level: b.level.clone().unwrap_or_default(),
            message: match (&b.message, &b.data) {
                (Some(m), _) => m.clone(),
                (None, Some(d)) => text(&d.value()),
                (None, None) => String::new(),
            },
        })
        .collect();
    let message = ev
        .logentry
        .as_ref()
        .and_then(|l| l.formatted.clone().or_else(|| l.message.clone()));
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    sections.push(("Request".into(), rows_of(ev.request.as_ref())));
    if let Some(user) = &ev.user {
        sections.push((
            "User".into(),
            rows_of(serde_json::to_value(user).ok().as_ref()),
        ));
    }
    for (name, ctx) in &ev.contexts {
        sections.push((format!("Context: {name}"), rows_of(Some(&ctx.value()))));
    }
    sections.push((
        "Tags".into(),
        ev.tags
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ));
    sections.push((
        "Extra".into(),
        (ev.extra.iter())
            .map(|(k, v)| (k.clone(), text(&v.value())))
            .collect(),
    ));
    sections.push((
        "SDK".into(),
        rows_of(ev.sdk.as_ref().map(Json::value).as_ref()),
    ));
    if !ev.fingerprint.is_empty() {
        sections.push((
            "Fingerprint".into(),
            vec![(String::new(), ev.fingerprint.join(" · "))],
        ));
    }
    EventView {
        event_id: ev.event_id.to_string(),
        timestamp: ago(ev.timestamp),
        timestamp_exact: crate::time::rfc3339(ev.timestamp),
        summary,
        message,
        exceptions,
        breadcrumbs,
        sections,
        attachments: Vec::new(),
    }
}

/// An attachment's bytes as a download, never shown inline: served as
/// `application/octet-stream` with `Content-Disposition: attachment` and `nosniff`.
pub fn attachment(web: &Web, visitor: &Visitor, slug: &str, event: &str, id: &str) -> Page {
    let Ok(id) = id.parse::<u32>() else {
        return not_found(Nav::of(visitor));
    };
    let op = crate::manage::attachments::AttachmentFetch {
        project: slug.to_string(),
        event_id: event.to_string(),
        which: crate::manage::attachments::Which::Id(id),
    };
    match web.handle.run(&visitor.actor(), op) {
        Ok(found) => {
            let mut page = super::page(StatusCode::OK, "application/octet-stream", found.data);
            if let Ok(v) = HeaderValue::from_str(&found.view.content_disposition()) {
                page.headers_mut().insert("content-disposition", v);
            }
            page
        }
        Err(_) => not_found(Nav::of(visitor)),
    }
}

pub fn raw_event(web: &Web, visitor: &Visitor, slug: &str, file: &str) -> Page {
    let Some(project) = web.visible_project(visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    let Some(id) = file
        .strip_suffix(".json")
        .and_then(crate::ids::EventId::parse)
    else {
        return not_found(Nav::of(visitor));
    };
    let read = || -> Result<Option<String>, StoreError> {
        let txn = web.handle.db.begin_read()?;
        Ok(events::get(&txn.open_table(EVENTS)?, project.id, &id)?
            .map(|s| serde_json::to_string_pretty(&s.event).unwrap_or_default()))
    };
    match read() {
        Ok(Some(json)) => super::page(StatusCode::OK, "application/json", json),
        Ok(None) => not_found(Nav::of(visitor)),
        Err(e) => store_error(Nav::of(visitor), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::model::Exception;
    use serde_json::json;

    fn exception(ty: &str, mechanism: Value) -> Exception {
        serde_json::from_value(json!({"type": ty, "mechanism": mechanism})).unwrap()
    }

    #[test]
    fn an_exception_group_shows_as_its_tree_and_a_chain_newest_first() {
        // As sentry-sdk sends `ExceptionGroup("batch", [KeyError, ExceptionGroup("io",
        // [OSError])])`: depth-first from the group, then the whole list reversed.
        let list = [
            exception("OSError", json!({"exception_id": 3, "parent_id": 2})),
            exception(
                "ExceptionGroup",
                json!({"exception_id": 2, "parent_id": 0, "is_exception_group": true}),
            ),
            exception("KeyError", json!({"exception_id": 1, "parent_id": 0})),
            exception(
                "ExceptionGroup",
                json!({"exception_id": 0, "is_exception_group": true}),
            ),
        ];
        assert_eq!(exception_order(&list), [(3, 0), (2, 1), (1, 1), (0, 2)]);

        // A parent link to nothing, or a cycle, still shows every exception once.
        let broken = [
            exception("A", json!({"exception_id": 1, "parent_id": 2})),
            exception("B", json!({"exception_id": 2, "parent_id": 1})),
            exception("Root", json!({"exception_id": 0})),
        ];
        assert_eq!(exception_order(&broken), [(2, 0), (1, 0), (0, 0)]);

        // A chain without ids: newest (last) first.
        let chain = [
            exception("Cause", json!({})),
            exception("Effect", json!({})),
        ];
        assert_eq!(exception_order(&chain), [(1, 0), (0, 0)]);
    }
}

//! The pages: what each one reads from the file and hands to its template, and the form
//! actions, which go through the same management requests as the CLI.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use hyper::StatusCode;
use redb::ReadableDatabase;
use serde_json::Value;

use super::{
    AggregatesKey, Form, Nav, Page, Visitor, Web, charts, html, message, not_found, redirect,
    store_error,
};
use crate::control::Request;
use crate::event::Event;
use crate::ids::RateLimit;
use crate::store::issues::{self, Issue, Status, StatusChange};
use crate::store::projects::{self, Project};
use crate::store::users::{self, User};
use crate::store::{
    EVENTS, ISSUE_EVENTS, ISSUE_HOURS, ISSUE_TAGS, ISSUES, KEYS, PROJECT_HOURS, PROJECT_SLUGS,
    PROJECTS, StoreError, USERS, events,
};

/// Issues on one page of the list.
const PAGE_SIZE: usize = 50;

fn render(t: impl Template) -> Page {
    match t.render() {
        Ok(body) => html(StatusCode::OK, body),
        Err(e) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("template error: {e}"),
        ),
    }
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

/// The project a visitor may see, by slug; `None` for a project that does not exist and for
/// one the visitor is not a member of, alike.
fn visible_project(web: &Web, visitor: &Visitor, slug: &str) -> Option<Project> {
    let txn = web.handle.db.begin_read().ok()?;
    let project = projects::find(
        &txn.open_table(PROJECTS).ok()?,
        &txn.open_table(PROJECT_SLUGS).ok()?,
        slug,
    )
    .ok()?;
    (visitor.user.is_admin || project.members.contains(&visitor.user.email)).then_some(project)
}

/// A project's issues as of some commit, with what the list's text search looks at.
pub struct IssueSnapshot {
    version: u64,
    issues: Vec<Arc<Issue>>,
    index: HashMap<u64, usize>,
    /// Lowercased title and culprit of each issue.
    haystacks: Vec<Arc<str>>,
    /// Every environment and release the issues name (for the list's filters).
    environments: std::collections::BTreeSet<String>,
    releases: std::collections::BTreeSet<String>,
}

fn haystack(issue: &Issue) -> Arc<str> {
    format!("{}\n{}", issue.title, issue.culprit)
        .to_lowercase()
        .into()
}

impl IssueSnapshot {
    fn put(&mut self, issue: Issue) {
        let text = haystack(&issue);
        for e in &issue.environments {
            if !self.environments.contains(e) {
                self.environments.insert(e.clone());
            }
        }
        for r in &issue.releases {
            if !self.releases.contains(r) {
                self.releases.insert(r.clone());
            }
        }
        match self.index.get(&issue.id) {
            Some(&at) => {
                self.issues[at] = Arc::new(issue);
                self.haystacks[at] = text;
            }
            None => {
                self.index.insert(issue.id, self.issues.len());
                self.issues.push(Arc::new(issue));
                self.haystacks.push(text);
            }
        }
    }
}

/// A project's issues as of the last commit: the cached snapshot, refreshed with the issues
/// changed since (or read whole when that cannot be told).
fn project_issues(web: &Web, project: u64) -> Result<Arc<IssueSnapshot>, StoreError> {
    use std::sync::atomic::Ordering;
    // The version first: what is read after it is at least that new.
    let version = web.stats.version.load(Ordering::Acquire);
    let cached = web
        .snapshots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&project)
        .cloned();
    if let Some(snapshot) = &cached
        && snapshot.version == version
    {
        return Ok(snapshot.clone());
    }
    let changed = cached.as_ref().and_then(|s| {
        web.stats
            .changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .since(s.version, project)
    });
    let txn = web.handle.db.begin_read()?;
    let table = txn.open_table(ISSUES)?;
    let fresh = match (cached, changed) {
        (Some(old), Some(ids)) => {
            let mut next = IssueSnapshot {
                version,
                issues: old.issues.clone(),
                index: old.index.clone(),
                haystacks: old.haystacks.clone(),
                environments: old.environments.clone(),
                releases: old.releases.clone(),
            };
            for id in ids {
                if let Some(issue) = issues::get(&table, project, id)? {
                    next.put(issue);
                }
            }
            next
        }
        _ => {
            let mut next = IssueSnapshot {
                version,
                issues: Vec::new(),
                index: HashMap::new(),
                haystacks: Vec::new(),
                environments: Default::default(),
                releases: Default::default(),
            };
            for issue in issues::list(&table, project, None)? {
                next.put(issue);
            }
            next
        }
    };
    let fresh = Arc::new(fresh);
    web.snapshots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(project, fresh.clone());
    Ok(fresh)
}

// ---- projects page ----

struct ProjectRow {
    slug: String,
    name: String,
    unresolved: usize,
    spark: String,
    events_24h: u64,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    nav: Nav,
    projects: Vec<ProjectRow>,
}

pub fn projects(web: &Web, visitor: &Visitor) -> Page {
    let build = || -> Result<Vec<ProjectRow>, StoreError> {
        let txn = web.handle.db.begin_read()?;
        let all = projects::list(&txn.open_table(PROJECTS)?)?;
        let hours_table = txn.open_table(PROJECT_HOURS)?;
        let now = now_hour();
        let mut rows = Vec::new();
        for p in all {
            if !(visitor.user.is_admin || p.members.contains(&visitor.user.email)) {
                continue;
            }
            let issues = project_issues(web, p.id)?;
            let mut points = Vec::new();
            for row in hours_table.range((p.id, now.saturating_sub(23))..=(p.id, now))? {
                let (k, v) = row?;
                points.push((k.value().1, v.value()));
            }
            let counts = charts::hourly(&points, now, 24);
            rows.push(ProjectRow {
                slug: p.slug.clone(),
                name: p.name.clone(),
                unresolved: issues
                    .issues
                    .iter()
                    .filter(|i| i.status == Status::Unresolved)
                    .count(),
                events_24h: counts.iter().sum(),
                spark: charts::bars(&counts, 120, 24, "spark"),
            });
        }
        Ok(rows)
    };
    match build() {
        Ok(projects) => render(ProjectsPage {
            nav: Nav::of(visitor),
            projects,
        }),
        Err(e) => store_error(Nav::of(visitor), &e),
    }
}

// ---- issue list ----

struct Opt {
    value: String,
    label: String,
    selected: bool,
}

struct Select {
    name: &'static str,
    label: &'static str,
    options: Vec<Opt>,
}

fn select(
    name: &'static str,
    label: &'static str,
    any: Option<&str>,
    values: &[(String, String)],
    current: &str,
) -> Select {
    let mut options = Vec::new();
    if let Some(any) = any {
        options.push(Opt {
            value: String::new(),
            label: any.to_string(),
            selected: current.is_empty(),
        });
    }
    for (value, text) in values {
        options.push(Opt {
            selected: value == current,
            value: value.clone(),
            label: text.clone(),
        });
    }
    Select {
        name,
        label,
        options,
    }
}

struct IssueRow {
    id: u64,
    title: String,
    culprit: String,
    level: &'static str,
    status: &'static str,
    count: u64,
    users: u64,
    first_seen: String,
    first_seen_exact: String,
    last_seen: String,
    last_seen_exact: String,
    spark: String,
}

#[derive(Template)]
#[template(path = "issues.html")]
struct IssuesPage {
    nav: Nav,
    slug: String,
    project_name: String,
    q: String,
    selects: Vec<Select>,
    issues: Vec<IssueRow>,
    total: usize,
    first_shown: usize,
    last_shown: usize,
    back: String,
    prev_page: Option<String>,
    next_page: Option<String>,
}

/// The list's query, with defaults.
struct ListQuery {
    status: String,
    level: String,
    environment: String,
    release: String,
    sort: String,
    q: String,
    page: usize,
}

impl ListQuery {
    fn from(query: &HashMap<String, String>) -> ListQuery {
        let get = |k: &str| {
            query
                .get(k)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let status = match get("status").as_str() {
            s @ ("resolved" | "ignored" | "all") => s.to_string(),
            _ => "unresolved".into(),
        };
        let sort = match get("sort").as_str() {
            s @ ("first_seen" | "frequency") => s.to_string(),
            _ => "last_seen".into(),
        };
        ListQuery {
            status,
            level: get("level"),
            environment: get("environment"),
            release: get("release"),
            sort,
            q: get("q"),
            page: get("page").parse().unwrap_or(0),
        }
    }

    fn url(&self, slug: &str, page: usize) -> String {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("status", self.status.as_str()),
            ("level", &self.level),
            ("environment", &self.environment),
            ("release", &self.release),
            ("sort", &self.sort),
            ("q", &self.q),
        ] {
            if !v.is_empty() {
                ser.append_pair(k, v);
            }
        }
        if page > 0 {
            ser.append_pair("page", &page.to_string());
        }
        format!("/projects/{slug}/?{}", ser.finish())
    }
}

pub fn issue_list(
    web: &Web,
    visitor: &Visitor,
    slug: &str,
    query: &HashMap<String, String>,
) -> Page {
    let Some(project) = visible_project(web, visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    let q = ListQuery::from(query);
    let build = || -> Result<IssuesPage, StoreError> {
        let all = project_issues(web, project.id)?;
        let txn = web.handle.db.begin_read()?;
        let tags_table = txn.open_table(ISSUE_TAGS)?;
        let (mut words, mut tags) = (Vec::new(), Vec::new());
        for token in q.q.split_whitespace() {
            match token.split_once(':') {
                Some((k, v)) if !k.is_empty() && !v.is_empty() => tags.push((k, v)),
                _ => words.push(token.to_lowercase()),
            }
        }
        let mut matched: Vec<&Issue> = Vec::new();
        for (issue, text) in all.issues.iter().zip(&all.haystacks) {
            let status_ok = q.status == "all" || issue.status.as_str() == q.status;
            let level_ok = q.level.is_empty() || issue.level.as_str() == q.level;
            let env_ok = q.environment.is_empty() || issue.environments.contains(&q.environment);
            let release_ok = q.release.is_empty() || issue.releases.contains(&q.release);
            if !(status_ok && level_ok && env_ok && release_ok) {
                continue;
            }
            if !words.iter().all(|w| text.contains(w.as_str())) {
                continue;
            }
            let mut tags_ok = true;
            for (k, v) in &tags {
                if tags_table.get((project.id, issue.id, *k, *v))?.is_none() {
                    tags_ok = false;
                    break;
                }
            }
            if tags_ok {
                matched.push(issue);
            }
        }
        let order = |a: &&Issue, b: &&Issue| {
            match q.sort.as_str() {
                "first_seen" => b.first_seen.total_cmp(&a.first_seen),
                "frequency" => b.count.cmp(&a.count),
                _ => b.last_seen.total_cmp(&a.last_seen),
            }
            .then(b.id.cmp(&a.id))
        };
        // Only the issues up to the end of this page need to be in order.
        let wanted = ((q.page + 1) * PAGE_SIZE).min(matched.len());
        if wanted > 0 && wanted < matched.len() {
            matched.select_nth_unstable_by(wanted - 1, order);
        }
        matched[..wanted].sort_unstable_by(order);
        let total = matched.len();
        let start = (q.page * PAGE_SIZE).min(total);
        let shown = &matched[start..(start + PAGE_SIZE).min(total)];
        let hours = txn.open_table(ISSUE_HOURS)?;
        let now = now_hour();
        let mut rows = Vec::with_capacity(shown.len());
        for issue in shown {
            let mut points = Vec::new();
            for row in hours.range(
                (project.id, issue.id, now.saturating_sub(23))..=(project.id, issue.id, now),
            )? {
                let (k, v) = row?;
                points.push((k.value().2, v.value()));
            }
            rows.push(IssueRow {
                id: issue.id,
                title: issue.title.clone(),
                culprit: issue.culprit.clone(),
                level: issue.level.as_str(),
                status: issue.status.as_str(),
                count: issue.count,
                users: issue.user_count(),
                first_seen: ago(issue.first_seen),
                first_seen_exact: crate::time::rfc3339(issue.first_seen),
                last_seen: ago(issue.last_seen),
                last_seen_exact: crate::time::rfc3339(issue.last_seen),
                spark: charts::bars(&charts::hourly(&points, now, 24), 72, 18, "spark"),
            });
        }
        let environments: Vec<String> = all.environments.iter().take(100).cloned().collect();
        let releases: Vec<String> = all.releases.iter().rev().take(100).cloned().collect();
        let pairs = |v: &[&str]| {
            v.iter()
                .map(|s| (s.to_string(), s.to_string()))
                .collect::<Vec<_>>()
        };
        let same = |v: Vec<String>| v.into_iter().map(|s| (s.clone(), s)).collect::<Vec<_>>();
        let selects = vec![
            select(
                "status",
                "Status",
                None,
                &[
                    ("unresolved".into(), "Unresolved".into()),
                    ("resolved".into(), "Resolved".into()),
                    ("ignored".into(), "Ignored".into()),
                    ("all".into(), "All statuses".into()),
                ],
                &q.status,
            ),
            select(
                "level",
                "Level",
                Some("Any level"),
                &pairs(&["fatal", "error", "warning", "info", "debug"]),
                &q.level,
            ),
            select(
                "environment",
                "Environment",
                Some("Any environment"),
                &same(environments),
                &q.environment,
            ),
            select(
                "release",
                "Release",
                Some("Any release"),
                &same(releases),
                &q.release,
            ),
            select(
                "sort",
                "Sort",
                None,
                &[
                    ("last_seen".into(), "Last seen".into()),
                    ("first_seen".into(), "First seen".into()),
                    ("frequency".into(), "Most events".into()),
                ],
                &q.sort,
            ),
        ];
        Ok(IssuesPage {
            nav: Nav::of(visitor),
            slug: project.slug.clone(),
            project_name: project.name.clone(),
            q: q.q.clone(),
            selects,
            first_shown: start + 1,
            last_shown: start + rows.len(),
            issues: rows,
            total,
            back: q.url(&project.slug, q.page),
            prev_page: (q.page > 0).then(|| q.url(&project.slug, q.page - 1)),
            next_page: (start + PAGE_SIZE < total).then(|| q.url(&project.slug, q.page + 1)),
        })
    };
    match build() {
        Ok(page) => render(page),
        Err(e) => store_error(Nav::of(visitor), &e),
    }
}

fn change_from(action: &str) -> Option<StatusChange> {
    match action {
        "resolve" => Some(StatusChange::Resolve),
        "unresolve" => Some(StatusChange::Unresolve),
        "ignore" => Some(StatusChange::Ignore {
            until: None,
            more_events: None,
        }),
        "ignore_24h" => Some(StatusChange::Ignore {
            until: Some(crate::time::now() + 86_400.0),
            more_events: None,
        }),
        _ => None,
    }
}

/// Applies the form's status action (the buttons' `action`) to issues of a project: the same
/// request `picket issue resolve|ignore|unresolve` sends.
async fn change_issues(
    web: &Web,
    visitor: &Visitor,
    project: &Project,
    ids: impl Iterator<Item = u64>,
    form: &Form,
) -> Result<(), Page> {
    let Some(change) = form.get("action").and_then(change_from) else {
        return Err(message(
            StatusCode::BAD_REQUEST,
            Nav::of(visitor),
            "Unknown action",
            "Choose resolve, ignore or unresolve.",
        ));
    };
    for id in ids {
        let req = Request::IssueStatus {
            project: project.id.to_string(),
            issue: id,
            change,
        };
        if let Err(e) = web.handle.ask(req, &web.keys).await {
            return Err(store_error(Nav::of(visitor), &e));
        }
    }
    Ok(())
}

pub async fn bulk(web: &Web, visitor: &Visitor, slug: &str, form: &Form) -> Page {
    let Some(project) = visible_project(web, visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    let ids = form.all("issue").filter_map(|i| i.parse::<u64>().ok());
    if let Err(page) = change_issues(web, visitor, &project, ids, form).await {
        return page;
    }
    let prefix = format!("/projects/{}/", project.slug);
    let back = form
        .get("back")
        .filter(|b| b.starts_with(&prefix))
        .unwrap_or(&prefix);
    redirect(back, &[])
}

pub async fn issue_status(web: &Web, visitor: &Visitor, slug: &str, id: &str, form: &Form) -> Page {
    let (Some(project), Ok(id)) = (visible_project(web, visitor, slug), id.parse::<u64>()) else {
        return not_found(Nav::of(visitor));
    };
    match change_issues(web, visitor, &project, std::iter::once(id), form).await {
        Ok(()) => redirect(&format!("/projects/{}/issues/{id}/", project.slug), &[]),
        Err(page) => page,
    }
}

// ---- issue page ----

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
    count: u64,
    stored: u64,
    users: u64,
    regressions: u64,
    first_seen: String,
    first_seen_exact: String,
    last_seen: String,
    last_seen_exact: String,
    strategy: &'static str,
    /// The charts and tag distributions, shared with the cache.
    agg: Arc<Aggregates>,
}

struct FrameView {
    location: String,
    in_app: bool,
    first_line: u64,
    context: Vec<(String, bool)>,
    vars: Vec<(String, String)>,
}

struct ExceptionView {
    ty: String,
    value: String,
    mechanism: Option<String>,
    frames: Vec<FrameView>,
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
}

/// An issue's charts and tag distributions, cached by its event count and the hour.
pub struct Aggregates {
    chart_24h: String,
    chart_30d: String,
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
        let hours = txn.open_table(ISSUE_HOURS)?;
        let mut points = Vec::new();
        let from = now.saturating_sub(30 * 24 - 1);
        for row in hours.range((issue.project, issue.id, from)..=(issue.project, issue.id, now))? {
            let (k, v) = row?;
            points.push((k.value().2, v.value()));
        }
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
        Ok(Aggregates {
            chart_24h: charts::bars(&charts::hourly(&points, now, 24), 600, 60, "chart"),
            chart_30d: charts::bars(&charts::daily(&points, now, 30), 600, 60, "chart"),
            tags,
        })
    })
}

pub fn issue_page(
    web: &Web,
    visitor: &Visitor,
    slug: &str,
    id: &str,
    query: &HashMap<String, String>,
) -> Page {
    let (Some(project), Ok(id)) = (visible_project(web, visitor, slug), id.parse::<u64>()) else {
        return not_found(Nav::of(visitor));
    };
    let build = || -> Result<Option<IssuePage>, StoreError> {
        let txn = web.handle.db.begin_read()?;
        let Some(issue) = issues::get(&txn.open_table(ISSUES)?, project.id, id)? else {
            return Ok(None);
        };
        let agg = aggregates(web, &issue)?;
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
        let missing = match (&wanted, index) {
            (Some(w), None) if !w.is_empty() => format!("No stored event {w} in this issue."),
            _ => "No event of this issue is stored any more (retention removed them).".into(),
        };
        Ok(Some(IssuePage {
            nav: Nav::of(visitor),
            slug: project.slug.clone(),
            project_name: project.name.clone(),
            position: match index {
                Some(i) => format!("Event {} of {} stored", ids.len() - i, ids.len()),
                None => String::new(),
            },
            newer: index.filter(|&i| i + 1 < ids.len()).map(|i| link(i + 1)),
            older: index.filter(|&i| i > 0).map(|i| link(i - 1)),
            event: stored.map(|s| event_view(&s.event)),
            missing,
            issue: IssueView {
                id: issue.id,
                title: issue.title.clone(),
                culprit: issue.culprit.clone(),
                level: issue.level.as_str(),
                status: issue.status.as_str(),
                count: issue.count,
                stored: issue.stored,
                users: issue.user_count(),
                regressions: issue.regressions,
                first_seen: ago(issue.first_seen),
                first_seen_exact: crate::time::rfc3339(issue.first_seen),
                last_seen: ago(issue.last_seen),
                last_seen_exact: crate::time::rfc3339(issue.last_seen),
                strategy: issue.strategy.as_str(),
                agg,
            },
        }))
    };
    match build() {
        Ok(Some(page)) => render(page),
        Ok(None) => not_found(Nav::of(visitor)),
        Err(e) => store_error(Nav::of(visitor), &e),
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

fn event_view(ev: &Event) -> EventView {
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
    if !ev.truncated.is_empty() {
        summary.push(("truncated", ev.truncated.join(", ")));
    }
    let exceptions = ev
        .exception
        .iter()
        .rev()
        .map(|e| ExceptionView {
            ty: e.ty.clone().unwrap_or_else(|| "Error".into()),
            value: e.value.clone().unwrap_or_default(),
            mechanism: e
                .mechanism
                .as_ref()
                .map(|m| text(&m["type"]))
                .filter(|m| !m.is_empty()),
            frames: e
                .stacktrace
                .iter()
                .flat_map(|st| st.frames.iter().rev())
                .map(|f| {
                    let file = f
                        .filename
                        .clone()
                        .or_else(|| f.abs_path.clone())
                        .or_else(|| f.module.clone())
                        .unwrap_or_else(|| "?".into());
                    let mut location = file;
                    if let Some(l) = f.lineno {
                        location.push_str(&format!(":{l}"));
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
                        vars: rows_of(f.vars.as_ref()),
                    }
                })
                .collect(),
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
                (None, Some(d)) => text(d),
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
        sections.push((format!("Context: {name}"), rows_of(Some(ctx))));
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
        ev.extra.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
    ));
    sections.push(("SDK".into(), rows_of(ev.sdk.as_ref())));
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
    }
}

pub fn raw_event(web: &Web, visitor: &Visitor, slug: &str, file: &str) -> Page {
    let Some(project) = visible_project(web, visitor, slug) else {
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
        Err(e) => store_error(Nav::of(visitor), &e),
    }
}

// ---- settings ----

struct KeyRow {
    public_key: String,
    active: bool,
    per_minute: String,
    burst: String,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    nav: Nav,
    slug: String,
    project_name: String,
    dsn: String,
    legacy_dsn: String,
    keys: Vec<KeyRow>,
    snippets: Vec<(&'static str, String)>,
    members: Vec<String>,
    candidates: Vec<String>,
    max_events: String,
    default_max_events: u64,
    stored: u64,
    forward_to: String,
}

/// Copy-paste setup for the official SDKs with the project's real DSN.
fn snippets(dsn: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Python",
            format!("pip install sentry-sdk\n\nimport sentry_sdk\nsentry_sdk.init(dsn=\"{dsn}\")"),
        ),
        (
            "JavaScript (browser)",
            format!(
                "npm install @sentry/browser\n\nimport * as Sentry from \"@sentry/browser\";\nSentry.init({{ dsn: \"{dsn}\" }});"
            ),
        ),
        (
            "JavaScript (Node)",
            format!(
                "npm install @sentry/node\n\nconst Sentry = require(\"@sentry/node\");\nSentry.init({{ dsn: \"{dsn}\" }});"
            ),
        ),
        (
            "PHP",
            format!("composer require sentry/sentry\n\n\\Sentry\\init(['dsn' => '{dsn}']);"),
        ),
        (
            "Rust",
            format!(
                "# Cargo.toml: sentry = \"0.49\"\n\nlet _guard = sentry::init((\"{dsn}\", sentry::ClientOptions {{\n    release: sentry::release_name!(),\n    ..Default::default()\n}}));"
            ),
        ),
    ]
}

pub fn settings(web: &Web, visitor: &Visitor, slug: &str) -> Page {
    let Some(project) = visible_project(web, visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    let build = || -> Result<SettingsPage, StoreError> {
        let txn = web.handle.db.begin_read()?;
        let keys: Vec<_> = projects::keys(&txn.open_table(KEYS)?)?
            .into_iter()
            .filter(|k| k.project == project.id)
            .collect();
        let config = &web.handle.config;
        let active = keys.iter().find(|k| k.active);
        let dsn = active
            .map(|k| config.dsn(&k.public_key, project.id))
            .unwrap_or_else(|| "(no active key: create one)".into());
        let legacy_dsn = active
            .map(|k| {
                let d = config.dsn(&k.public_key, project.id);
                d.replacen(
                    &format!("{}@", k.public_key),
                    &format!("{}:{}@", k.public_key, k.secret_key),
                    1,
                )
            })
            .unwrap_or_default();
        let all_users: Vec<User> = users::list(&txn.open_table(USERS)?)?;
        Ok(SettingsPage {
            nav: Nav::of(visitor),
            slug: project.slug.clone(),
            project_name: project.name.clone(),
            snippets: snippets(&dsn),
            dsn,
            legacy_dsn,
            keys: keys
                .iter()
                .map(|k| KeyRow {
                    public_key: k.public_key.clone(),
                    active: k.active,
                    per_minute: k
                        .rate_limit
                        .map(|r| r.per_minute.to_string())
                        .unwrap_or_default(),
                    burst: k
                        .rate_limit
                        .map(|r| r.burst.to_string())
                        .unwrap_or_default(),
                })
                .collect(),
            members: project.members.clone(),
            candidates: all_users
                .iter()
                .filter(|u| u.active && !project.members.contains(&u.email))
                .map(|u| u.email.clone())
                .collect(),
            max_events: project
                .max_events
                .map(|n| n.to_string())
                .unwrap_or_default(),
            default_max_events: config.retention.max_events_per_project,
            stored: project.stored,
            forward_to: project
                .forward_to
                .as_deref()
                .and_then(|d| crate::ids::Dsn::parse(d).ok())
                .map(|d| d.public())
                .unwrap_or_default(),
        })
    };
    match build() {
        Ok(page) => render(page),
        Err(e) => store_error(Nav::of(visitor), &e),
    }
}

pub async fn settings_action(
    web: &Web,
    visitor: &Visitor,
    slug: &str,
    action: &str,
    form: &Form,
) -> Page {
    let Some(project) = visible_project(web, visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    let id = project.id.to_string();
    let field = |k: &str| form.get(k).unwrap_or("").trim().to_string();
    let own_key = |key: &str| -> bool {
        web.handle
            .db
            .begin_read()
            .ok()
            .and_then(|txn| projects::keys(&txn.open_table(KEYS).ok()?).ok())
            .is_some_and(|keys| {
                keys.iter()
                    .any(|k| k.public_key == key && k.project == project.id)
            })
    };
    let req = match action {
        "name" => Request::ProjectRename {
            project: id,
            name: field("name"),
        },
        "key-create" => Request::KeyCreate { project: id },
        "key-revoke" if own_key(&field("key")) => Request::KeyRevoke {
            public_key: field("key"),
        },
        "key-limit" if own_key(&field("key")) => {
            let per_minute = field("per_minute").parse::<u32>().unwrap_or(0);
            let burst = field("burst").parse::<u32>().unwrap_or(0);
            Request::KeyRateLimit {
                public_key: field("key"),
                limit: (per_minute > 0).then_some(RateLimit { per_minute, burst }),
            }
        }
        "member-add" | "member-remove" if visitor.user.is_admin => Request::ProjectMember {
            project: id,
            email: field("email"),
            remove: action == "member-remove",
        },
        "retention" => Request::ProjectRetention {
            project: id,
            max_events: field("max_events").parse::<u64>().ok(),
        },
        "forward" => Request::ProjectForward {
            project: id,
            dsn: Some(field("dsn")).filter(|d| !d.is_empty()),
        },
        _ => return not_found(Nav::of(visitor)),
    };
    match web.handle.ask(req, &web.keys).await {
        Ok(_) => redirect(&format!("/projects/{}/settings", project.slug), &[]),
        Err(e) => store_error(Nav::of(visitor), &e),
    }
}

// ---- accounts ----

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    email: String,
}

pub fn account(_web: &Web, visitor: &Visitor, note: Option<Result<String, String>>) -> Page {
    let mut nav = Nav::of(visitor);
    match note {
        Some(Ok(flash)) => nav.flash = Some(flash),
        Some(Err(error)) => nav.error = Some(error),
        None => {}
    }
    render(AccountPage {
        nav,
        email: visitor.user.email.clone(),
    })
}

async fn hash(password: String) -> Result<String, StoreError> {
    tokio::task::spawn_blocking(move || users::hash_password(&password))
        .await
        .map_err(|e| StoreError::Db(e.to_string()))?
}

pub async fn change_password(web: &Web, visitor: &Visitor, form: &Form) -> Page {
    let current = form.get("current").unwrap_or("").to_string();
    let new = form.get("new").unwrap_or("").to_string();
    let stored = visitor.user.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || users::verify_password(&current, &stored))
        .await
        .unwrap_or(false);
    if !ok {
        return account(
            web,
            visitor,
            Some(Err("The current password is wrong.".into())),
        );
    }
    if new.chars().count() < 8 {
        return account(
            web,
            visitor,
            Some(Err("The new password needs at least 8 characters.".into())),
        );
    }
    let email = visitor.user.email.clone();
    let done = match hash(new).await {
        Ok(h) => web
            .handle
            .write(move |txn| users::set_password(txn, &email, &h)),
        Err(e) => Err(e),
    };
    match done {
        Ok(_) => account(web, visitor, Some(Ok("Your password is changed.".into()))),
        Err(e) => store_error(Nav::of(visitor), &e),
    }
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    nav: Nav,
    users: Vec<User>,
    link: Option<String>,
    link_for: String,
}

pub fn users(web: &Web, visitor: &Visitor, link: Option<(String, String)>) -> Page {
    if !visitor.user.is_admin {
        return not_found(Nav::of(visitor));
    }
    let list = web
        .handle
        .db
        .begin_read()
        .map_err(StoreError::from)
        .and_then(|txn| users::list(&txn.open_table(USERS)?));
    match list {
        Ok(users) => {
            let (link_for, link) = match link {
                Some((email, token)) => (
                    email,
                    Some(format!(
                        "{}/set-password/{token}",
                        web.handle.config.base_url()
                    )),
                ),
                None => (String::new(), None),
            };
            render(UsersPage {
                nav: Nav::of(visitor),
                users,
                link,
                link_for,
            })
        }
        Err(e) => store_error(Nav::of(visitor), &e),
    }
}

pub async fn user_action(web: &Web, visitor: &Visitor, action: &str, form: &Form) -> Page {
    if !visitor.user.is_admin {
        return not_found(Nav::of(visitor));
    }
    let email = form.get("email").unwrap_or("").trim().to_ascii_lowercase();
    let now = crate::time::now();
    let result = match action {
        "create" => {
            let admin = form.get("admin") == Some("1");
            let e = email.clone();
            web.handle
                .write(move |txn| users::create_user(txn, &e, admin, now))
                .map(|(_, token)| Some(token))
        }
        "reset" => {
            let e = email.clone();
            web.handle
                .write(move |txn| users::reset_token(txn, &e, now))
                .map(Some)
        }
        "deactivate" | "activate" if email == visitor.user.email => {
            Err(StoreError::Invalid("you cannot deactivate yourself".into()))
        }
        "deactivate" | "activate" => {
            let (e, active) = (email.clone(), action == "activate");
            web.handle
                .write(move |txn| users::set_active(txn, &e, active))
                .map(|_| None)
        }
        _ => return not_found(Nav::of(visitor)),
    };
    match result {
        Ok(Some(token)) => users(web, visitor, Some((email, token))),
        Ok(None) => redirect("/admin/users", &[]),
        Err(e) => store_error(Nav::of(visitor), &e),
    }
}

#[derive(Template)]
#[template(path = "set_password.html")]
struct SetPasswordPage {
    nav: Nav,
    email: String,
}

pub fn set_password_page(web: &Web, token: &str) -> Page {
    let user = web.handle.db.begin_read().ok().and_then(|txn| {
        users::by_token(&txn.open_table(USERS).ok()?, token, crate::time::now())
            .ok()
            .flatten()
    });
    match user {
        Some(user) => render(SetPasswordPage {
            nav: Nav::anonymous(),
            email: user.email,
        }),
        None => message(
            StatusCode::NOT_FOUND,
            Nav::anonymous(),
            "Link not valid",
            "This set-password link is invalid, used or expired. Ask an admin for a new one.",
        ),
    }
}

pub async fn set_password(web: &Web, token: &str, form: &Form) -> Page {
    let password = form.get("password").unwrap_or("").to_string();
    if password.chars().count() < 8 {
        return message(
            StatusCode::BAD_REQUEST,
            Nav::anonymous(),
            "Too short",
            "A password needs at least 8 characters.",
        );
    }
    let token = token.to_string();
    let now = crate::time::now();
    let done = match hash(password).await {
        Ok(h) => web
            .handle
            .write(move |txn| users::set_password_with_token(txn, &token, &h, now)),
        Err(e) => Err(e),
    };
    match done {
        Ok(_) => redirect("/login?flash=password-set", &[]),
        Err(e) => store_error(Nav::anonymous(), &e),
    }
}

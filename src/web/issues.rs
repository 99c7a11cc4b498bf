//! The issue list of a project (menus and the search grammar of `manage::search`, counts
//! scoped to the environment, release and time range, sorting, pages) and its
//! buttons: resolve, ignore or unresolve one issue or the ones ticked.

use std::collections::HashMap;

use askama::Template;
use hyper::StatusCode;
use redb::ReadableDatabase;

use super::snapshot::project_issues;
use super::{
    Form, Nav, Page, Visitor, Web, ago, charts, message, not_found, now_hour, redirect, render,
    store_error,
};
use crate::manage::issues::IssueStatus;
use crate::manage::search::{Counted, Found, IsValue, Pattern, Query, Test};
use crate::store::StoreError;
use crate::store::issues::{Issue, StatusChange};
use crate::store::projects::Project;

/// Issues on one page of the list.
const PAGE_SIZE: usize = 50;

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
    users_estimated: bool,
    first_seen: String,
    first_seen_exact: String,
    last_seen: String,
    last_seen_exact: String,
    spark: String,
    /// First seen within the last 24 hours.
    new: bool,
    /// Came back within the last 24 hours.
    regressed: bool,
    assignee: Option<String>,
    assignee_initials: String,
    /// Why resolved or ignored, until when.
    state_detail: Option<String>,
    comments: u64,
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
    /// The commit the list shows, for the live updates.
    version: u64,
    /// The visitor owns the project (may merge issues).
    owner: bool,
    /// What the counts cover when a filter narrows them ("in production, last 24 hours").
    counting: String,
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
    /// "me", "none" or "" (anyone).
    assigned: String,
    /// "", "1h", "24h", "7d", "30d" or "90d": the time the counts cover.
    period: String,
    /// What in the query was not understood, and what is shown instead.
    notices: Vec<String>,
}

impl ListQuery {
    fn from(query: &HashMap<String, String>) -> ListQuery {
        let get = |k: &str| {
            query
                .get(k)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let mut notices = Vec::new();
        let status = match get("status").as_str() {
            s @ ("unresolved" | "resolved" | "ignored" | "all") => s.to_string(),
            "" => "unresolved".into(),
            other => {
                notices.push(format!(
                    "'{other}' is not a status (unresolved, resolved, ignored or all): showing unresolved issues"
                ));
                "unresolved".into()
            }
        };
        let sort = match get("sort").as_str() {
            s @ ("first_seen" | "frequency") => s.to_string(),
            "" | "last_seen" => "last_seen".into(),
            other => {
                notices.push(format!(
                    "'{other}' is not a sort (last_seen, first_seen or frequency): sorted by last seen"
                ));
                "last_seen".into()
            }
        };
        let level = match get("level").as_str() {
            l @ ("" | "fatal" | "error" | "warning" | "info" | "debug") => l.to_string(),
            other => {
                notices.push(format!(
                    "'{other}' is not a level (fatal, error, warning, info or debug): showing every level"
                ));
                String::new()
            }
        };
        let period = match get("period").as_str() {
            p @ ("" | "1h" | "24h" | "7d" | "30d" | "90d") => p.to_string(),
            other => {
                notices.push(format!(
                    "'{other}' is not a time range (1h, 24h, 7d, 30d or 90d): counting all time"
                ));
                String::new()
            }
        };
        let page = match get("page").as_str() {
            "" => 0,
            p => p.parse().unwrap_or_else(|_| {
                notices.push(format!(
                    "'{p}' is not a page number: showing the first page"
                ));
                0
            }),
        };
        ListQuery {
            notices,
            status,
            level,
            environment: get("environment"),
            release: get("release"),
            sort,
            q: get("q"),
            page,
            assigned: match get("assigned").as_str() {
                a @ ("me" | "none") => a.to_string(),
                _ => String::new(),
            },
            period,
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
            ("assigned", &self.assigned),
            ("period", &self.period),
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
    let Some(project) = web.visible_project(visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    let q = ListQuery::from(query);
    let build = || -> Result<IssuesPage, StoreError> {
        let all = project_issues(web, project.id)?;
        let txn = web.handle.db.begin_read()?;
        let mut notices = q.notices.clone();
        let now = crate::time::now();
        let mut query = match Query::parse(&q.q, now) {
            Ok(query) => query,
            Err(e) => {
                notices.push(format!("{e}: showing the issues without the search."));
                Query::default()
            }
        };
        if !query.names_status() && q.status != "all" {
            query.require(Test::Is(vec![match q.status.as_str() {
                "resolved" => IsValue::Resolved,
                "ignored" => IsValue::Ignored,
                _ => IsValue::Unresolved,
            }]));
        }
        if !q.level.is_empty() {
            query.require(Test::Level(vec![q.level.clone()]));
        }
        if !q.environment.is_empty() {
            query.require(Test::Environment(vec![Pattern(q.environment.clone())]));
        }
        if !q.release.is_empty() {
            query.require(Test::Release(vec![Pattern(q.release.clone())]));
        }
        if !q.assigned.is_empty() {
            query.require(Test::Assigned(vec![q.assigned.clone()]));
        }
        let since = crate::manage::search::duration(&q.period).map(|d| now - d);
        let candidates = all
            .issues
            .iter()
            .map(|i| i.as_ref())
            .zip(all.haystacks.iter().map(|h| h.as_ref()));
        let me = Some(visitor.user.email.as_str());
        let Found {
            issues: mut matched,
            scope,
        } = query.find(&txn, project.id, candidates, me, since)?;
        let narrow = scope.is_narrow();
        // Sorting by events in a narrow scope needs every match's count: one range read each.
        let mut counts: HashMap<u64, Counted> = HashMap::new();
        if narrow && q.sort == "frequency" {
            for issue in &matched {
                counts.insert(issue.id, scope.count(&txn, issue)?);
            }
        }
        let order = |a: &&Issue, b: &&Issue| {
            match q.sort.as_str() {
                "first_seen" => b.first_seen.total_cmp(&a.first_seen),
                "frequency" => match (counts.get(&a.id), counts.get(&b.id)) {
                    (Some(ca), Some(cb)) => cb.events.cmp(&ca.events),
                    _ => b.count.cmp(&a.count),
                },
                _ => b.last_seen.total_cmp(&a.last_seen),
            }
            .then(b.id.cmp(&a.id))
        };
        // A page past the end shows the last one.
        let last_page = matched.len().saturating_sub(1) / PAGE_SIZE;
        let page = if q.page > last_page {
            notices.push(format!(
                "There is no page {} of these issues: showing page {}.",
                q.page + 1,
                last_page + 1
            ));
            last_page
        } else {
            q.page
        };
        // Only the issues up to the end of this page need to be in order.
        let wanted = ((page + 1) * PAGE_SIZE).min(matched.len());
        if wanted > 0 && wanted < matched.len() {
            matched.select_nth_unstable_by(wanted - 1, order);
        }
        matched[..wanted].sort_unstable_by(order);
        let total = matched.len();
        let start = (page * PAGE_SIZE).min(total);
        let shown = &matched[start..(start + PAGE_SIZE).min(total)];
        let hour = now_hour();
        let day_ago = now - 86_400.0;
        let mut rows = Vec::with_capacity(shown.len());
        for issue in shown {
            let points = scope.hourly(&txn, issue, hour.saturating_sub(23), hour)?;
            let counted = match counts.get(&issue.id) {
                Some(c) => *c,
                None => scope.count(&txn, issue)?,
            };
            rows.push(IssueRow {
                id: issue.id,
                title: issue.title.clone(),
                culprit: issue.culprit.clone(),
                level: issue.level.as_str(),
                status: issue.status.as_str(),
                count: counted.events,
                users: counted.users,
                users_estimated: counted.users_estimated,
                first_seen: ago(issue.first_seen),
                first_seen_exact: crate::time::rfc3339(issue.first_seen),
                last_seen: ago(issue.last_seen),
                last_seen_exact: crate::time::rfc3339(issue.last_seen),
                spark: charts::bars(&charts::hourly(&points, hour, 24), 72, 18, "spark"),
                new: issue.first_seen >= day_ago,
                regressed: issue.regressed_at.is_some_and(|t| t >= day_ago)
                    && issue.status == crate::store::issues::Status::Unresolved,
                assignee_initials: issue
                    .assignee
                    .as_deref()
                    .map(super::triage::initials)
                    .unwrap_or_default(),
                assignee: issue.assignee.clone(),
                state_detail: super::issue::state_detail(issue),
                comments: issue.comments,
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
                "assigned",
                "Assignee",
                Some("Anyone"),
                &[
                    ("me".into(), "Assigned to me".into()),
                    ("none".into(), "Unassigned".into()),
                ],
                &q.assigned,
            ),
            select(
                "period",
                "Time range",
                Some("All time"),
                &[
                    ("1h".into(), "Last hour".into()),
                    ("24h".into(), "Last 24 hours".into()),
                    ("7d".into(), "Last 7 days".into()),
                    ("30d".into(), "Last 30 days".into()),
                    ("90d".into(), "Last 90 days".into()),
                ],
                &q.period,
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
        let mut nav = Nav::of(visitor);
        nav.error = (!notices.is_empty()).then(|| notices.join(" "));
        Ok(IssuesPage {
            nav,
            slug: project.slug.clone(),
            project_name: project.name.clone(),
            q: q.q.clone(),
            selects,
            first_shown: start + 1,
            last_shown: start + rows.len(),
            issues: rows,
            total,
            back: q.url(&project.slug, page),
            prev_page: (page > 0).then(|| q.url(&project.slug, page - 1)),
            next_page: (start + PAGE_SIZE < total).then(|| q.url(&project.slug, page + 1)),
            version: all.version,
            owner: visitor.actor().may_own(&project),
            counting: scope.describe(&q.period),
        })
    };
    match build() {
        Ok(page) => render(page),
        Err(e) => store_error(Nav::of(visitor), e),
    }
}

/// The status change a form's `action` asks for, with its options: `release` for
/// `resolve_in`; `for` (a duration such as 30m, 24h, 7d), `count` and `users` for `ignore`.
fn change_from(form: &Form) -> Result<StatusChange, String> {
    let number = |name: &str| -> Result<Option<u64>, String> {
        match form.field(name).as_str() {
            "" => Ok(None),
            n => n
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(Some)
                .ok_or_else(|| format!("'{n}' is not a positive whole number")),
        }
    };
    Ok(match form.get("action").unwrap_or("") {
        "resolve" => StatusChange::Resolve,
        "resolve_next" => StatusChange::ResolveInNextRelease,
        "resolve_in" => StatusChange::ResolveIn {
            release: form.field("release"),
        },
        "unresolve" => StatusChange::Unresolve,
        "ignore" => {
            let until = match form.field("for").as_str() {
                "" => None,
                d => Some(
                    crate::time::now()
                        + crate::config::Duration::parse(d)
                            .ok_or_else(|| format!("'{d}' is not a duration (try 30m, 24h, 7d)"))?
                            .0
                            .as_secs_f64(),
                ),
            };
            StatusChange::Ignore {
                until,
                more_events: number("count")?,
                more_users: number("users")?,
            }
        }
        "ignore_24h" => StatusChange::Ignore {
            until: Some(crate::time::now() + 86_400.0),
            more_events: None,
            more_users: None,
        },
        other => {
            return Err(format!(
                "'{other}' is not an action: choose resolve, ignore or unresolve"
            ));
        }
    })
}

/// Applies the form's status action (the buttons' `action`) to issues of a project: the same
/// operation `picket issue resolve|ignore|unresolve` applies.
async fn change_issues(
    web: &Web,
    visitor: &Visitor,
    project: &Project,
    ids: impl Iterator<Item = u64>,
    form: &Form,
) -> Result<(), Page> {
    let change = change_from(form).map_err(|why| {
        message(
            StatusCode::BAD_REQUEST,
            Nav::of(visitor),
            "That did not work",
            &why,
        )
    })?;
    for id in ids {
        let op = IssueStatus {
            project: project.id.to_string(),
            issue: id,
            change: change.clone(),
        };
        web.act(visitor, op).await?;
    }
    Ok(())
}

pub async fn bulk(web: &Web, visitor: &Visitor, slug: &str, form: &Form) -> Page {
    let Some(project) = web.visible_project(visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    if form.get("action") == Some("merge") {
        return super::triage::merge(web, visitor, &project, form).await;
    }
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
    let (Some(project), Ok(id)) = (web.visible_project(visitor, slug), id.parse::<u64>()) else {
        return not_found(Nav::of(visitor));
    };
    match change_issues(web, visitor, &project, std::iter::once(id), form).await {
        Ok(()) => redirect(&format!("/projects/{}/issues/{id}/", project.slug), &[]),
        Err(page) => page,
    }
}

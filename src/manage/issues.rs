//! Issues and their events: list and read them, resolve, ignore or unresolve an issue, and
//! delete one with its events.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::search::{Counted, Pattern, Query, Test, haystack};
use super::{Actor, Handle, ManageError, Operation};
use crate::event::Event;
use crate::ids::EventId;
use crate::store::backup::Progress;
use crate::store::issues::{self, Issue, ResolvedIn, Status, StatusChange};
use crate::store::projects::Project;
use crate::store::tables::Tables;
use crate::store::{EVENTS, ISSUE_EVENTS, ISSUES, RELEASE_STATS, events, releases};

/// An issue as the CLI and scripts see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueView {
    pub id: u64,
    pub project_id: u64,
    pub title: String,
    pub culprit: String,
    pub level: String,
    pub status: String,
    pub count: u64,
    pub stored: u64,
    pub users: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub platform: String,
    pub grouping: String,
    pub fingerprint: String,
    pub releases: Vec<String>,
    pub environments: Vec<String>,
    pub regressions: u64,
    pub ignore_until: Option<String>,
    pub ignore_until_count: Option<u64>,
    pub first_event: EventId,
    pub last_event: EventId,
    pub first_release: Option<String>,
    pub last_release: Option<String>,
    pub ignore_until_users: Option<u64>,
    /// While resolved in a release: that release, and whether it is the one after it.
    pub resolved_in: Option<String>,
    pub resolved_in_next_release: bool,
    /// When it last came back after being resolved.
    pub regressed_at: Option<String>,
    pub assignee: Option<String>,
    pub comments: u64,
    /// Whether `users` is an estimate (past the exact count's bound).
    pub users_estimated: bool,
    /// The events and users of the environments, releases and time a search kept to.
    pub filtered: Option<Filtered>,
}

/// An issue's counts within a search's scope.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Filtered {
    pub count: u64,
    pub users: u64,
    pub users_estimated: bool,
}

impl From<Counted> for Filtered {
    fn from(c: Counted) -> Filtered {
        Filtered {
            count: c.events,
            users: c.users,
            users_estimated: c.users_estimated,
        }
    }
}

impl From<&Issue> for IssueView {
    fn from(i: &Issue) -> IssueView {
        IssueView {
            id: i.id,
            project_id: i.project,
            title: i.title.clone(),
            culprit: i.culprit.clone(),
            level: i.level.as_str().into(),
            status: i.status.as_str().into(),
            count: i.count,
            stored: i.stored,
            users: i.user_count(),
            first_seen: crate::time::rfc3339(i.first_seen),
            last_seen: crate::time::rfc3339(i.last_seen),
            platform: i.platform.clone(),
            grouping: i.strategy.as_str().into(),
            fingerprint: crate::ids::hex(&i.hash),
            releases: i.releases.clone(),
            environments: i.environments.clone(),
            regressions: i.regressions,
            ignore_until: i.ignore_until.map(crate::time::rfc3339),
            ignore_until_count: i.ignore_until_count,
            first_event: i.first_event,
            last_event: i.last_event,
            first_release: i.first_release.clone(),
            last_release: i.last_release.clone(),
            ignore_until_users: i.ignore_until_users,
            resolved_in: i.resolved_in.as_ref().map(|r| r.release.clone()),
            resolved_in_next_release: i.resolved_in.as_ref().is_some_and(|r| r.next),
            regressed_at: i.regressed_at.map(crate::time::rfc3339),
            assignee: i.assignee.clone(),
            comments: i.comments,
            users_estimated: i.users_estimated(),
            filtered: None,
        }
    }
}

/// A project's issues with a status (`unresolved` when not given, or `all`) matching a
/// search, most recently seen first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueList {
    pub project: String,
    pub status: Option<String>,
    /// A search (`manage::search`); a status it names wins over `status`.
    #[serde(default)]
    pub query: Option<String>,
}

/// A status filter by name.
pub fn status_filter(status: Option<&str>) -> Result<Option<Status>, ManageError> {
    match status {
        None | Some("unresolved") => Ok(Some(Status::Unresolved)),
        Some("resolved") => Ok(Some(Status::Resolved)),
        Some("ignored") => Ok(Some(Status::Ignored)),
        Some("all") => Ok(None),
        Some(other) => Err(ManageError::Invalid(format!(
            "unknown status '{other}' (unresolved, resolved, ignored or all)"
        ))),
    }
}

impl Handle {
    /// An issue of a project the actor may see, read now, with its project; one of another
    /// project answers like one that does not exist.
    pub fn issue(
        &self,
        actor: &Actor,
        project: &str,
        issue: u64,
    ) -> Result<(Project, Issue), ManageError> {
        let project = self.project(actor, project)?;
        let txn = self.db.begin_read()?;
        let found = issues::get(&txn.open_table(ISSUES)?, project.id, issue)?.ok_or_else(|| {
            ManageError::NotFound(format!("no issue {issue} in project '{}'", project.slug))
        })?;
        Ok((project, found))
    }
}

impl Operation for IssueList {
    type Answer = Vec<IssueView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<IssueView>, ManageError> {
        actor.require_scope("event:read")?;
        let project = h.project(actor, &self.project)?;
        let query = Query::parse(self.query.as_deref().unwrap_or(""), crate::time::now())
            .map_err(|e| ManageError::Invalid(e.to_string()))?;
        let status = if query.names_status() && self.status.is_none() {
            None
        } else {
            status_filter(self.status.as_deref())?
        };
        let txn = h.db.begin_read()?;
        let list = issues::list(&txn.open_table(ISSUES)?, project.id, status)?;
        let found = search_project(&txn, &project, &list, &query, actor.email(), None)?;
        Ok(found
            .into_iter()
            .map(|(issue, counted)| counted_view(issue, counted))
            .collect())
    }
}

/// Resolves, ignores or unresolves an issue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueStatus {
    pub project: String,
    pub issue: u64,
    pub change: StatusChange,
}

impl Operation for IssueStatus {
    type Answer = IssueView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<IssueView, ManageError> {
        actor.require_scope("event:write")?;
        let project = h.project(actor, &self.project)?;
        let now = crate::time::now();
        let resolved_in = {
            let txn = h.db.begin_read()?;
            let stats = txn.open_table(RELEASE_STATS)?;
            match &self.change {
                StatusChange::ResolveIn { release } => {
                    let release = release.trim();
                    if release.is_empty() {
                        return Err(ManageError::Invalid("name the release".into()));
                    }
                    Some(ResolvedIn {
                        release: release.to_string(),
                        first_seen: releases::first_appearance(&stats, project.id, release)?
                            .unwrap_or(now),
                        next: false,
                    })
                }
                StatusChange::ResolveInNextRelease => {
                    let (release, first_seen) =
                        releases::newest(&stats, project.id)?.ok_or_else(|| {
                            ManageError::Invalid(format!(
                                "no release has been seen in {} yet: resolve it now instead",
                                project.slug
                            ))
                        })?;
                    Some(ResolvedIn {
                        release,
                        first_seen,
                        next: true,
                    })
                }
                _ => None,
            }
        };
        let (pid, issue, change, who) = (project.id, self.issue, self.change, actor.who());
        let updated = h.write_issues(vec![(pid, issue)], move |txn| {
            issues::set_status(txn, pid, issue, &change, resolved_in, who, now)
        })?;
        Ok(IssueView::from(&updated))
    }
}

/// Deletes an issue and its stored events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueDelete {
    pub project: String,
    pub issue: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueDeleted {
    pub project: String,
    pub issue: u64,
    pub events_deleted: u64,
}

impl Operation for IssueDelete {
    type Answer = IssueDeleted;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<IssueDeleted, ManageError> {
        actor.require_scope("event:admin")?;
        let project = h.owned_project(actor, &self.project, "delete its issues")?;
        let (id, issue) = (project.id, self.issue);
        let events = h.write(move |txn| {
            let events = Tables::open(txn)?.delete_issue(id, issue)?;
            crate::store::activity::forget(txn, id, issue)?;
            Ok(events)
        })?;
        Ok(IssueDeleted {
            project: project.slug,
            issue,
            events_deleted: events,
        })
    }
}

/// An issue's stored events, newest first, matching a search (`manage::search`, the
/// conditions that apply to single events), a page at a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventList {
    pub project: String,
    pub issue: u64,
    #[serde(default)]
    pub query: Option<String>,
    /// Matching events to skip, newest first.
    #[serde(default)]
    pub offset: usize,
    /// At most this many (`None`: all).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Stored events a search reads at most (newest first) before it answers with what it found.
pub const MAX_EVENTS_EXAMINED: u64 = 20_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventSummary {
    pub event_id: EventId,
    pub timestamp: String,
    pub received: String,
    pub title: String,
    pub level: String,
    pub issue: u64,
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    /// The user's id, else email, username or address.
    #[serde(default)]
    pub user: Option<String>,
    /// The message or exception value.
    #[serde(default)]
    pub message: String,
    /// Derived tags worth a column: browser, os, url, transaction.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

/// A page of an issue's events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<EventSummary>,
    /// More matching events follow this page.
    pub more: bool,
    /// Stored events read to answer.
    pub examined: u64,
    /// False when the search stopped at [`MAX_EVENTS_EXAMINED`] before the oldest event.
    pub complete: bool,
}

impl EventSummary {
    fn of(ev: &Event, issue: u64) -> EventSummary {
        let message = ev
            .logentry
            .as_ref()
            .and_then(|l| l.text())
            .map(str::to_string)
            .or_else(|| ev.exception.last().and_then(|e| e.value.clone()))
            .unwrap_or_default();
        let tags = crate::event::derived::tags(ev)
            .into_iter()
            .filter(|(k, _)| matches!(*k, "browser" | "os" | "url" | "transaction"))
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        EventSummary {
            event_id: ev.event_id,
            timestamp: crate::time::rfc3339(ev.timestamp),
            received: crate::time::rfc3339(ev.received),
            title: ev.title(),
            level: ev.level.as_str().into(),
            issue,
            release: ev.release.clone(),
            environment: ev.environment.clone(),
            user: ev
                .user
                .as_ref()
                .and_then(|u| u.identity())
                .map(str::to_string),
            message: message.chars().take(300).collect(),
            tags,
        }
    }
}

impl Operation for EventList {
    type Answer = EventPage;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<EventPage, ManageError> {
        actor.require_scope("event:read")?;
        let (project, _) = h.issue(actor, &self.project, self.issue)?;
        let mut query = Query::parse(self.query.as_deref().unwrap_or(""), crate::time::now())
            .map_err(|e| ManageError::Invalid(e.to_string()))?;
        query
            .for_events()
            .map_err(|e| ManageError::Invalid(e.to_string()))?;
        let searching = !query.conditions.is_empty();
        let txn = h.db.begin_read()?;
        query.resolve_latest(&txn, project.id)?;
        let order = txn.open_table(ISSUE_EVENTS)?;
        let table = txn.open_table(EVENTS)?;
        let verbatim = query.verbatim();
        let holds = |packed: &[u8]| {
            verbatim.iter().all(|any| {
                any.iter()
                    .any(|v| v.is_empty() || packed.windows(v.len()).any(|w| w == v.as_bytes()))
            })
        };
        let limit = self.limit.unwrap_or(usize::MAX);
        let (mut skipped, mut examined, mut complete) = (0, 0u64, true);
        let mut page = Vec::new();
        let mut more = false;
        let range = (project.id, self.issue, 0)..=(project.id, self.issue, u64::MAX);
        for row in order.range(range)?.rev() {
            let (_, id) = row?;
            let Some(id) = EventId::from_slice(id.value()) else {
                continue;
            };
            if searching && examined >= MAX_EVENTS_EXAMINED {
                complete = false;
                break;
            }
            if !searching && skipped < self.offset {
                skipped += 1;
                continue;
            }
            examined += 1;
            let Some(stored) = events::get_if(&table, project.id, &id, holds)? else {
                continue;
            };
            if searching && !query.matches_event(&stored.event) {
                continue;
            }
            if searching && skipped < self.offset {
                skipped += 1;
                continue;
            }
            if page.len() == limit {
                more = true;
                break;
            }
            page.push(EventSummary::of(&stored.event, stored.issue));
        }
        Ok(EventPage {
            events: page,
            more,
            examined,
            complete,
        })
    }
}

/// One stored event, normalized, with its issue and a few derived fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventShow {
    pub project: String,
    pub event_id: String,
}

impl Operation for EventShow {
    /// The event's own fields, then `issue`, `project`, `datetime`, `title` and `culprit`.
    type Answer = Map<String, Value>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        progress: Progress<'_>,
    ) -> Result<Map<String, Value>, ManageError> {
        let project = h.project(actor, &self.project)?;
        let attachments = super::attachments::of_event(
            h,
            &project,
            &super::attachments::event_id(&self.event_id)?,
        )?;
        let detail = EventDetail {
            project: self.project,
            event_id: self.event_id,
        }
        .apply(h, actor, progress)?;
        let event = &detail.event;
        let Ok(Value::Object(mut v)) = serde_json::to_value(event) else {
            return Err(ManageError::Storage(
                "the event does not encode as JSON".into(),
            ));
        };
        v.insert("issue".into(), detail.issue.into());
        v.insert("project".into(), detail.project_id.into());
        v.insert(
            "datetime".into(),
            crate::time::rfc3339(event.timestamp).into(),
        );
        v.insert("title".into(), event.title().into());
        v.insert("culprit".into(), event.culprit().into());
        v.insert(
            "attachments".into(),
            serde_json::to_value(&attachments).unwrap_or_default(),
        );
        Ok(v)
    }
}

/// One stored event as the typed, normalized event, with its project and issue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventDetail {
    pub project: String,
    pub event_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventFound {
    pub project_id: u64,
    pub issue: u64,
    pub event: Event,
}

impl Operation for EventDetail {
    type Answer = EventFound;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<EventFound, ManageError> {
        actor.require_scope("event:read")?;
        let project = h.project(actor, &self.project)?;
        let id = EventId::parse(&self.event_id).ok_or_else(|| {
            ManageError::Invalid(format!(
                "'{}' is not an event id (32 hex digits)",
                self.event_id
            ))
        })?;
        let txn = h.db.begin_read()?;
        let stored = events::get(&txn.open_table(EVENTS)?, project.id, &id)?.ok_or_else(|| {
            ManageError::NotFound(format!(
                "no event {} in project '{}'",
                self.event_id, project.slug
            ))
        })?;
        Ok(EventFound {
            project_id: project.id,
            issue: stored.issue,
            event: stored.event,
        })
    }
}

/// One issue of a project.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueShow {
    pub project: String,
    pub issue: u64,
}

impl Operation for IssueShow {
    type Answer = IssueView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<IssueView, ManageError> {
        actor.require_scope("event:read")?;
        let (_, issue) = h.issue(actor, &self.project, self.issue)?;
        Ok(IssueView::from(&issue))
    }
}

/// How a search orders issues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueSort {
    /// Most recently seen first.
    #[default]
    LastSeen,
    /// Most recently first seen first.
    FirstSeen,
    /// Most events first.
    Frequency,
    /// Most users first.
    Users,
}

/// Issues of the projects the actor may see (or of the named ones), matching a search,
/// ordered and cut into pages.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IssueSearch {
    /// Slugs or ids; empty: every project the actor may see.
    pub projects: Vec<String>,
    /// A search (`manage::search`); empty: every issue.
    pub query: String,
    /// Only events of these environments count (as `environment:` in the query would).
    pub environments: Vec<String>,
    /// Only issues seen at or after this time (whose counts are then those since)…
    pub since: Option<f64>,
    /// …and first seen at or before this one (Unix seconds).
    pub until: Option<f64>,
    pub sort: IssueSort,
    pub offset: usize,
    pub limit: usize,
}

/// A page of a search, and whether more follow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuePage {
    pub issues: Vec<IssueView>,
    pub more: bool,
}

impl Operation for IssueSearch {
    type Answer = IssuePage;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<IssuePage, ManageError> {
        actor.require_scope("event:read")?;
        let projects = if self.projects.is_empty() {
            h.visible_projects(actor)?
        } else {
            self.projects
                .iter()
                .map(|p| h.project(actor, p))
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut query = Query::parse(&self.query, crate::time::now())
            .map_err(|e| ManageError::Invalid(e.to_string()))?;
        if !self.environments.is_empty() {
            query.require(Test::Environment(
                self.environments
                    .iter()
                    .map(|e| Pattern(e.clone()))
                    .collect(),
            ));
        }
        let txn = h.db.begin_read()?;
        let table = txn.open_table(ISSUES)?;
        let mut found = Vec::new();
        for p in &projects {
            let list: Vec<Issue> = issues::list(&table, p.id, None)?
                .into_iter()
                .filter(|i| self.until.is_none_or(|t| i.first_seen <= t))
                .collect();
            found.extend(
                search_project(&txn, p, &list, &query, actor.email(), self.since)?
                    .into_iter()
                    .map(|(i, c)| (i.clone(), c)),
            );
        }
        let key = |(i, c): &(Issue, Option<Counted>)| match self.sort {
            IssueSort::LastSeen => i.last_seen,
            IssueSort::FirstSeen => i.first_seen,
            IssueSort::Frequency => c.map_or(i.count, |c| c.events) as f64,
            IssueSort::Users => c.map_or(i.user_count(), |c| c.users) as f64,
        };
        found.sort_by(|a, b| {
            key(b)
                .total_cmp(&key(a))
                .then(b.0.last_seen.total_cmp(&a.0.last_seen))
                .then((b.0.project, b.0.id).cmp(&(a.0.project, a.0.id)))
        });
        let more = found.len() > self.offset + self.limit;
        Ok(IssuePage {
            issues: found
                .iter()
                .skip(self.offset)
                .take(self.limit)
                .map(|(i, c)| counted_view(i, *c))
                .collect(),
            more,
        })
    }
}

/// An issue as a view, with its counts in a search's scope when the search narrowed them.
fn counted_view(issue: &Issue, counted: Option<Counted>) -> IssueView {
    let mut view = IssueView::from(issue);
    view.filtered = counted.map(Filtered::from);
    view
}

/// The issues among `issues` of `project` that a query matches, each with its counts in the
/// query's scope (`None` when the query does not narrow them). Counts are read for each
/// match when the scope is narrow: a cost of about one range read per matching issue.
pub fn search_project<'i>(
    txn: &redb::ReadTransaction,
    project: &Project,
    issues: &'i [Issue],
    query: &Query,
    me: Option<&str>,
    since: Option<f64>,
) -> Result<Vec<(&'i Issue, Option<Counted>)>, ManageError> {
    let haystacks: Vec<String> = issues.iter().map(haystack).collect();
    let candidates = issues.iter().zip(haystacks.iter().map(String::as_str));
    let found = query.find(txn, project.id, candidates, me, since)?;
    let narrow = found.scope.is_narrow();
    let mut out = Vec::with_capacity(found.issues.len());
    for issue in found.issues {
        let counted = if narrow {
            Some(found.scope.count(txn, issue)?)
        } else {
            None
        };
        out.push((issue, counted));
    }
    Ok(out)
}

//! Issues and their events: list and read them, resolve, ignore or unresolve an issue, and
//! delete one with its events.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
        }
    }
}

/// A project's issues with a status (`unresolved` when not given, or `all`), most recently
/// seen first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueList {
    pub project: String,
    pub status: Option<String>,
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
        let status = status_filter(self.status.as_deref())?;
        let txn = h.db.begin_read()?;
        let list = issues::list(&txn.open_table(ISSUES)?, project.id, status)?;
        Ok(list.iter().map(IssueView::from).collect())
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

/// An issue's stored events, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventList {
    pub project: String,
    pub issue: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventSummary {
    pub event_id: EventId,
    pub timestamp: String,
    pub received: String,
    pub title: String,
    pub level: String,
    pub issue: u64,
}

impl Operation for EventList {
    type Answer = Vec<EventSummary>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<EventSummary>, ManageError> {
        actor.require_scope("event:read")?;
        let (project, _) = h.issue(actor, &self.project, self.issue)?;
        let txn = h.db.begin_read()?;
        let ids = events::of_issue(&txn.open_table(ISSUE_EVENTS)?, project.id, self.issue)?;
        let table = txn.open_table(EVENTS)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids.iter().rev() {
            if let Some(stored) = events::get(&table, project.id, id)? {
                let ev = &stored.event;
                out.push(EventSummary {
                    event_id: ev.event_id,
                    timestamp: crate::time::rfc3339(ev.timestamp),
                    received: crate::time::rfc3339(ev.received),
                    title: ev.title(),
                    level: ev.level.as_str().into(),
                    issue: stored.issue,
                });
            }
        }
        Ok(out)
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

/// Issues of the projects the actor may see (or of the named ones), filtered, ordered and cut
/// into pages.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IssueSearch {
    /// Slugs or ids; empty: every project the actor may see.
    pub projects: Vec<String>,
    /// `None`: any status.
    pub status: Option<Status>,
    pub level: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    /// Words that must all appear in the title or culprit (any case).
    pub text: Option<String>,
    /// Only issues seen at or after this time…
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

impl IssueSearch {
    fn matches(&self, i: &Issue) -> bool {
        let text_matches = || {
            let haystack = format!("{} {}", i.title, i.culprit).to_lowercase();
            self.text.as_ref().is_none_or(|t| {
                t.to_lowercase()
                    .split_whitespace()
                    .all(|w| haystack.contains(w))
            })
        };
        self.status.is_none_or(|s| s == i.status)
            && self.level.as_ref().is_none_or(|l| i.level.as_str() == l)
            && self.release.as_ref().is_none_or(|r| i.releases.contains(r))
            && self
                .environment
                .as_ref()
                .is_none_or(|e| i.environments.contains(e))
            && self.since.is_none_or(|t| i.last_seen >= t)
            && self.until.is_none_or(|t| i.first_seen <= t)
            && text_matches()
    }
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
        let txn = h.db.begin_read()?;
        let table = txn.open_table(ISSUES)?;
        let mut found = Vec::new();
        for p in &projects {
            found.extend(
                issues::list(&table, p.id, None)?
                    .into_iter()
                    .filter(|i| self.matches(i)),
            );
        }
        let key = |i: &Issue| match self.sort {
            IssueSort::LastSeen => i.last_seen,
            IssueSort::FirstSeen => i.first_seen,
            IssueSort::Frequency => i.count as f64,
            IssueSort::Users => i.user_count() as f64,
        };
        found.sort_by(|a, b| {
            key(b)
                .total_cmp(&key(a))
                .then(b.last_seen.total_cmp(&a.last_seen))
                .then((b.project, b.id).cmp(&(a.project, a.id)))
        });
        let more = found.len() > self.offset + self.limit;
        Ok(IssuePage {
            issues: found
                .iter()
                .skip(self.offset)
                .take(self.limit)
                .map(IssueView::from)
                .collect(),
            more,
        })
    }
}

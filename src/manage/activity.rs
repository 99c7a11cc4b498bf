//! Triage together: an issue's activity (who changed what, when), assigning it to a member,
//! and comments. An assignment mails the assignee; a comment mails the assignee and those who
//! commented before (never its author), through the alert outbox, in the transaction that
//! records it.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::store::activity::{self, Activity, Change, ISSUE_ACTIVITY, Who};
use crate::store::alerts::{Alert, AlertOutbox, Rule};
use crate::store::backup::Progress;
use crate::store::issues::{self, Issue};
use crate::store::{ISSUES, StoreError, USERS, users};

/// Longest comment kept, in characters.
pub const MAX_COMMENT: usize = 10_000;

/// One entry of an issue's activity as the CLI, the API and the issue page show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActivityView {
    /// 0 for the first sighting (which is not a stored entry).
    pub id: u64,
    /// `first_seen`, `resolved`, `unresolved`, `regressed`, `ignored`, `unignored`,
    /// `assigned`, `commented`, `merged`.
    #[serde(rename = "type")]
    pub kind: String,
    pub at: String,
    /// Unix seconds, for sorting and relative times.
    pub timestamp: f64,
    /// "picket", "cli", "user" or "token".
    pub by: String,
    /// The user's email or the token's name; empty for picket and the command line.
    pub who: String,
    /// The change in words ("resolved in the next release (after shop@1.2)").
    pub text: String,
    /// A comment's text.
    pub comment: Option<String>,
    pub edited: Option<String>,
    /// The event it is about (first seen, regressed).
    pub event_id: Option<String>,
}

impl ActivityView {
    fn of(entry: &Activity) -> ActivityView {
        let (by, who) = match &entry.who {
            Who::Picket => ("picket", String::new()),
            Who::Cli => ("cli", String::new()),
            Who::User(email) => ("user", email.clone()),
            Who::Token { name, .. } => ("token", name.clone()),
        };
        let mut view = ActivityView {
            id: entry.id,
            kind: String::new(),
            at: crate::time::rfc3339(entry.at),
            timestamp: entry.at,
            by: by.into(),
            who,
            text: String::new(),
            comment: None,
            edited: None,
            event_id: None,
        };
        let (kind, text) = match &entry.change {
            Change::Resolved {
                release: None,
                next_release: _,
            } => ("resolved", "resolved".to_string()),
            Change::Resolved {
                release: Some(r),
                next_release: false,
            } => ("resolved", format!("resolved in release {r}")),
            Change::Resolved {
                release: Some(r),
                next_release: true,
            } => (
                "resolved",
                format!("resolved in the next release (after {r})"),
            ),
            Change::Unresolved => ("unresolved", "marked unresolved".into()),
            Change::Regressed { event, release } => {
                view.event_id = Some(event.to_string());
                let text = match release {
                    Some(r) => format!("regressed: a new event in release {r}"),
                    None => "regressed: a new event".into(),
                };
                ("regressed", text)
            }
            Change::Ignored {
                until,
                more_events,
                more_users,
            } => (
                "ignored",
                ignore_condition(*until, *more_events, *more_users),
            ),
            Change::Unignored { event: Some(event) } => {
                view.event_id = Some(event.to_string());
                (
                    "unignored",
                    "came back: its ignore condition ran out".into(),
                )
            }
            Change::Unignored { event: None } => ("unignored", "no longer ignored".into()),
            Change::Assigned { to: Some(to) } => ("assigned", format!("assigned to {to}")),
            Change::Assigned { to: None } => ("assigned", "unassigned".into()),
            Change::Commented { text, edited } => {
                view.comment = Some(text.clone());
                view.edited = edited.map(crate::time::rfc3339);
                ("commented", "commented".into())
            }
            Change::Merged { issues, events } => (
                "merged",
                format!(
                    "merged issue{} {} into this one ({events} event{})",
                    if issues.len() == 1 { "" } else { "s" },
                    issues
                        .iter()
                        .map(|i| format!("#{i}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if *events == 1 { "" } else { "s" }
                ),
            ),
        };
        view.kind = kind.into();
        view.text = text;
        view
    }

    fn first_seen(issue: &Issue) -> ActivityView {
        ActivityView {
            id: 0,
            kind: "first_seen".into(),
            at: crate::time::rfc3339(issue.first_seen),
            timestamp: issue.first_seen,
            by: "picket".into(),
            who: String::new(),
            text: match &issue.first_release {
                Some(r) => format!("first seen in release {r}"),
                None => "first seen".into(),
            },
            comment: None,
            edited: None,
            event_id: Some(issue.first_event.to_string()),
        }
    }
}

/// "ignored until 2026-12-03T10:00:00Z", "ignored until 100 more events", "ignored forever".
pub fn ignore_condition(until: Option<f64>, events: Option<u64>, users: Option<u64>) -> String {
    let mut parts = Vec::new();
    if let Some(t) = until {
        parts.push(crate::time::rfc3339(t));
    }
    if let Some(n) = events {
        parts.push(format!("{n} more event{}", if n == 1 { "" } else { "s" }));
    }
    if let Some(n) = users {
        parts.push(format!("{n} more user{}", if n == 1 { "" } else { "s" }));
    }
    if parts.is_empty() {
        "ignored forever".into()
    } else {
        format!("ignored until {}", parts.join(" or "))
    }
}

/// An issue's activity, oldest first, beginning with its first sighting.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueActivity {
    pub project: String,
    pub issue: u64,
}

impl Operation for IssueActivity {
    type Answer = Vec<ActivityView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<ActivityView>, ManageError> {
        actor.require_scope("event:read")?;
        let (project, issue) = h.issue(actor, &self.project, self.issue)?;
        let txn = h.db.begin_read()?;
        let entries = activity::list(&txn.open_table(ISSUE_ACTIVITY)?, project.id, issue.id)?;
        let mut out: Vec<ActivityView> = std::iter::once(ActivityView::first_seen(&issue))
            .chain(entries.iter().map(ActivityView::of))
            .collect();
        // Entries moved in by a merge come after the issue's own; time is the order.
        out.sort_by(|a, b| a.timestamp.total_cmp(&b.timestamp));
        Ok(out)
    }
}

/// Assigns an issue to a member of its project (or to nobody).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueAssign {
    pub project: String,
    pub issue: u64,
    /// An email; `None` unassigns.
    pub to: Option<String>,
}

impl Operation for IssueAssign {
    type Answer = super::issues::IssueView;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<super::issues::IssueView, ManageError> {
        actor.require_scope("event:write")?;
        let (project, issue) = h.issue(actor, &self.project, self.issue)?;
        let to = match self.to.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(email) => {
                let email = email.to_ascii_lowercase();
                let txn = h.db.begin_read()?;
                let user = users::get(&txn.open_table(USERS)?, &email)?;
                match user {
                    Some(u) if project.admits(&u) => Some(email),
                    _ => {
                        return Err(ManageError::Invalid(format!(
                            "{email} is not a member of {} (issues are assigned to members)",
                            project.slug
                        )));
                    }
                }
            }
        };
        let who = actor.who();
        let notify = to
            .clone()
            .filter(|t| Some(t.as_str()) != who.email() && mail_on(h));
        let (pid, id, now) = (project.id, issue.id, crate::time::now());
        let updated = h.write_issues(vec![(pid, id)], move |txn| {
            let updated = issues::assign(txn, pid, id, to, who.clone(), now)?;
            if let Some(to) = notify {
                let detail = format!("{} assigned it to you", who.describe());
                notify_people(txn, &updated, Rule::Assigned, detail, vec![to], now)?;
            }
            Ok(updated)
        })?;
        Ok(super::issues::IssueView::from(&updated))
    }
}

/// Whether alert mail can go out at all.
fn mail_on(h: &Handle) -> bool {
    !h.config.smtp_url.is_empty()
}

/// Queues a mail about an issue to the people named.
fn notify_people(
    txn: &redb::WriteTransaction,
    issue: &Issue,
    rule: Rule,
    detail: String,
    to: Vec<String>,
    at: f64,
) -> Result<(), StoreError> {
    if to.is_empty() {
        return Ok(());
    }
    AlertOutbox::open(txn)?.push(&Alert {
        project: issue.project,
        issue: issue.id,
        rule,
        event_id: issue.last_event,
        created: at,
        detail,
        mail: true,
        webhooks: Vec::new(),
        held: false,
        to,
    })?;
    Ok(())
}

/// Adds a comment to an issue, edits one's own comment, or deletes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueComment {
    pub project: String,
    pub issue: u64,
    pub change: CommentChange,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum CommentChange {
    Add { text: String },
    Edit { id: u64, text: String },
    Delete { id: u64 },
}

impl Operation for IssueComment {
    type Answer = Vec<ActivityView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        progress: Progress<'_>,
    ) -> Result<Vec<ActivityView>, ManageError> {
        actor.require_scope("event:write")?;
        let (project, issue) = h.issue(actor, &self.project, self.issue)?;
        let text = |t: &str| -> Result<String, ManageError> {
            let t = t.trim();
            if t.is_empty() {
                return Err(ManageError::Invalid("the comment is empty".into()));
            }
            if t.chars().count() > MAX_COMMENT {
                return Err(ManageError::Invalid(format!(
                    "the comment is longer than {MAX_COMMENT} characters"
                )));
            }
            Ok(t.to_string())
        };
        let who = actor.who();
        let (pid, id, now, mail) = (project.id, issue.id, crate::time::now(), mail_on(h));
        match self.change {
            CommentChange::Add { text: t } => {
                let t = text(&t)?;
                h.write_issues(vec![(pid, id)], move |txn| {
                    let earlier = activity::commenters(&activity::list(
                        &txn.open_table(ISSUE_ACTIVITY)?,
                        pid,
                        id,
                    )?);
                    let change = Change::Commented {
                        text: t.clone(),
                        edited: None,
                    };
                    activity::append(txn, pid, id, now, who.clone(), change)?;
                    let updated = issues::update(txn, pid, id, |i| i.comments += 1)?;
                    let mut to: Vec<String> = earlier;
                    to.extend(updated.assignee.clone());
                    to.sort();
                    to.dedup();
                    to.retain(|e| Some(e.as_str()) != who.email());
                    if mail {
                        let excerpt: String = t.chars().take(500).collect();
                        let detail = format!("{} commented: {excerpt}", who.describe());
                        notify_people(txn, &updated, Rule::Comment, detail, to, now)?;
                    }
                    Ok(())
                })?;
            }
            CommentChange::Edit { id: entry, text: t } => {
                let t = text(&t)?;
                h.write(move |txn| {
                    let mut found = own_comment(txn, pid, id, entry, &who)?;
                    found.change = Change::Commented {
                        text: t,
                        edited: Some(now),
                    };
                    activity::put(txn, pid, id, &found)
                })
                .map_err(comment_error)?;
            }
            CommentChange::Delete { id: entry } => {
                h.write_issues(vec![(pid, id)], move |txn| {
                    own_comment(txn, pid, id, entry, &who)?;
                    activity::remove(txn, pid, id, entry)?;
                    issues::update(txn, pid, id, |i| i.comments = i.comments.saturating_sub(1))?;
                    Ok(())
                })
                .map_err(comment_error)?;
            }
        }
        IssueActivity {
            project: self.project,
            issue: self.issue,
        }
        .apply(h, actor, progress)
    }
}

/// What marks a comment as someone else's, inside a write (the store's error kinds carry it).
const NOT_YOURS: &str = "that comment is someone else's: only its author may change it";

/// A comment entry made by `who`.
fn own_comment(
    txn: &redb::WriteTransaction,
    project: u64,
    issue: u64,
    id: u64,
    who: &Who,
) -> Result<Activity, StoreError> {
    match activity::get(txn, project, issue, id)? {
        Some(
            entry @ Activity {
                change: Change::Commented { .. },
                ..
            },
        ) if &entry.who == who => Ok(entry),
        Some(Activity {
            change: Change::Commented { .. },
            ..
        }) => Err(StoreError::Conflict(NOT_YOURS.into())),
        _ => Err(StoreError::NotFound(format!(
            "no comment {id} on issue {issue}"
        ))),
    }
}

fn comment_error(e: StoreError) -> ManageError {
    match e {
        StoreError::Conflict(m) if m == NOT_YOURS => ManageError::Forbidden(m),
        other => other.into(),
    }
}

/// Merges issues into one: their stored events, counts and activity move to it, and their
/// fingerprints lead to it from then on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssueMerge {
    pub project: String,
    pub into: u64,
    pub from: Vec<u64>,
}

impl Operation for IssueMerge {
    type Answer = super::issues::IssueView;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<super::issues::IssueView, ManageError> {
        actor.require_scope("event:admin")?;
        let project = h.owned_project(actor, &self.project, "merge its issues")?;
        let mut from = self.from;
        from.sort_unstable();
        from.dedup();
        from.retain(|f| *f != self.into);
        if from.is_empty() {
            return Err(ManageError::Invalid(
                "name at least one other issue to merge into it".into(),
            ));
        }
        let (pid, into, who, now) = (project.id, self.into, actor.who(), crate::time::now());
        let merged = h.write(move |txn| {
            let mut events = 0;
            for &issue in &from {
                events += crate::store::tables::Tables::open(txn)?.merge_issue(pid, into, issue)?;
                let moved = activity::list(&txn.open_table(ISSUE_ACTIVITY)?, pid, issue)?;
                for entry in moved {
                    activity::append(txn, pid, into, entry.at, entry.who, entry.change)?;
                }
                activity::forget(txn, pid, issue)?;
            }
            let change = Change::Merged {
                issues: from.clone(),
                events,
            };
            activity::append(txn, pid, into, now, who, change)?;
            issues::get(&txn.open_table(ISSUES)?, pid, into)?
                .ok_or_else(|| StoreError::NotFound(format!("no issue {into}")))
        })?;
        Ok(super::issues::IssueView::from(&merged))
    }
}

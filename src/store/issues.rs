//! Issues: the groups events fall into, with the aggregates users count on (count, distinct
//! users, first and last seen, releases and environments, hourly counts, tag values).

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::activity::{self, Change, Who};
use super::{ISSUES, StoreError, decode};
use crate::event::{Level, Strategy};
use crate::ids::EventId;

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Unresolved,
    Resolved,
    Ignored,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unresolved => "unresolved",
            Status::Resolved => "resolved",
            Status::Ignored => "ignored",
        }
    }
}

/// At most this many releases and environments are remembered per issue.
pub const MAX_SEEN_VALUES: usize = 100;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Issue {
    pub project: u64,
    /// The per-project issue number.
    pub id: u64,
    /// The fingerprint hash that leads here.
    pub hash: Vec<u8>,
    /// The fingerprint hashes of issues merged into this one, which lead here too.
    pub merged_hashes: Vec<Vec<u8>>,
    pub strategy: Strategy,
    pub title: String,
    pub culprit: String,
    pub level: Level,
    pub platform: String,
    pub status: Status,
    pub first_seen: f64,
    pub last_seen: f64,
    /// Events ever received.
    pub count: u64,
    /// Events still stored (retention removes old ones; `count` stays).
    pub stored: u64,
    /// HyperLogLog registers counting distinct users.
    pub users: Vec<u8>,
    /// Distinct users counted exactly (rows of `slices::ISSUE_USERS`) until
    /// `slices::EXACT_USERS`; `None` for an issue older than that count.
    pub exact_users: Option<u64>,
    /// Terms of its events in the search index (bounded by `slices::MAX_TERMS_PER_ISSUE`).
    pub terms: u64,
    pub releases: Vec<String>,
    pub environments: Vec<String>,
    /// The release of the issue's first event, and of its latest one that named a release.
    pub first_release: Option<String>,
    pub last_release: Option<String>,
    pub first_event: EventId,
    pub last_event: EventId,
    /// Times the issue came back after being resolved.
    pub regressions: u64,
    /// While ignored: the issue comes back after this time (Unix seconds)…
    pub ignore_until: Option<f64>,
    /// …or once its `count` reaches this…
    pub ignore_until_count: Option<u64>,
    /// …or once its distinct users reach this.
    pub ignore_until_users: Option<u64>,
    /// While resolved in a release: only events of that release or a newer one reopen it.
    pub resolved_in: Option<ResolvedIn>,
    /// When it last came back after being resolved.
    pub regressed_at: Option<f64>,
    /// The member it is assigned to, by email.
    pub assignee: Option<String>,
    /// Comments in its activity.
    pub comments: u64,
    /// When each alert rule last fired for this issue (for throttling and frequency windows).
    pub alerted: Vec<(super::alerts::Rule, f64)>,
    /// User feedback about its events.
    pub feedback: u64,
}

/// The release an issue was resolved in: events of releases that first appeared before
/// `first_seen` (by the project's first event of each) do not reopen it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ResolvedIn {
    pub release: String,
    /// When the release first appeared in the project (the time of resolving, for a release
    /// not seen yet).
    pub first_seen: f64,
    /// Resolved in the release after `release`: events of `release` itself do not reopen it.
    pub next: bool,
}

impl ResolvedIn {
    /// Whether an event of `release` (which first appeared at `appeared`, `None`: not seen
    /// before this event) reopens the issue. An event without a release never does.
    pub fn reopens(&self, release: Option<&str>, appeared: Option<f64>) -> bool {
        let Some(release) = release else {
            return false;
        };
        if release == self.release {
            return !self.next;
        }
        appeared.is_none_or(|t| {
            if self.next {
                t > self.first_seen
            } else {
                t >= self.first_seen
            }
        })
    }
}

/// A change of an issue's status, as the CLI and the UI's buttons ask for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusChange {
    Resolve,
    /// Resolve in a release: events of older releases do not reopen it.
    ResolveIn {
        release: String,
    },
    /// Resolve in the next release: events of the newest release seen so far, and of older
    /// ones, do not reopen it.
    ResolveInNextRelease,
    Unresolve,
    /// Ignore, optionally until a time (Unix seconds), until this many more events or until
    /// this many more users; forever without any.
    Ignore {
        until: Option<f64>,
        more_events: Option<u64>,
        #[serde(default)]
        more_users: Option<u64>,
    },
}

/// Applies a status change to an issue; `resolved_in` is the release it is resolved in, when
/// the change is one of the release-bound resolves.
pub fn change_status(issue: &mut Issue, change: &StatusChange, resolved_in: Option<ResolvedIn>) {
    issue.ignore_until = None;
    issue.ignore_until_count = None;
    issue.ignore_until_users = None;
    issue.resolved_in = None;
    match change {
        StatusChange::Resolve => issue.status = Status::Resolved,
        StatusChange::ResolveIn { .. } | StatusChange::ResolveInNextRelease => {
            issue.status = Status::Resolved;
            issue.resolved_in = resolved_in;
        }
        StatusChange::Unresolve => issue.status = Status::Unresolved,
        StatusChange::Ignore {
            until,
            more_events,
            more_users,
        } => {
            issue.status = Status::Ignored;
            issue.ignore_until = *until;
            issue.ignore_until_count = more_events.map(|n| issue.count + n);
            issue.ignore_until_users = more_users.map(|n| issue.user_count() + n);
        }
    }
}

/// Sets an issue's status in the file and records who did it in its activity.
pub fn set_status(
    txn: &redb::WriteTransaction,
    project: u64,
    id: u64,
    change: &StatusChange,
    resolved_in: Option<ResolvedIn>,
    who: Who,
    at: f64,
) -> Result<Issue, StoreError> {
    let mut was = Status::Unresolved;
    let issue = update(txn, project, id, |issue| {
        was = issue.status;
        change_status(issue, change, resolved_in);
    })?;
    let entry = match change {
        StatusChange::Resolve => Change::Resolved {
            release: None,
            next_release: false,
        },
        StatusChange::ResolveIn { release } => Change::Resolved {
            release: Some(release.clone()),
            next_release: false,
        },
        StatusChange::ResolveInNextRelease => Change::Resolved {
            release: issue.resolved_in.as_ref().map(|r| r.release.clone()),
            next_release: true,
        },
        StatusChange::Unresolve if was == Status::Ignored => Change::Unignored { event: None },
        StatusChange::Unresolve => Change::Unresolved,
        StatusChange::Ignore {
            until,
            more_events,
            more_users,
        } => Change::Ignored {
            until: *until,
            more_events: *more_events,
            more_users: *more_users,
        },
    };
    activity::append(txn, project, id, at, who, entry)?;
    Ok(issue)
}

/// Sets who an issue is assigned to, and records it.
pub fn assign(
    txn: &redb::WriteTransaction,
    project: u64,
    id: u64,
    to: Option<String>,
    who: Who,
    at: f64,
) -> Result<Issue, StoreError> {
    update(txn, project, id, |issue| issue.assignee = to.clone()).and_then(|issue| {
        activity::append(txn, project, id, at, who, Change::Assigned { to })?;
        Ok(issue)
    })
}

/// Changes an issue's row in a write.
pub fn update(
    txn: &redb::WriteTransaction,
    project: u64,
    id: u64,
    change: impl FnOnce(&mut Issue),
) -> Result<Issue, StoreError> {
    let mut table = txn.open_table(ISSUES)?;
    let mut issue =
        get(&table, project, id)?.ok_or_else(|| StoreError::NotFound(format!("no issue {id}")))?;
    change(&mut issue);
    table.insert((project, id), super::encode(&issue).as_slice())?;
    Ok(issue)
}

impl Issue {
    /// Approximate number of distinct users seen.
    /// Distinct users: exact up to `slices::EXACT_USERS`, estimated past it (see
    /// [`Issue::users_estimated`]).
    pub fn user_count(&self) -> u64 {
        match self.exact_users {
            Some(n) if n < super::slices::EXACT_USERS => n,
            Some(n) => super::sketch::count(&self.users).max(n),
            None => super::sketch::count(&self.users),
        }
    }

    /// Whether [`Issue::user_count`] is an estimate.
    pub fn users_estimated(&self) -> bool {
        self.exact_users
            .is_none_or(|n| n >= super::slices::EXACT_USERS)
            && !self.users.is_empty()
    }

    pub fn add_user(&mut self, identity: &str) {
        super::sketch::add(
            &mut self.users,
            USER_BITS,
            super::sketch::hash(identity.as_bytes()),
        );
    }

    pub fn remember_release(&mut self, release: &str) {
        remember(&mut self.releases, release);
    }

    pub fn remember_environment(&mut self, environment: &str) {
        remember(&mut self.environments, environment);
    }
}

fn remember(list: &mut Vec<String>, value: &str) {
    if list.len() < MAX_SEEN_VALUES && !list.iter().any(|v| v == value) {
        list.push(value.to_string());
    }
}

/// Registers of an issue's users sketch: 2^6, about 13 % error, 64 bytes.
pub(crate) const USER_BITS: u32 = 6;

pub fn get(
    table: &impl ReadableTable<(u64, u64), &'static [u8]>,
    project: u64,
    id: u64,
) -> Result<Option<Issue>, StoreError> {
    table
        .get((project, id))?
        .map(|v| decode("issues", v.value()))
        .transpose()
}

/// A project's issues, optionally only those with one status, newest activity first.
pub fn list(
    table: &impl ReadableTable<(u64, u64), &'static [u8]>,
    project: u64,
    status: Option<Status>,
) -> Result<Vec<Issue>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((project, 0)..=(project, u64::MAX))? {
        let issue: Issue = decode("issues", row?.1.value())?;
        if status.is_none_or(|s| s == issue.status) {
            out.push(issue);
        }
    }
    out.sort_by(|a, b| b.last_seen.total_cmp(&a.last_seen).then(b.id.cmp(&a.id)));
    Ok(out)
}

/// An issue's events per hour (hour since epoch, events; by the events' own time) from hour
/// `from` to `to`.
pub fn hourly(
    table: &impl ReadableTable<(u64, u64, u64), u64>,
    project: u64,
    issue: u64,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((project, issue, from)..=(project, issue, to))? {
        let (k, v) = row?;
        out.push((k.value().2, v.value()));
    }
    Ok(out)
}

/// Tag value counts of an issue as (key, value, events).
pub fn tags(
    table: &impl ReadableTable<(u64, u64, &'static str, &'static str), u64>,
    project: u64,
    issue: u64,
) -> Result<Vec<(String, String, u64)>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((project, issue, "", "")..(project, issue + 1, "", ""))? {
        let (k, v) = row?;
        let (_, _, key, value) = k.value();
        out.push((key.to_string(), value.to_string(), v.value()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_users_are_estimated() {
        let mut issue = Issue::default();
        for round in 0..3 {
            for u in 0..200 {
                issue.add_user(&format!("user-{u}"));
            }
            let _ = round;
        }
        let n = issue.user_count();
        assert!((150..=250).contains(&n), "estimate {n} for 200 users");
        let mut one = Issue::default();
        one.add_user("x");
        one.add_user("x");
        assert_eq!(one.user_count(), 1);
    }

    #[test]
    fn a_release_bound_resolve_reopens_only_for_newer_releases() {
        // Resolved in the next release after 1.1, which first appeared at t=100.
        let next = ResolvedIn {
            release: "shop@1.1".into(),
            first_seen: 100.0,
            next: true,
        };
        assert!(!next.reopens(Some("shop@1.1"), Some(100.0)));
        assert!(!next.reopens(Some("shop@1.0"), Some(50.0)));
        assert!(next.reopens(Some("shop@1.2"), Some(150.0)));
        assert!(
            next.reopens(Some("shop@1.3"), None),
            "a release never seen is newer"
        );
        assert!(
            !next.reopens(None, None),
            "an event without a release cannot be newer"
        );
        // Resolved in 1.2 itself: its events and newer ones reopen it, older ones do not.
        let in_release = ResolvedIn {
            release: "shop@1.2".into(),
            first_seen: 150.0,
            next: false,
        };
        assert!(in_release.reopens(Some("shop@1.2"), Some(150.0)));
        assert!(!in_release.reopens(Some("shop@1.1"), Some(100.0)));
        assert!(in_release.reopens(Some("shop@1.3"), Some(200.0)));
    }
}

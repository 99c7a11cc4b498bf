//! An issue's activity: every change made to it, by whom and when (resolved, regressed,
//! ignored, assigned, commented, merged…), in the order it happened. Comments live here too,
//! as the activity entries of kind [`Change::Commented`]; editing one changes its entry.
//! The first sighting is not stored: it is the issue's own `first_seen` and `first_event`.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{StoreError, decode, encode};
use crate::ids::EventId;

/// (project, issue, entry number) → Activity.
pub(crate) const ISSUE_ACTIVITY: TableDefinition<(u64, u64, u64), &[u8]> =
    TableDefinition::new("issue_activity");

/// Who made a change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Who {
    /// picket itself (an event reopened the issue, an ignore condition ran out).
    Picket,
    /// The command line on the server's machine.
    Cli,
    /// A signed-in user, by email.
    User(String),
    /// An API token, by its name (and the user it acts as, if any).
    Token { name: String, user: Option<String> },
}

impl Who {
    /// "alice@example.com", "picket", "the command line", "token ci (bob@example.com)".
    pub fn describe(&self) -> String {
        match self {
            Who::Picket => "picket".into(),
            Who::Cli => "the command line".into(),
            Who::User(email) => email.clone(),
            Who::Token { name, user: None } => format!("API token {name}"),
            Who::Token {
                name,
                user: Some(user),
            } => format!("API token {name} ({user})"),
        }
    }

    /// The user's email, when a user made it.
    pub fn email(&self) -> Option<&str> {
        match self {
            Who::User(email) => Some(email),
            Who::Token { user, .. } => user.as_deref(),
            _ => None,
        }
    }
}

/// What changed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Resolved now, in a given release, or in the next release (`release` then names the
    /// newest release seen at the time).
    Resolved {
        release: Option<String>,
        next_release: bool,
    },
    /// Set back to unresolved by hand.
    Unresolved,
    /// An event reopened a resolved issue.
    Regressed {
        event: EventId,
        release: Option<String>,
    },
    /// Ignored until a time, until more events or users, or forever (all `None`).
    Ignored {
        until: Option<f64>,
        more_events: Option<u64>,
        more_users: Option<u64>,
    },
    /// The ignore condition ran out (`event` is the one that ended it) or it was lifted by hand.
    Unignored { event: Option<EventId> },
    /// Assigned to a member, or unassigned (`None`).
    Assigned { to: Option<String> },
    /// A comment; `edited` is when it was last changed.
    Commented { text: String, edited: Option<f64> },
    /// Other issues were merged into this one.
    Merged { issues: Vec<u64>, events: u64 },
}

/// One entry of an issue's activity.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Activity {
    pub id: u64,
    pub at: f64,
    pub who: Who,
    pub change: Change,
}

/// Appends an entry to an issue's activity; its number.
pub fn append(
    txn: &WriteTransaction,
    project: u64,
    issue: u64,
    at: f64,
    who: Who,
    change: Change,
) -> Result<u64, StoreError> {
    let mut table = txn.open_table(ISSUE_ACTIVITY)?;
    let id = table
        .range((project, issue, 0)..=(project, issue, u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(1, |(k, _)| k.value().2 + 1);
    let entry = Activity {
        id,
        at,
        who,
        change,
    };
    table.insert((project, issue, id), encode(&entry).as_slice())?;
    Ok(id)
}

/// An issue's activity, oldest first.
pub fn list(
    table: &impl ReadableTable<(u64, u64, u64), &'static [u8]>,
    project: u64,
    issue: u64,
) -> Result<Vec<Activity>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((project, issue, 0)..=(project, issue, u64::MAX))? {
        out.push(decode("issue_activity", row?.1.value())?);
    }
    Ok(out)
}

/// One entry.
pub fn get(
    txn: &WriteTransaction,
    project: u64,
    issue: u64,
    id: u64,
) -> Result<Option<Activity>, StoreError> {
    txn.open_table(ISSUE_ACTIVITY)?
        .get((project, issue, id))?
        .map(|v| decode("issue_activity", v.value()))
        .transpose()
}

/// Rewrites an entry (an edited comment).
pub fn put(
    txn: &WriteTransaction,
    project: u64,
    issue: u64,
    entry: &Activity,
) -> Result<(), StoreError> {
    txn.open_table(ISSUE_ACTIVITY)?
        .insert((project, issue, entry.id), encode(entry).as_slice())?;
    Ok(())
}

/// Removes an entry (a deleted comment).
pub fn remove(txn: &WriteTransaction, project: u64, issue: u64, id: u64) -> Result<(), StoreError> {
    txn.open_table(ISSUE_ACTIVITY)?
        .remove((project, issue, id))?;
    Ok(())
}

/// Forgets an issue's activity (the issue is deleted).
pub fn forget(txn: &WriteTransaction, project: u64, issue: u64) -> Result<(), StoreError> {
    txn.open_table(ISSUE_ACTIVITY)?
        .retain_in((project, issue, 0)..=(project, issue, u64::MAX), |_, _| {
            false
        })?;
    Ok(())
}

/// The emails of those who commented on an issue.
pub fn commenters(activity: &[Activity]) -> Vec<String> {
    let mut out: Vec<String> = activity
        .iter()
        .filter(|a| matches!(a.change, Change::Commented { .. }))
        .filter_map(|a| a.who.email().map(str::to_string))
        .collect();
    out.sort();
    out.dedup();
    out
}

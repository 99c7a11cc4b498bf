//! User feedback: a project's reports from end users, newest first, optionally only those
//! about one issue's events. Each carries the issue it is linked to once its event is stored.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::ids::EventId;
use crate::store::backup::Progress;
use crate::store::feedback::{self, FEEDBACK, FeedbackRow};

/// Most feedback one listing returns.
pub const MAX_LIST: usize = 1_000;

/// A project's feedback, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedbackList {
    pub project: String,
    /// Only the feedback about this issue's events.
    pub issue: Option<u64>,
    /// At most this many (capped at [`MAX_LIST`]).
    pub limit: Option<usize>,
}

/// One feedback as the CLI, the UI and the API see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedbackView {
    pub id: EventId,
    pub message: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The event it is about.
    pub event_id: Option<EventId>,
    /// That event's issue, once the event is stored.
    pub issue_id: Option<u64>,
    pub url: Option<String>,
    pub source: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub received: String,
}

impl From<FeedbackRow> for FeedbackView {
    fn from(row: FeedbackRow) -> FeedbackView {
        let f = row.feedback;
        FeedbackView {
            id: f.id,
            message: f.message,
            name: f.name,
            email: f.email,
            event_id: f.event_id,
            issue_id: row.issue,
            url: f.url,
            source: f.source,
            release: f.release,
            environment: f.environment,
            received: crate::time::rfc3339(f.received),
        }
    }
}

impl Operation for FeedbackList {
    type Answer = Vec<FeedbackView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<FeedbackView>, ManageError> {
        actor.require_scope("event:read")?;
        let project = h.project(actor, &self.project)?;
        let limit = self.limit.unwrap_or(MAX_LIST).min(MAX_LIST);
        let txn = h.db.begin_read()?;
        let rows = feedback::list(&txn.open_table(FEEDBACK)?, project.id, self.issue, limit)?;
        Ok(rows.into_iter().map(FeedbackView::from).collect())
    }
}

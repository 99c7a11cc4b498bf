//! User feedback rows. Each project's feedback is kept in arrival order under (project,
//! sequence), with an index by the feedback's own id (so a retried send is stored once) and a
//! list of the feedback waiting for the event it names (an SDK may send the feedback before
//! the event, or the event may never come). The writer links waiting feedback to its issue
//! when the event is stored; each project keeps at most [`MAX_PER_PROJECT`], oldest dropped
//! first.

use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{StoreError, decode, encode};
use crate::event::feedback::Feedback;
use crate::ids::EventId;

/// (project, sequence) → [`FeedbackRow`].
pub(crate) const FEEDBACK: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("feedback");
/// (project, feedback id) → sequence.
pub(crate) const FEEDBACK_IDS: TableDefinition<(u64, &[u8]), u64> =
    TableDefinition::new("feedback_ids");
/// (project, event id) → sequences of the feedback waiting for that event, MessagePack.
pub(crate) const FEEDBACK_PENDING: TableDefinition<(u64, &[u8]), &[u8]> =
    TableDefinition::new("feedback_pending");

/// Feedback kept per project; past it the oldest goes.
pub const MAX_PER_PROJECT: u64 = 10_000;

/// One stored feedback and the issue of the event it is about, once that event is stored.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct FeedbackRow {
    pub seq: u64,
    pub issue: Option<u64>,
    pub feedback: Feedback,
}

/// The feedback tables inside a write transaction.
pub struct FeedbackRows<'t> {
    rows: Table<'t, (u64, u64), &'static [u8]>,
    ids: Table<'t, (u64, &'static [u8]), u64>,
    pending: Table<'t, (u64, &'static [u8]), &'static [u8]>,
}

impl<'t> FeedbackRows<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<FeedbackRows<'t>, StoreError> {
        Ok(FeedbackRows {
            rows: txn.open_table(FEEDBACK)?,
            ids: txn.open_table(FEEDBACK_IDS)?,
            pending: txn.open_table(FEEDBACK_PENDING)?,
        })
    }

    pub fn exists(&self, project: u64, id: &EventId) -> Result<bool, StoreError> {
        Ok(self.ids.get((project, id.0.as_slice()))?.is_some())
    }

    /// Stores feedback, linked to `issue` or, when its event is not stored yet, waiting for it.
    pub fn insert(
        &mut self,
        project: u64,
        issue: Option<u64>,
        feedback: &Feedback,
    ) -> Result<u64, StoreError> {
        // Numbered per project after its newest feedback.
        let seq = self
            .rows
            .range((project, 0)..=(project, u64::MAX))?
            .next_back()
            .transpose()?
            .map_or(0, |(k, _)| k.value().1)
            + 1;
        let row = FeedbackRow {
            seq,
            issue,
            feedback: feedback.clone(),
        };
        self.rows.insert((project, seq), encode(&row).as_slice())?;
        self.ids.insert((project, feedback.id.0.as_slice()), seq)?;
        if let (None, Some(event)) = (issue, feedback.event_id) {
            let key = (project, event.0.as_slice());
            let mut waiting: Vec<u64> = match self.pending.get(key)? {
                Some(v) => decode("feedback_pending", v.value())?,
                None => Vec::new(),
            };
            waiting.push(seq);
            self.pending.insert(key, encode(&waiting).as_slice())?;
        }
        Ok(seq)
    }

    /// How many feedbacks wait for their event, over all projects.
    pub fn waiting(&self) -> Result<u64, StoreError> {
        Ok(self.pending.len()?)
    }

    /// Links the feedback waiting for `event` to `issue`; the feedback linked.
    pub fn link(
        &mut self,
        project: u64,
        event: &EventId,
        issue: u64,
    ) -> Result<Vec<FeedbackRow>, StoreError> {
        let Some(waiting) = self.pending.remove((project, event.0.as_slice()))? else {
            return Ok(Vec::new());
        };
        let seqs: Vec<u64> = decode("feedback_pending", waiting.value())?;
        drop(waiting);
        let mut linked = Vec::new();
        for seq in seqs {
            let row: Option<FeedbackRow> = match self.rows.get((project, seq))? {
                Some(row) => Some(decode("feedback", row.value())?),
                None => None,
            };
            let Some(mut row) = row else {
                continue;
            };
            row.issue = Some(issue);
            self.rows.insert((project, seq), encode(&row).as_slice())?;
            linked.push(row);
        }
        Ok(linked)
    }

    /// Drops a project's `n` oldest feedbacks; how many went.
    pub fn drop_oldest(&mut self, project: u64, n: u64) -> Result<u64, StoreError> {
        let oldest: Vec<FeedbackRow> = self
            .rows
            .range((project, 0)..=(project, u64::MAX))?
            .take(usize::try_from(n).unwrap_or(usize::MAX))
            .map(|row| decode("feedback", row?.1.value()))
            .collect::<Result<_, _>>()?;
        for row in &oldest {
            self.remove(project, row)?;
        }
        Ok(oldest.len() as u64)
    }

    fn remove(&mut self, project: u64, row: &FeedbackRow) -> Result<(), StoreError> {
        self.rows.remove((project, row.seq))?;
        self.ids.remove((project, row.feedback.id.0.as_slice()))?;
        if let (None, Some(event)) = (row.issue, row.feedback.event_id) {
            let key = (project, event.0.as_slice());
            let rest: Option<Vec<u64>> = match self.pending.get(key)? {
                Some(v) => Some(decode("feedback_pending", v.value())?),
                None => None,
            };
            match rest.map(|r| r.into_iter().filter(|s| *s != row.seq).collect::<Vec<_>>()) {
                Some(rest) if !rest.is_empty() => {
                    self.pending.insert(key, encode(&rest).as_slice())?;
                }
                Some(_) => {
                    self.pending.remove(key)?;
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Removes every feedback of a project.
    pub fn forget(&mut self, project: u64) -> Result<u64, StoreError> {
        self.drop_oldest(project, u64::MAX)
    }
}

/// A project's feedback, newest first, optionally only that linked to `issue`; at most `limit`.
pub fn list(
    rows: &impl ReadableTable<(u64, u64), &'static [u8]>,
    project: u64,
    issue: Option<u64>,
    limit: usize,
) -> Result<Vec<FeedbackRow>, StoreError> {
    let mut out = Vec::new();
    for row in rows.range((project, 0)..=(project, u64::MAX))?.rev() {
        if out.len() >= limit {
            break;
        }
        let row: FeedbackRow = decode("feedback", row?.1.value())?;
        if issue.is_none() || row.issue == issue {
            out.push(row);
        }
    }
    Ok(out)
}

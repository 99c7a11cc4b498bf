//! The forward outbox: events waiting to be sent to a project's upstream server, the ones it
//! refused for good (the dead letters), and per-project counters. An entry is written in the
//! transaction that stores its event, so an acknowledged event is forwarded even if picket is
//! killed a moment later; it leaves the outbox only in the transaction that records the
//! upstream's answer.

use crate::ids::EventId;
use redb::{ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{FORWARD_COUNTS, FORWARD_DEAD, FORWARD_OUTBOX, StoreError, decode, encode};

/// One event waiting to be forwarded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutboxEntry {
    pub project: u64,
    /// The event's arrival sequence number: the order entries are sent in.
    pub seq: u64,
    pub event_id: EventId,
    /// When the event arrived (Unix seconds), for `forward.max_pending_age`.
    pub queued: f64,
}

impl OutboxEntry {
    fn row(&self) -> [u8; 24] {
        let mut row = [0u8; 24];
        row[..16].copy_from_slice(&self.event_id.0);
        row[16..].copy_from_slice(&self.queued.to_le_bytes());
        row
    }

    fn from_row(project: u64, seq: u64, row: &[u8]) -> Result<OutboxEntry, StoreError> {
        let corrupt = || StoreError::Corrupt {
            table: "forward_outbox",
            cause: format!("a row of {} bytes, not 24", row.len()),
        };
        let event_id = row
            .get(..16)
            .and_then(EventId::from_slice)
            .ok_or_else(corrupt)?;
        let queued: [u8; 8] = row
            .get(16..24)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        Ok(OutboxEntry {
            project,
            seq,
            event_id,
            queued: f64::from_le_bytes(queued),
        })
    }
}

/// An entry upstream refused for good, kept until someone retries or deletes it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct DeadLetter {
    pub event_id: EventId,
    pub queued: f64,
    /// When it was refused.
    pub at: f64,
    /// The upstream's HTTP status.
    pub status: u16,
    pub reason: String,
}

/// A forwarding project's counters, kept in the file.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ForwardCounts {
    pub pending: u64,
    pub delivered: u64,
    pub dead_letter: u64,
    /// Entries given up without delivery: older than `forward.max_pending_age`, or whose event
    /// was deleted before it could be sent.
    pub dropped: u64,
}

/// The outbox tables inside one write transaction.
pub struct Outbox<'t> {
    pending: Table<'t, (u64, u64), &'static [u8]>,
    dead: Table<'t, (u64, u64), &'static [u8]>,
    counts: Table<'t, u64, &'static [u8]>,
}

/// How an entry left the outbox.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    Dead { status: u16, reason: String },
    Dropped,
}

impl<'t> Outbox<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<Outbox<'t>, StoreError> {
        Ok(Outbox {
            pending: txn.open_table(FORWARD_OUTBOX)?,
            dead: txn.open_table(FORWARD_DEAD)?,
            counts: txn.open_table(FORWARD_COUNTS)?,
        })
    }

    pub fn counts(&self, project: u64) -> Result<ForwardCounts, StoreError> {
        match self.counts.get(project)? {
            Some(row) => decode("forward_counts", row.value()),
            None => Ok(ForwardCounts::default()),
        }
    }

    fn put_counts(&mut self, project: u64, counts: &ForwardCounts) -> Result<(), StoreError> {
        self.counts.insert(project, encode(counts).as_slice())?;
        Ok(())
    }

    /// Queues entries (of one or more projects).
    pub fn push(&mut self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        let mut added: Vec<(u64, u64)> = Vec::new();
        for entry in entries {
            if self
                .pending
                .insert((entry.project, entry.seq), entry.row().as_slice())?
                .is_none()
            {
                match added.iter_mut().find(|(p, _)| *p == entry.project) {
                    Some((_, n)) => *n += 1,
                    None => added.push((entry.project, 1)),
                }
            }
        }
        for (project, n) in added {
            let mut counts = self.counts(project)?;
            counts.pending += n;
            self.put_counts(project, &counts)?;
        }
        Ok(())
    }

    /// Takes an entry out of the outbox, recording how it left. Returns whether it was there.
    pub fn finish(&mut self, entry: &OutboxEntry, outcome: Outcome) -> Result<bool, StoreError> {
        if self.pending.remove((entry.project, entry.seq))?.is_none() {
            return Ok(false);
        }
        let mut counts = self.counts(entry.project)?;
        counts.pending = counts.pending.saturating_sub(1);
        match outcome {
            Outcome::Delivered => counts.delivered += 1,
            Outcome::Dropped => counts.dropped += 1,
            Outcome::Dead { status, reason } => {
                counts.dead_letter += 1;
                let letter = DeadLetter {
                    event_id: entry.event_id,
                    queued: entry.queued,
                    at: crate::time::now(),
                    status,
                    reason,
                };
                self.dead
                    .insert((entry.project, entry.seq), encode(&letter).as_slice())?;
            }
        }
        self.put_counts(entry.project, &counts)?;
        Ok(true)
    }

    /// Puts a project's dead letters (all projects' with `None`) back into the outbox.
    /// Returns how many.
    pub fn retry_dead(&mut self, project: Option<u64>) -> Result<u64, StoreError> {
        let range = match project {
            Some(p) => (p, 0)..=(p, u64::MAX),
            None => (0, 0)..=(u64::MAX, u64::MAX),
        };
        let mut letters = Vec::new();
        for row in self.dead.range(range)? {
            let (key, value) = row?;
            let (project, seq) = key.value();
            let letter: DeadLetter = decode("forward_dead", value.value())?;
            letters.push((project, seq, letter));
        }
        for (project, seq, letter) in &letters {
            self.dead.remove((*project, *seq))?;
            let mut counts = self.counts(*project)?;
            counts.dead_letter = counts.dead_letter.saturating_sub(1);
            self.put_counts(*project, &counts)?;
            self.push(&[OutboxEntry {
                project: *project,
                seq: *seq,
                event_id: letter.event_id,
                queued: letter.queued,
            }])?;
        }
        Ok(letters.len() as u64)
    }

    /// Removes everything of a project (when it is deleted).
    pub fn forget(&mut self, project: u64) -> Result<(), StoreError> {
        let range = (project, 0)..=(project, u64::MAX);
        self.pending.retain_in(range.clone(), |_, _| false)?;
        self.dead.retain_in(range, |_, _| false)?;
        self.counts.remove(project)?;
        Ok(())
    }
}

/// Up to `limit` of a project's pending entries, oldest first, from a read transaction.
pub fn pending(
    table: &impl ReadableTable<(u64, u64), &'static [u8]>,
    project: u64,
    limit: usize,
) -> Result<Vec<OutboxEntry>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((project, 0)..=(project, u64::MAX))?.take(limit) {
        let (key, value) = row?;
        let (project, seq) = key.value();
        out.push(OutboxEntry::from_row(project, seq, value.value())?);
    }
    Ok(out)
}

/// Every dead letter, with its project.
pub fn dead_letters(
    table: &impl ReadableTable<(u64, u64), &'static [u8]>,
) -> Result<Vec<(u64, DeadLetter)>, StoreError> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (key, value) = row?;
        out.push((key.value().0, decode("forward_dead", value.value())?));
    }
    Ok(out)
}

/// A project's counters from a read transaction.
pub fn counts(
    table: &impl ReadableTable<u64, &'static [u8]>,
    project: u64,
) -> Result<ForwardCounts, StoreError> {
    match table.get(project)? {
        Some(row) => decode("forward_counts", row.value()),
        None => Ok(ForwardCounts::default()),
    }
}

//! What never became a stored record, counted per project so nobody discovers a drop by
//! surprise: items picket accepts but does not keep (transactions, spans, logs, profiles,
//! replays…), attachments it refused, and what the SDKs themselves report having discarded in
//! their `client_report` items (rate limits, full queues, `before_send`). Counters only, under
//! (project, source, category, reason); the strings come from clients, so each project keeps
//! at most [`MAX_KEYS_PER_PROJECT`] of them and counts the rest under reason `other`.

use std::collections::HashMap;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// (project, source, category, reason) → count.
pub(crate) const OUTCOMES: TableDefinition<(u64, &str, &str, &str), u64> =
    TableDefinition::new("outcomes");

/// Distinct (source, category, reason) keys kept per project.
pub const MAX_KEYS_PER_PROJECT: usize = 200;

/// Who dropped it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// picket accepted it and did not keep it.
    Server,
    /// The SDK discarded it before sending (from its client reports).
    Client,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Server => "server",
            Source::Client => "client",
        }
    }

    fn parse(s: &str) -> Source {
        if s == "client" {
            Source::Client
        } else {
            Source::Server
        }
    }
}

/// What was dropped: a data category (`transaction`, `attachment`, `error`, `span`…) and why
/// (`not_stored`, `too_large`, `disabled`, or the SDK's reason such as `ratelimit_backoff`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutcomeKey {
    pub project: u64,
    pub source: Source,
    pub category: String,
    pub reason: String,
}

/// One counter as read back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub source: Source,
    pub category: String,
    pub reason: String,
    pub quantity: u64,
}

impl Outcome {
    /// One line a person reads: "the SDK dropped 120 error: ratelimit_backoff".
    pub fn describe(&self) -> String {
        let who = match self.source {
            Source::Client => "the SDK dropped",
            Source::Server => "picket did not keep",
        };
        format!("{who} {} {}: {}", self.quantity, self.category, self.reason)
    }
}

/// Adds counts, folding keys new to a project that already has its fill into `other`.
pub fn add(txn: &WriteTransaction, counts: &HashMap<OutcomeKey, u64>) -> Result<(), StoreError> {
    if counts.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(OUTCOMES)?;
    let mut known: HashMap<u64, usize> = HashMap::new();
    for (key, n) in counts {
        let source = key.source.as_str();
        let exact = (
            key.project,
            source,
            key.category.as_str(),
            key.reason.as_str(),
        );
        let current = table.get(exact)?.map(|v| v.value());
        let (slot, current) = match current {
            Some(c) => (exact, c),
            None => {
                let keys = match known.get(&key.project) {
                    Some(&k) => k,
                    None => {
                        let range = (key.project, "", "", "")..(key.project + 1, "", "", "");
                        table.range(range)?.count()
                    }
                };
                if keys < MAX_KEYS_PER_PROJECT {
                    known.insert(key.project, keys + 1);
                    (exact, 0)
                } else {
                    known.insert(key.project, keys);
                    let other = (key.project, source, "other", "other");
                    (other, table.get(other)?.map_or(0, |v| v.value()))
                }
            }
        };
        table.insert(slot, current.saturating_add(*n))?;
    }
    Ok(())
}

/// A project's counters, largest first.
pub fn of_project(txn: &redb::ReadTransaction, project: u64) -> Result<Vec<Outcome>, StoreError> {
    let table = txn.open_table(OUTCOMES)?;
    let mut out = Vec::new();
    for row in table.range((project, "", "", "")..(project + 1, "", "", ""))? {
        let (k, v) = row?;
        let (_, source, category, reason) = k.value();
        out.push(Outcome {
            source: Source::parse(source),
            category: category.to_string(),
            reason: reason.to_string(),
            quantity: v.value(),
        });
    }
    out.sort_by_key(|o| std::cmp::Reverse(o.quantity));
    Ok(out)
}

/// Deletes a project's counters.
pub fn forget(txn: &WriteTransaction, project: u64) -> Result<(), StoreError> {
    txn.open_table(OUTCOMES)?
        .retain_in((project, "", "", "")..(project + 1, "", "", ""), |_, _| {
            false
        })?;
    Ok(())
}

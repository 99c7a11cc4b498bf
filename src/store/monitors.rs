//! Cron monitors, one row per (project, slug). The row's type and what a check-in does to it
//! belong to `crate::monitors`; here are the table and its reads and writes.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{StoreError, decode, encode};

/// (project, monitor slug) → the monitor, with its recent check-ins.
pub(crate) const MONITORS: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("monitors");

pub fn get<T: DeserializeOwned>(
    table: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    project: u64,
    slug: &str,
) -> Result<Option<T>, StoreError> {
    table
        .get((project, slug))?
        .map(|v| decode("monitors", v.value()))
        .transpose()
}

pub fn put<T: Serialize>(
    txn: &WriteTransaction,
    project: u64,
    slug: &str,
    monitor: &T,
) -> Result<(), StoreError> {
    txn.open_table(MONITORS)?
        .insert((project, slug), encode(monitor).as_slice())?;
    Ok(())
}

/// A project's monitors by slug, or every project's with `None`: (project, monitor).
pub fn list<T: DeserializeOwned>(
    table: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    project: Option<u64>,
) -> Result<Vec<(u64, T)>, StoreError> {
    let rows = match project {
        Some(p) => table.range((p, "")..(p + 1, ""))?,
        None => table.range::<(u64, &str)>(..)?,
    };
    let mut out = Vec::new();
    for row in rows {
        let (k, v) = row?;
        out.push((k.value().0, decode("monitors", v.value())?));
    }
    Ok(out)
}

/// How many monitors a project has.
pub fn count(
    table: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    project: u64,
) -> Result<usize, StoreError> {
    Ok(table.range((project, "")..(project + 1, ""))?.count())
}

pub fn remove(txn: &WriteTransaction, project: u64, slug: &str) -> Result<bool, StoreError> {
    Ok(txn.open_table(MONITORS)?.remove((project, slug))?.is_some())
}

/// Deletes a project's monitors.
pub fn forget(txn: &WriteTransaction, project: u64) -> Result<(), StoreError> {
    txn.open_table(MONITORS)?
        .retain_in((project, "")..(project + 1, ""), |_, _| false)?;
    Ok(())
}

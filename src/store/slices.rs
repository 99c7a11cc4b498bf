//! What search and filtered counts read without opening events: an issue's events counted
//! by environment and release ("slices", each with its distinct users, exact up to
//! [`EXACT_USERS`] and estimated past that), hourly buckets by the event's own time per slice,
//! and an index of the terms of its events (message words, tag values, user fields) that tag
//! and free-text search look up.
//!
//! A slice is named by one string, `environment \x1f release` (either may be empty); the
//! whole issue's user rows use the empty name. A term is a lowercase word of a message, or
//! `key \x1f value` for a tag or a user field (never lowercased: tag values are exact).

use std::collections::{HashMap, HashSet};

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::issues::Issue;
use super::{StoreError, decode, encode};

/// (project, issue, slice) → SliceStats.
pub(crate) const ISSUE_SLICES: TableDefinition<(u64, u64, &str), &[u8]> =
    TableDefinition::new("issue_slices");
/// (project, issue, slice or "" for the whole issue, user hash): the distinct users counted
/// exactly, until [`EXACT_USERS`] of them.
pub(crate) const ISSUE_USERS: TableDefinition<(u64, u64, &str, u64), ()> =
    TableDefinition::new("issue_users");
/// (project, issue, hour of the event's time, slice) → events.
pub(crate) const SLICE_HOURS: TableDefinition<(u64, u64, u64, &str), u64> =
    TableDefinition::new("slice_hours");
/// (project, term, issue): the issues whose events carried a term.
pub(crate) const ISSUE_TERMS: TableDefinition<(u64, &str, u64), ()> =
    TableDefinition::new("issue_terms");

/// Distinct users counted exactly per issue and per slice; past this the figure is the
/// sketch's estimate, shown as such.
pub const EXACT_USERS: u64 = 1000;
/// Terms indexed per issue; an issue's events past this add none (the issue's own title and
/// culprit are always searched).
pub const MAX_TERMS_PER_ISSUE: u64 = 10_000;
/// The separator inside slice names.
pub use crate::event::derived::SEP;

/// The slice of an environment and a release.
pub fn slice_name(environment: Option<&str>, release: Option<&str>) -> String {
    format!(
        "{}{SEP}{}",
        environment.unwrap_or(""),
        release.unwrap_or("")
    )
}

/// A slice's environment and release ("" where the events named none).
pub fn split_slice(slice: &str) -> (&str, &str) {
    slice.split_once(SEP).unwrap_or((slice, ""))
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct SliceStats {
    pub count: u64,
    /// By the events' own time (clamped to when they arrived).
    pub first_seen: f64,
    pub last_seen: f64,
    /// Distinct users with a row in [`ISSUE_USERS`] (at most [`EXACT_USERS`]).
    pub exact_users: u64,
    /// HyperLogLog registers of every user, for past [`EXACT_USERS`].
    pub users: Vec<u8>,
}

impl SliceStats {
    /// Distinct users, and whether the figure is an estimate.
    pub fn users(&self) -> (u64, bool) {
        if self.exact_users < EXACT_USERS {
            (self.exact_users, false)
        } else {
            (super::sketch::count(&self.users).max(EXACT_USERS), true)
        }
    }
}

/// One stored event, as the slices count it.
pub struct SliceEvent<'a> {
    pub project: u64,
    pub issue: u64,
    pub environment: Option<&'a str>,
    pub release: Option<&'a str>,
    /// The event's own time, clamped to its arrival.
    pub happened: f64,
    pub user: Option<&'a str>,
    pub terms: &'a [String],
}

/// The slice tables of a write transaction.
pub struct SliceRows<'t> {
    slices: Table<'t, (u64, u64, &'static str), &'static [u8]>,
    users: Table<'t, (u64, u64, &'static str, u64), ()>,
    hours: Table<'t, (u64, u64, u64, &'static str), u64>,
    terms: Table<'t, (u64, &'static str, u64), ()>,
    /// A batch's slice stats and hourly counts, summed in memory and written by
    /// [`SliceRows::flush`] (one row write per slice and hour, not per event).
    pending: HashMap<(u64, u64, String), SliceStats>,
    pending_hours: HashMap<(u64, u64, u64, String), u64>,
}

impl<'t> SliceRows<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<SliceRows<'t>, StoreError> {
        Ok(SliceRows {
            slices: txn.open_table(ISSUE_SLICES)?,
            users: txn.open_table(ISSUE_USERS)?,
            hours: txn.open_table(SLICE_HOURS)?,
            terms: txn.open_table(ISSUE_TERMS)?,
            pending: HashMap::new(),
            pending_hours: HashMap::new(),
        })
    }

    /// Writes what [`SliceRows::record`] summed; the writer calls it before committing.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        for ((p, i, name), stats) in self.pending.drain() {
            self.slices
                .insert((p, i, name.as_str()), encode(&stats).as_slice())?;
        }
        for ((p, i, hour, name), n) in self.pending_hours.drain() {
            let current = self
                .hours
                .get((p, i, hour, name.as_str()))?
                .map_or(0, |v| v.value());
            self.hours
                .insert((p, i, hour, name.as_str()), current + n)?;
        }
        Ok(())
    }

    /// Counts an event in its slice, its hour and its issue's exact users, and indexes its
    /// terms (those `known` does not already hold; `known` remembers what was added).
    pub fn record(
        &mut self,
        ev: &SliceEvent<'_>,
        issue: &mut Issue,
        known: &mut HashSet<u64>,
    ) -> Result<(), StoreError> {
        let (p, i) = (ev.project, ev.issue);
        let name = slice_name(ev.environment, ev.release);
        let key = (p, i, name);
        let mut stats = match self.pending.remove(&key) {
            Some(stats) => stats,
            None => self.slice(p, i, &key.2, ev.happened, ev.happened)?,
        };
        let name = &key.2;
        stats.count += 1;
        stats.first_seen = stats.first_seen.min(ev.happened);
        stats.last_seen = stats.last_seen.max(ev.happened);
        if let Some(user) = ev.user {
            let hash = super::sketch::hash(user.as_bytes());
            super::sketch::add(&mut stats.users, super::issues::USER_BITS, hash);
            if stats.exact_users < EXACT_USERS && self.add_user(p, i, name, hash)? {
                stats.exact_users += 1;
            }
            if let Some(exact) = issue.exact_users.as_mut()
                && *exact < EXACT_USERS
                && self.add_user(p, i, "", hash)?
            {
                *exact += 1;
            }
        }
        let hour = (ev.happened.max(0.0) / 3600.0) as u64;
        *self
            .pending_hours
            .entry((p, i, hour, name.clone()))
            .or_default() += 1;
        self.pending.insert(key, stats);
        let issue_key = (p.rotate_left(32) ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for term in ev.terms {
            if issue.terms >= MAX_TERMS_PER_ISSUE {
                break;
            }
            let key = super::sketch::hash(term.as_bytes()) ^ issue_key;
            if known.contains(&key) {
                continue;
            }
            // A read for a term already indexed (after a restart, or when `known` was full).
            if self.terms.get((p, term.as_str(), i))?.is_none() {
                self.terms.insert((p, term.as_str(), i), ())?;
                issue.terms += 1;
            }
            known.insert(key);
        }
        Ok(())
    }

    /// A slice's stats, or new ones first and last seen at the times given.
    fn slice(
        &self,
        p: u64,
        i: u64,
        name: &str,
        first_seen: f64,
        last_seen: f64,
    ) -> Result<SliceStats, StoreError> {
        Ok(match self.slices.get((p, i, name))? {
            Some(row) => decode("issue_slices", row.value())?,
            None => SliceStats {
                first_seen,
                last_seen,
                ..Default::default()
            },
        })
    }

    /// Adds a user row unless it is there (a read, not a page write, for a known user).
    fn add_user(&mut self, p: u64, i: u64, slice: &str, hash: u64) -> Result<bool, StoreError> {
        if self.users.get((p, i, slice, hash))?.is_some() {
            return Ok(false);
        }
        self.users.insert((p, i, slice, hash), ())?;
        Ok(true)
    }

    /// Forgets everything of an issue.
    pub fn delete_issue(&mut self, p: u64, i: u64, terms: &[String]) -> Result<(), StoreError> {
        self.slices
            .retain_in((p, i, "")..(p, i + 1, ""), |_, _| false)?;
        self.users
            .retain_in((p, i, "", 0)..(p, i + 1, "", 0), |_, _| false)?;
        self.hours
            .retain_in((p, i, 0, "")..(p, i + 1, 0, ""), |_, _| false)?;
        for term in terms {
            self.terms.remove((p, term.as_str(), i))?;
        }
        Ok(())
    }

    /// Moves everything of issue `from` to `into`; `target` is `into`'s row, whose term and
    /// exact user counts follow.
    pub fn merge(
        &mut self,
        p: u64,
        into: u64,
        from: u64,
        target: &mut Issue,
        source: &Issue,
    ) -> Result<(), StoreError> {
        let slices: Vec<(String, SliceStats)> = read_slices(&self.slices, p, from)?;
        for (name, theirs) in slices {
            let mut mine = self.slice(p, into, &name, theirs.first_seen, theirs.last_seen)?;
            mine.count += theirs.count;
            mine.first_seen = mine.first_seen.min(theirs.first_seen);
            mine.last_seen = mine.last_seen.max(theirs.last_seen);
            super::sketch::merge(&mut mine.users, &theirs.users);
            self.slices
                .insert((p, into, name.as_str()), encode(&mine).as_slice())?;
        }
        let users: Vec<(String, u64)> = self
            .users
            .range((p, from, "", 0)..(p, from + 1, "", 0))?
            .map(|row| row.map(|(k, _)| (k.value().2.to_string(), k.value().3)))
            .collect::<Result<_, _>>()?;
        // Exact counts are recounted from the rows that end up under `into`.
        for (slice, hash) in &users {
            self.users.insert((p, into, slice.as_str(), *hash), ())?;
        }
        let hours: Vec<(u64, String, u64)> = self
            .hours
            .range((p, from, 0, "")..(p, from + 1, 0, ""))?
            .map(|row| row.map(|(k, v)| (k.value().2, k.value().3.to_string(), v.value())))
            .collect::<Result<_, _>>()?;
        for (hour, slice, n) in hours {
            let current = self
                .hours
                .get((p, into, hour, slice.as_str()))?
                .map_or(0, |v| v.value());
            self.hours
                .insert((p, into, hour, slice.as_str()), current + n)?;
        }
        let mut recount: Vec<(String, u64)> = Vec::new();
        for row in self.users.range((p, into, "", 0)..(p, into + 1, "", 0))? {
            let (k, _) = row?;
            match recount.last_mut() {
                Some((slice, n)) if slice == k.value().2 => *n += 1,
                _ => recount.push((k.value().2.to_string(), 1)),
            }
        }
        for (slice, n) in recount {
            if slice.is_empty() {
                if target.exact_users.is_some() && source.exact_users.is_some() {
                    target.exact_users = Some(n.min(EXACT_USERS));
                } else {
                    target.exact_users = None;
                }
            } else {
                let found = match self.slices.get((p, into, slice.as_str()))? {
                    Some(row) => Some(decode::<SliceStats>("issue_slices", row.value())?),
                    None => None,
                };
                let Some(mut stats) = found else { continue };
                stats.exact_users = n.min(EXACT_USERS);
                self.slices
                    .insert((p, into, slice.as_str()), encode(&stats).as_slice())?;
            }
        }
        let moved = self.terms_of(p, from)?;
        self.delete_issue(p, from, &moved)?;
        for term in moved {
            if self.terms.insert((p, term.as_str(), into), ())?.is_none() {
                target.terms += 1;
            }
        }
        Ok(())
    }

    /// Forgets a project's whole index (the project is being deleted).
    pub fn forget_terms(&mut self, p: u64) -> Result<(), StoreError> {
        self.terms
            .retain_in((p, "", 0)..(p + 1, "", 0), |_, _| false)?;
        Ok(())
    }

    /// An issue's terms (for deleting or moving them), found by walking the project's index
    /// (it is keyed by term, not by issue).
    pub fn terms_of(&self, p: u64, i: u64) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for row in self.terms.range((p, "", 0)..(p + 1, "", 0))? {
            let (k, _) = row?;
            if k.value().2 == i {
                out.push(k.value().1.to_string());
            }
        }
        Ok(out)
    }
}

/// An issue's slices with their stats.
pub fn read_slices(
    table: &impl ReadableTable<(u64, u64, &'static str), &'static [u8]>,
    p: u64,
    i: u64,
) -> Result<Vec<(String, SliceStats)>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((p, i, "")..(p, i + 1, ""))? {
        let (k, v) = row?;
        out.push((k.value().2.to_string(), decode("issue_slices", v.value())?));
    }
    Ok(out)
}

/// The distinct users of some of an issue's slices together: exact when each slice is,
/// otherwise their merged estimate (and `true`).
pub fn users_of(
    users: &impl ReadableTable<(u64, u64, &'static str, u64), ()>,
    p: u64,
    i: u64,
    slices: &[&(String, SliceStats)],
) -> Result<(u64, bool), StoreError> {
    if let [(_, only)] = slices {
        return Ok(only.users());
    }
    if slices.iter().any(|(_, s)| s.users().1) {
        let mut merged = Vec::new();
        for (_, s) in slices {
            super::sketch::merge(&mut merged, &s.users);
        }
        return Ok((super::sketch::count(&merged).max(EXACT_USERS), true));
    }
    let mut seen = HashSet::new();
    for (name, _) in slices {
        for row in users.range((p, i, name.as_str(), 0)..=(p, i, name.as_str(), u64::MAX))? {
            seen.insert(row?.0.value().3);
        }
    }
    Ok((seen.len() as u64, false))
}

/// Events per hour of an issue's slices that `keep` accepts, from hour `from` to `to`.
pub fn hourly(
    hours: &impl ReadableTable<(u64, u64, u64, &'static str), u64>,
    p: u64,
    i: u64,
    from: u64,
    to: u64,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for row in hours.range((p, i, from, "")..(p, i, to + 1, ""))? {
        let (k, v) = row?;
        let (_, _, hour, slice) = k.value();
        if !keep(slice) {
            continue;
        }
        match out.last_mut() {
            Some((h, n)) if *h == hour => *n += v.value(),
            _ => out.push((hour, v.value())),
        }
    }
    Ok(out)
}

/// The issues whose events carried a term for which `keep` holds, among the terms starting
/// with `prefix` (all of them are read).
pub fn issues_with(
    terms: &impl ReadableTable<(u64, &'static str, u64), ()>,
    p: u64,
    prefix: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<HashSet<u64>, StoreError> {
    let mut out = HashSet::new();
    for row in terms.range((p, prefix, 0)..(p + 1, "", 0))? {
        let (k, _) = row?;
        let (_, term, issue) = k.value();
        if !term.starts_with(prefix) {
            break;
        }
        if keep(term) {
            out.insert(issue);
        }
    }
    Ok(out)
}

/// The issues whose events carried exactly `term`; `None` once more than `cap` carry it (the
/// caller then asks per issue with [`has_term`]).
pub fn issues_with_term(
    terms: &impl ReadableTable<(u64, &'static str, u64), ()>,
    p: u64,
    term: &str,
    cap: usize,
) -> Result<Option<HashSet<u64>>, StoreError> {
    let mut out = HashSet::new();
    for row in terms.range((p, term, 0)..=(p, term, u64::MAX))? {
        if out.len() >= cap {
            return Ok(None);
        }
        out.insert(row?.0.value().2);
    }
    Ok(Some(out))
}

/// Whether an issue's events carried a term.
pub fn has_term(
    terms: &impl ReadableTable<(u64, &'static str, u64), ()>,
    p: u64,
    term: &str,
    issue: u64,
) -> Result<bool, StoreError> {
    Ok(terms.get((p, term, issue))?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_is_read_alone_and_past_its_cap_asked_per_issue() {
        let dir = tempfile::tempdir().unwrap();
        let db = super::super::open(dir.path()).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut terms = txn.open_table(ISSUE_TERMS).unwrap();
            for issue in 1..=3 {
                terms.insert((7, "user.id\u{1f}42", issue), ()).unwrap();
            }
            for issue in 4..=9 {
                terms.insert((7, "user.id\u{1f}420", issue), ()).unwrap();
            }
            terms.insert((8, "user.id\u{1f}42", 1), ()).unwrap();
        }
        txn.commit().unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let terms = txn.open_table(ISSUE_TERMS).unwrap();
        let found = issues_with_term(&terms, 7, "user.id\u{1f}42", 10).unwrap();
        assert_eq!(found, Some(HashSet::from([1, 2, 3])));
        assert_eq!(
            issues_with_term(&terms, 7, "user.id\u{1f}42", 2).unwrap(),
            None
        );
        assert!(has_term(&terms, 7, "user.id\u{1f}420", 9).unwrap());
        assert!(!has_term(&terms, 7, "user.id\u{1f}42", 9).unwrap());
        let prefixed = issues_with(&terms, 7, "user.id\u{1f}42", |_| true).unwrap();
        assert_eq!(prefixed.len(), 9);
    }

    #[test]
    fn slice_names_split_back() {
        let name = slice_name(Some("production"), Some("shop@1.1"));
        assert_eq!(split_slice(&name), ("production", "shop@1.1"));
        assert_eq!(split_slice(&slice_name(None, Some("r"))), ("", "r"));
    }

    #[test]
    fn users_past_the_exact_bound_are_an_estimate() {
        let mut s = SliceStats {
            exact_users: 40,
            ..Default::default()
        };
        assert_eq!(s.users(), (40, false));
        s.exact_users = EXACT_USERS;
        for n in 0..1500u32 {
            super::super::sketch::add(
                &mut s.users,
                super::super::issues::USER_BITS,
                super::super::sketch::hash(&n.to_le_bytes()),
            );
        }
        let (n, approx) = s.users();
        assert!(approx && n >= EXACT_USERS);
    }
}

//! Release health: what the SDKs' sessions say about each release, kept as hourly counters
//! per (project, release, environment), never a row per session, so millions of sessions cost
//! a few rows. Sessions, crashed and abnormal ones are plain counts; errored sessions and
//! users (distinct `did`s, all and crashed) are HyperLogLog sketches, exact for small numbers
//! and within a few percent for large ones, which merge across hours and environments.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{StoreError, decode, encode};

/// (project, release, environment, hour since epoch) → [`HealthBucket`].
pub(crate) const SESSION_HOURS: TableDefinition<(u64, &str, &str, u64), &[u8]> =
    TableDefinition::new("session_hours");

/// Registers of a sketch: 2^10, about 3 % standard error, 1 KiB once used.
const SKETCH_BITS: u32 = 10;

/// A sketch of distinct session or user ids ([`super::sketch`]). Empty until first used.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(transparent)]
pub struct Sketch(#[serde(with = "super::bytes")] Vec<u8>);

impl Sketch {
    pub fn add(&mut self, hash: u64) {
        super::sketch::add(&mut self.0, SKETCH_BITS, hash);
    }

    pub fn merge(&mut self, other: &Sketch) {
        super::sketch::merge(&mut self.0, &other.0);
    }

    /// The estimated number of distinct ids added.
    pub fn count(&self) -> u64 {
        super::sketch::count(&self.0)
    }
}

/// What one hour of sessions of a release in an environment said.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct HealthBucket {
    /// Sessions started.
    pub sessions: u64,
    /// Crashed and abnormal sessions reported as counts (aggregates, or updates without an id).
    pub crashed: u64,
    pub abnormal: u64,
    /// Crashed and abnormal sessions reported one by one, by session id (an SDK may send a
    /// crashed session's final state more than once).
    pub crashed_sessions: Sketch,
    pub abnormal_sessions: Sketch,
    /// Errored sessions reported as counts (the aggregates of request-mode SDKs).
    pub errored: u64,
    /// Errored sessions reported one by one, by session id.
    pub errored_sessions: Sketch,
    /// Distinct users (`did`) with a session, and with a crashed one.
    pub users: Sketch,
    pub crashed_users: Sketch,
}

impl HealthBucket {
    pub fn merge(&mut self, other: &HealthBucket) {
        self.sessions += other.sessions;
        self.crashed += other.crashed;
        self.abnormal += other.abnormal;
        self.errored += other.errored;
        self.crashed_sessions.merge(&other.crashed_sessions);
        self.abnormal_sessions.merge(&other.abnormal_sessions);
        self.errored_sessions.merge(&other.errored_sessions);
        self.users.merge(&other.users);
        self.crashed_users.merge(&other.crashed_users);
    }
}

/// Where one batch of session counts goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BucketKey {
    pub release: String,
    pub environment: String,
    pub hour: u64,
}

/// A 64-bit hash of a session or user id, the same in every process.
pub fn id_hash(id: &str) -> u64 {
    super::sketch::hash(id.as_bytes())
}

/// Adds a project's session counts.
pub fn record(
    txn: &WriteTransaction,
    project: u64,
    counts: &[(BucketKey, HealthBucket)],
) -> Result<(), StoreError> {
    let mut table = txn.open_table(SESSION_HOURS)?;
    for (key, add) in counts {
        let row = (
            project,
            key.release.as_str(),
            key.environment.as_str(),
            key.hour,
        );
        let mut bucket: HealthBucket = match table.get(row)? {
            Some(v) => decode("session_hours", v.value())?,
            None => HealthBucket::default(),
        };
        bucket.merge(add);
        table.insert(row, encode(&bucket).as_slice())?;
    }
    Ok(())
}

/// Release health as the front ends show it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Health {
    pub sessions: u64,
    pub crashed_sessions: u64,
    pub abnormal_sessions: u64,
    pub errored_sessions: u64,
    pub users: u64,
    pub crashed_users: u64,
    /// Percent of sessions that did not crash; none without sessions.
    pub crash_free_sessions: Option<f64>,
    /// Percent of users none of whose sessions crashed; none without users.
    pub crash_free_users: Option<f64>,
    /// Percent of the project's sessions of the last 24 hours that ran this release.
    pub adoption: Option<f64>,
}

fn percent_free(bad: u64, all: u64) -> Option<f64> {
    (all > 0).then(|| {
        let free = 100.0 * (1.0 - bad.min(all) as f64 / all as f64);
        (free * 1000.0).round() / 1000.0
    })
}

impl Health {
    fn of(total: &HealthBucket, recent: u64, all_recent: u64) -> Health {
        let users = total.users.count();
        let crashed_users = total.crashed_users.count().min(users);
        let errored = (total.errored + total.errored_sessions.count()).min(total.sessions);
        let crashed = (total.crashed + total.crashed_sessions.count()).min(total.sessions);
        let abnormal = (total.abnormal + total.abnormal_sessions.count()).min(total.sessions);
        Health {
            sessions: total.sessions,
            crashed_sessions: crashed,
            abnormal_sessions: abnormal,
            errored_sessions: errored,
            users,
            crashed_users,
            crash_free_sessions: percent_free(crashed, total.sessions),
            crash_free_users: percent_free(crashed_users, users),
            adoption: (all_recent > 0)
                .then(|| (1000.0 * 100.0 * recent as f64 / all_recent as f64).round() / 1000.0),
        }
    }
}

/// The health of a release over the projects given, as of `now` (Unix seconds).
pub fn of_release(
    txn: &redb::ReadTransaction,
    projects: &[u64],
    release: &str,
    now: f64,
) -> Result<Health, StoreError> {
    let table = txn.open_table(SESSION_HOURS)?;
    let since = ((now / 3600.0) as u64).saturating_sub(23);
    let mut total = HealthBucket::default();
    let (mut recent, mut all_recent) = (0, 0);
    for &project in projects {
        for row in table.range((project, release, "", 0)..)? {
            let (k, v) = row?;
            let (p, r, _, hour) = k.value();
            if p != project || r != release {
                break;
            }
            let bucket: HealthBucket = decode("session_hours", v.value())?;
            if hour >= since {
                recent += bucket.sessions;
            }
            total.merge(&bucket);
        }
        if total.sessions == 0 {
            continue;
        }
        for row in table.range((project, "", "", 0)..(project + 1, "", "", 0))? {
            let (k, v) = row?;
            if k.value().3 >= since {
                all_recent += decode::<HealthBucket>("session_hours", v.value())?.sessions;
            }
        }
    }
    Ok(Health::of(&total, recent, all_recent))
}

/// Deletes a project's session counts.
pub fn forget(txn: &WriteTransaction, project: u64) -> Result<(), StoreError> {
    txn.open_table(SESSION_HOURS)?
        .retain_in((project, "", "", 0)..(project + 1, "", "", 0), |_, _| false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sketches_count_small_sets_exactly_and_large_ones_closely() {
        let mut s = Sketch::default();
        assert_eq!(s.count(), 0);
        for i in 0..7 {
            s.add(id_hash(&format!("user-{i}")));
            s.add(id_hash(&format!("user-{i}")));
        }
        assert_eq!(s.count(), 7);
        let mut big = Sketch::default();
        for i in 0..100_000 {
            big.add(id_hash(&format!("device-{i}")));
        }
        let n = big.count() as f64;
        assert!((n - 100_000.0).abs() / 100_000.0 < 0.1, "{n}");
        let mut merged = s.clone();
        merged.merge(&big);
        assert!(merged.count() >= big.count());
        let back: Sketch = crate::store::decode("t", &crate::store::encode(&s)).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn crash_free_rates() {
        let mut b = HealthBucket {
            sessions: 10,
            crashed: 2,
            ..Default::default()
        };
        for u in ["a", "b", "c", "d"] {
            b.users.add(id_hash(u));
        }
        b.crashed_users.add(id_hash("a"));
        let h = Health::of(&b, 10, 40);
        assert_eq!(h.crash_free_sessions, Some(80.0));
        assert_eq!(h.crash_free_users, Some(75.0));
        assert_eq!(h.adoption, Some(25.0));
        assert_eq!(
            Health::of(&HealthBucket::default(), 0, 0).crash_free_sessions,
            None
        );
    }
}

//! Releases and their deploys. A release belongs to the organization and names its projects;
//! it is made through the API (`sentry-cli releases new`) or the first time an event carries its
//! version. Per project and version the writer keeps what the events said: first and last
//! event, how many, and how many issues they opened.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{RELEASE_STATS, RELEASES, StoreError, decode, encode};

/// Deploys kept per release (the latest).
pub const MAX_DEPLOYS: usize = 100;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Release {
    pub version: String,
    /// The projects it belongs to, by id.
    pub projects: Vec<u64>,
    pub date_created: f64,
    pub date_started: Option<f64>,
    /// When it was finalized (released); none while it is still being made.
    pub date_released: Option<f64>,
    pub url: Option<String>,
    /// The commit or tag it was built from.
    pub reference: Option<String>,
    pub deploys: Vec<Deploy>,
    /// The last deploy id handed out.
    pub last_deploy: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Deploy {
    pub id: u64,
    pub environment: String,
    pub name: Option<String>,
    pub url: Option<String>,
    pub date_started: Option<f64>,
    pub date_finished: f64,
}

/// What one project's events said about a release.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq)]
#[serde(default)]
pub struct ReleaseStats {
    pub first_event: f64,
    pub last_event: f64,
    pub events: u64,
    pub new_issues: u64,
}

impl ReleaseStats {
    /// Adds one event received at `at`, which opened an issue or not.
    pub fn count(&mut self, at: f64, opened_issue: bool) {
        self.first_event = if self.events == 0 {
            at
        } else {
            self.first_event.min(at)
        };
        self.last_event = self.last_event.max(at);
        self.events += 1;
        self.new_issues += u64::from(opened_issue);
    }

    /// Adds what other events said (another batch, another project).
    pub fn merge(&mut self, other: &ReleaseStats) {
        if other.events == 0 {
            return;
        }
        self.first_event = if self.events == 0 {
            other.first_event
        } else {
            self.first_event.min(other.first_event)
        };
        self.last_event = self.last_event.max(other.last_event);
        self.events += other.events;
        self.new_issues += other.new_issues;
    }
}

pub fn get(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    version: &str,
) -> Result<Option<Release>, StoreError> {
    match table.get(version)? {
        Some(row) => Ok(Some(decode("releases", row.value())?)),
        None => Ok(None),
    }
}

/// Every release, newest first.
pub fn list(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<Release>, StoreError> {
    let mut out = Vec::new();
    for row in table.iter()? {
        out.push(decode::<Release>("releases", row?.1.value())?);
    }
    out.sort_by(|a, b| {
        b.date_created
            .total_cmp(&a.date_created)
            .then_with(|| b.version.cmp(&a.version))
    });
    Ok(out)
}

pub fn put(txn: &WriteTransaction, release: &Release) -> Result<(), StoreError> {
    txn.open_table(RELEASES)?
        .insert(release.version.as_str(), encode(release).as_slice())?;
    Ok(())
}

/// Deletes a release and what events said about it.
pub fn delete(txn: &WriteTransaction, release: &Release) -> Result<(), StoreError> {
    txn.open_table(RELEASES)?.remove(release.version.as_str())?;
    let mut stats = txn.open_table(RELEASE_STATS)?;
    for project in &release.projects {
        stats.remove((*project, release.version.as_str()))?;
    }
    Ok(())
}

/// What a project's events said about a release.
pub fn stats(
    table: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    project: u64,
    version: &str,
) -> Result<ReleaseStats, StoreError> {
    match table.get((project, version))? {
        Some(row) => decode("release_stats", row.value()),
        None => Ok(ReleaseStats::default()),
    }
}

/// When a release first appeared in a project's events, if it has.
pub fn first_appearance(
    table: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    project: u64,
    version: &str,
) -> Result<Option<f64>, StoreError> {
    let stats = stats(table, project, version)?;
    Ok((stats.events > 0).then_some(stats.first_event))
}

/// The release whose events appeared last in a project (by each release's first event), with
/// that time.
pub fn newest(
    table: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    project: u64,
) -> Result<Option<(String, f64)>, StoreError> {
    let mut newest: Option<(String, f64)> = None;
    for row in table.range((project, "")..(project + 1, ""))? {
        let (k, v) = row?;
        let stats: ReleaseStats = decode("release_stats", v.value())?;
        if stats.events > 0 && newest.as_ref().is_none_or(|(_, t)| stats.first_event > *t) {
            newest = Some((k.value().1.to_string(), stats.first_event));
        }
    }
    Ok(newest)
}

/// Adds what a batch of a project's events said about a release, making the release (or
/// adding the project to it) when this is its first sight.
pub fn record_seen(
    txn: &WriteTransaction,
    project: u64,
    version: &str,
    seen: &ReleaseStats,
) -> Result<(), StoreError> {
    let mut stats_table = txn.open_table(RELEASE_STATS)?;
    let mut stats = stats(&stats_table, project, version)?;
    let first_sight = stats.events == 0;
    stats.merge(seen);
    stats_table.insert((project, version), encode(&stats).as_slice())?;
    drop(stats_table);
    if first_sight {
        belongs(txn, project, version, seen.first_event)?;
    }
    Ok(())
}

/// Makes the release when this is its first sight (at `at`), or adds the project to it.
pub fn belongs(
    txn: &WriteTransaction,
    project: u64,
    version: &str,
    at: f64,
) -> Result<(), StoreError> {
    let mut release = get(&txn.open_table(RELEASES)?, version)?.unwrap_or_else(|| Release {
        version: version.to_string(),
        date_created: at,
        ..Default::default()
    });
    if !release.projects.contains(&project) {
        release.projects.push(project);
        put(txn, &release)?;
    }
    Ok(())
}

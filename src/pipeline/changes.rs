//! What one batch changes besides the event rows: the projects and issues it touched (read
//! once, changed in memory, written once), its hourly, tag and release counts summed per key,
//! and the forwards and alerts it queues. The writer fills one [`BatchChanges`] per transaction, lets
//! eviction adjust it, and writes it just before the commit.

use std::collections::HashMap;

use redb::WriteTransaction;

use super::{Arrival, SessionArrival};
use crate::store::StoreError;
use crate::store::activity::{self, Change, Who};
use crate::store::alerts::{Alert, AlertOutbox};
use crate::store::health::{self, BucketKey, HealthBucket};
use crate::store::issues::Issue;
use crate::store::outbox::{Outbox, OutboxEntry};
use crate::store::outcomes::{self, OutcomeKey};
use crate::store::projects::Project;
use crate::store::releases::{self, ReleaseStats};
use crate::store::tables::Tables;

#[derive(Default)]
pub(super) struct BatchChanges<'a> {
    /// Projects by id.
    pub projects: HashMap<u64, Project>,
    /// Issues by project and grouping hash.
    pub issues: HashMap<(u64, [u8; 16]), Issue>,
    /// Events per (project, issue, hour).
    hours: HashMap<(u64, u64, u64), u64>,
    /// Events per (project, issue, tag key, tag value).
    tags: HashMap<(u64, u64, &'a str, &'a str), u64>,
    /// What the events said about each (project, release).
    releases: HashMap<(u64, &'a str), ReleaseStats>,
    /// Status changes events made (regressed, came back), for the issues' activity.
    pub activity: Vec<(u64, u64, f64, Change)>,
    pub forwards: Vec<OutboxEntry>,
    pub alerts: Vec<Alert>,
    /// What was dropped, by project, source, category and reason.
    pub outcomes: HashMap<OutcomeKey, u64>,
    /// Release-health counts by project and (release, environment, hour).
    health: HashMap<u64, HashMap<BucketKey, HealthBucket>>,
}

impl<'a> BatchChanges<'a> {
    /// Counts a stored event of `issue` in its hour, under each of its tags and in its
    /// release (with whether it `opened` the issue).
    pub fn count(&mut self, issue: u64, arrival: &'a Arrival, opened: bool) {
        let hour = (arrival.facts.happened.max(0.0) / 3600.0) as u64;
        *self
            .hours
            .entry((arrival.project, issue, hour))
            .or_default() += 1;
        for (k, v) in &arrival.facts.tags {
            *self.tags.entry((arrival.project, issue, k, v)).or_default() += 1;
        }
        if let Some(release) = &arrival.facts.release {
            self.releases
                .entry((arrival.project, release))
                .or_default()
                .count(arrival.facts.received, opened);
        }
    }

    /// Adds one envelope's session counts.
    pub fn count_sessions(&mut self, sessions: &SessionArrival) {
        let project = self.health.entry(sessions.project).or_default();
        for (key, counts) in &sessions.counts {
            project.entry(key.clone()).or_default().merge(counts);
        }
    }

    /// Writes every change into the batch's transaction. Returns the issues as written, by
    /// grouping hash, for the writer's cache.
    pub fn write(
        self,
        mut rows: Tables<'_>,
        txn: &WriteTransaction,
    ) -> Result<Vec<([u8; 16], Issue)>, StoreError> {
        rows.slices.flush()?;
        for project in self.projects.values() {
            rows.put_project(project)?;
        }
        for issue in self.issues.values() {
            rows.put_issue(issue)?;
        }
        let mut project_hours: HashMap<(u64, u64), u64> = HashMap::new();
        for ((project, issue, hour), n) in self.hours {
            rows.add_hourly(project, issue, hour, n)?;
            *project_hours.entry((project, hour)).or_default() += n;
        }
        for ((project, hour), n) in project_hours {
            rows.add_project_hourly(txn, project, hour, n)?;
        }
        for ((project, issue, k, v), n) in self.tags {
            rows.add_tag(project, issue, k, v, n)?;
        }
        drop(rows);
        for ((project, version), seen) in &self.releases {
            releases::record_seen(txn, *project, version, seen)?;
        }
        outcomes::add(txn, &self.outcomes)?;
        for (project, counts) in self.health {
            let counts: Vec<(BucketKey, HealthBucket)> = counts.into_iter().collect();
            health::record(txn, project, &counts)?;
            let mut named: Vec<(&str, u64)> = counts
                .iter()
                .map(|(k, _)| (k.release.as_str(), k.hour * 3600))
                .collect();
            named.sort_unstable();
            named.dedup_by_key(|(release, _)| *release);
            for (release, at) in named {
                releases::belongs(txn, project, release, at as f64)?;
            }
        }
        for (project, issue, at, change) in self.activity {
            activity::append(txn, project, issue, at, Who::Picket, change)?;
        }
        if !self.forwards.is_empty() {
            Outbox::open(txn)?.push(&self.forwards)?;
        }
        if !self.alerts.is_empty() {
            let mut outbox = AlertOutbox::open(txn)?;
            for alert in &self.alerts {
                outbox.push(alert)?;
            }
        }
        Ok(self
            .issues
            .into_iter()
            .map(|((_, hash), issue)| (hash, issue))
            .collect())
    }
}

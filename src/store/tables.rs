//! The writer's view of one write transaction: every table it touches, opened once per batch
//! rather than once per event, with the few operations that storing events needs.

use redb::{ReadableTable, Table, WriteTransaction};

use crate::ids::EventId;

use super::attachments::{AttachmentRows, EncodedAttachment};
use super::events::{self, EncodedEvent};
use super::issues::Issue;
use super::projects::Project;
use super::slices::SliceRows;
use super::{
    ARRIVALS, EVENT_SEQ, EVENTS, ISSUE_EVENTS, ISSUE_HASHES, ISSUE_HOURS, ISSUE_TAG_KEYS,
    ISSUE_TAGS, ISSUES, META, PROJECTS, StoreError, decode, encode,
};

/// Tag keys kept per issue; further keys are counted under [`OTHER_TAG`].
pub const MAX_TAG_KEYS: u64 = 100;
/// Values kept per tag key of an issue (the first seen); further values are counted under
/// [`OTHER_TAG`], so an issue's tags stay bounded however many distinct values events carry.
pub const MAX_TAG_VALUES: u64 = 100;
/// The key and value that stand for everything past the caps.
pub const OTHER_TAG: &str = "(other)";

pub struct Tables<'t> {
    arrivals: Table<'t, u64, &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
    projects: Table<'t, u64, &'static [u8]>,
    issues: Table<'t, (u64, u64), &'static [u8]>,
    hashes: Table<'t, (u64, &'static [u8]), u64>,
    events: Table<'t, (u64, &'static [u8]), &'static [u8]>,
    issue_events: Table<'t, (u64, u64, u64), &'static [u8]>,
    hours: Table<'t, (u64, u64, u64), u64>,
    tags: Table<'t, (u64, u64, &'static str, &'static str), u64>,
    tag_keys: Table<'t, (u64, u64, &'static str), u64>,
    attachments: AttachmentRows<'t>,
    pub slices: SliceRows<'t>,
}

impl<'t> Tables<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, StoreError> {
        Ok(Tables {
            arrivals: txn.open_table(ARRIVALS)?,
            meta: txn.open_table(META)?,
            projects: txn.open_table(PROJECTS)?,
            issues: txn.open_table(ISSUES)?,
            hashes: txn.open_table(ISSUE_HASHES)?,
            events: txn.open_table(EVENTS)?,
            issue_events: txn.open_table(ISSUE_EVENTS)?,
            hours: txn.open_table(ISSUE_HOURS)?,
            tags: txn.open_table(ISSUE_TAGS)?,
            tag_keys: txn.open_table(ISSUE_TAG_KEYS)?,
            attachments: AttachmentRows::open(txn)?,
            slices: SliceRows::open(txn)?,
        })
    }

    /// The last arrival sequence number handed out.
    pub fn seq(&self) -> Result<u64, StoreError> {
        Ok(self.meta.get(EVENT_SEQ)?.map(|v| v.value()).unwrap_or(0))
    }

    pub fn set_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.meta.insert(EVENT_SEQ, seq)?;
        Ok(())
    }

    /// Events per byte of file last measured by the disk budget, kept across restarts.
    pub fn disk_density(&self) -> Result<Option<f64>, StoreError> {
        Ok(self
            .meta
            .get("disk_density")?
            .map(|v| f64::from_bits(v.value())))
    }

    /// Bytes the source-map uploads hold (they share `retention.max_disk` with events).
    pub fn artifact_bytes(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(super::ARTIFACT_BYTES)?
            .map_or(0, |v| v.value()))
    }

    pub fn set_disk_density(&mut self, density: f64) -> Result<(), StoreError> {
        self.meta.insert("disk_density", density.to_bits())?;
        Ok(())
    }

    pub fn event_exists(&self, project: u64, id: &EventId) -> Result<bool, StoreError> {
        Ok(self.events.get((project, id.0.as_slice()))?.is_some())
    }

    /// The issue a stored event belongs to.
    pub fn event_issue(&self, project: u64, id: &EventId) -> Result<Option<u64>, StoreError> {
        Ok(self
            .events
            .get((project, id.0.as_slice()))?
            .and_then(|row| events::issue_of(row.value())))
    }

    pub fn insert_event(
        &mut self,
        project: u64,
        issue: u64,
        seq: u64,
        id: &EventId,
        encoded: &EncodedEvent,
    ) -> Result<(), StoreError> {
        self.events.insert(
            (project, id.0.as_slice()),
            events::row(issue, seq, encoded).as_slice(),
        )?;
        self.issue_events
            .insert((project, issue, seq), id.0.as_slice())?;
        let received = encoded.received.max(0.0) as u64;
        self.arrivals.insert(
            seq,
            ArrivalRecord {
                project,
                issue,
                received,
                id: *id,
            }
            .encode()
            .as_slice(),
        )?;
        Ok(())
    }

    /// Removes a stored event from every table that indexes it.
    pub fn delete_event(
        &mut self,
        project: u64,
        issue: u64,
        seq: u64,
        id: &EventId,
    ) -> Result<(), StoreError> {
        self.events.remove((project, id.0.as_slice()))?;
        self.issue_events.remove((project, issue, seq))?;
        self.arrivals.remove(seq)?;
        let freed = self.attachments.delete(project, id)?;
        super::attachments::count_bytes(&mut self.meta, 0, freed)
    }

    /// Stores attachments of a stored event (or feedback) after the ones it has.
    pub fn insert_attachments(
        &mut self,
        project: u64,
        id: &EventId,
        attachments: &[EncodedAttachment],
    ) -> Result<(), StoreError> {
        let added = self.attachments.insert(project, id, attachments)?;
        super::attachments::count_bytes(&mut self.meta, added, 0)
    }

    /// Bytes attachments hold (they share `retention.max_disk` with events).
    pub fn attachment_bytes(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta
            .get(super::attachments::ATTACHMENT_BYTES)?
            .map_or(0, |v| v.value()))
    }

    /// Deletes one event and lowers its issue's and project's `stored`. Returns whether it was
    /// there (an event already gone is no error).
    pub fn remove_event(
        &mut self,
        project: u64,
        issue: u64,
        seq: u64,
        id: &EventId,
    ) -> Result<bool, StoreError> {
        if self.events.get((project, id.0.as_slice()))?.is_none() {
            return Ok(false);
        }
        self.delete_event(project, issue, seq, id)?;
        if let Some(mut i) = self.issue(project, issue)? {
            i.stored = i.stored.saturating_sub(1);
            self.put_issue(&i)?;
        }
        if let Some(mut p) = self.project(project)? {
            p.stored = p.stored.saturating_sub(1);
            self.put_project(&p)?;
        }
        Ok(true)
    }

    /// An issue's oldest stored events as (sequence, id), at most `n`.
    pub fn oldest_events(
        &self,
        project: u64,
        issue: u64,
        n: usize,
    ) -> Result<Vec<(u64, EventId)>, StoreError> {
        let mut out = Vec::with_capacity(n.min(1024));
        for row in self
            .issue_events
            .range((project, issue, 0)..=(project, issue, u64::MAX))?
        {
            if out.len() >= n {
                break;
            }
            let (k, v) = row?;
            if let Some(id) = EventId::from_slice(v.value()) {
                out.push((k.value().2, id));
            }
        }
        Ok(out)
    }

    /// Stored events from arrival sequence `from` on that arrived before `cutoff` (Unix
    /// seconds), oldest first, at most `n`.
    pub fn arrived_before(
        &self,
        cutoff: u64,
        from: u64,
        n: usize,
    ) -> Result<Vec<(u64, ArrivalRecord)>, StoreError> {
        let mut out = Vec::new();
        for row in self.arrivals.range(from..)? {
            let (k, v) = row?;
            let Some(arrival) = ArrivalRecord::decode(v.value()) else {
                continue;
            };
            if arrival.received >= cutoff || out.len() >= n {
                break;
            }
            out.push((k.value(), arrival));
        }
        Ok(out)
    }

    /// Every project.
    pub fn projects(&self) -> Result<Vec<Project>, StoreError> {
        super::projects::list(&self.projects)
    }

    /// Every issue of a project.
    pub fn project_issues(&self, project: u64) -> Result<Vec<Issue>, StoreError> {
        let mut out = Vec::new();
        for row in self.issues.range((project, 0)..=(project, u64::MAX))? {
            out.push(decode("issues", row?.1.value())?);
        }
        Ok(out)
    }

    /// Deletes an issue with its events, counters and fingerprint links; the events deleted.
    pub fn delete_issue(&mut self, project: u64, id: u64) -> Result<u64, StoreError> {
        let Some(issue) = self.issue(project, id)? else {
            return Err(StoreError::NotFound(format!("no issue {id}")));
        };
        let events = self.oldest_events(project, id, usize::MAX)?;
        for (seq, event) in &events {
            self.delete_event(project, id, *seq, event)?;
        }
        let hours: Vec<u64> = self
            .hours
            .range((project, id, 0)..=(project, id, u64::MAX))?
            .map(|row| row.map(|(k, _)| k.value().2))
            .collect::<Result<_, _>>()?;
        for hour in hours {
            self.hours.remove((project, id, hour))?;
        }
        let tags: Vec<(String, String)> = self
            .tags
            .range((project, id, "", "")..(project, id + 1, "", ""))?
            .map(|row| row.map(|(k, _)| (k.value().2.to_string(), k.value().3.to_string())))
            .collect::<Result<_, _>>()?;
        for (k, v) in tags {
            self.tags.remove((project, id, k.as_str(), v.as_str()))?;
        }
        self.tag_keys
            .retain_in((project, id, "")..(project, id + 1, ""), |_, _| false)?;
        for hash in std::iter::once(&issue.hash).chain(&issue.merged_hashes) {
            self.hashes.remove((project, hash.as_slice()))?;
        }
        let terms = self.slices.terms_of(project, id)?;
        self.slices.delete_issue(project, id, &terms)?;
        self.issues.remove((project, id))?;
        if let Some(mut p) = self.project(project)? {
            p.stored = p.stored.saturating_sub(events.len() as u64);
            self.put_project(&p)?;
        }
        Ok(events.len() as u64)
    }

    /// Merges issue `from` into `into`: its stored events, hourly and tag counts and figures
    /// move, its fingerprints lead to `into` from then on, and `from` is gone. Returns the
    /// events moved.
    pub fn merge_issue(&mut self, project: u64, into: u64, from: u64) -> Result<u64, StoreError> {
        if into == from {
            return Err(StoreError::Conflict(format!(
                "issue {into} cannot be merged into itself"
            )));
        }
        let missing = |id: u64| StoreError::NotFound(format!("no issue {id}"));
        let mut target = self.issue(project, into)?.ok_or_else(|| missing(into))?;
        let source = self.issue(project, from)?.ok_or_else(|| missing(from))?;
        let events = self.oldest_events(project, from, usize::MAX)?;
        for (seq, id) in &events {
            self.issue_events.remove((project, from, *seq))?;
            self.issue_events
                .insert((project, into, *seq), id.0.as_slice())?;
            let row = self
                .events
                .get((project, id.0.as_slice()))?
                .map(|v| v.value().to_vec());
            if let Some(row) = row.and_then(|r| events::with_issue(r, into)) {
                self.events
                    .insert((project, id.0.as_slice()), row.as_slice())?;
            }
            let arrival = self
                .arrivals
                .get(*seq)?
                .and_then(|v| ArrivalRecord::decode(v.value()));
            if let Some(mut arrival) = arrival {
                arrival.issue = into;
                self.arrivals.insert(*seq, arrival.encode().as_slice())?;
            }
        }
        let hours: Vec<(u64, u64)> = self
            .hours
            .range((project, from, 0)..=(project, from, u64::MAX))?
            .map(|row| row.map(|(k, v)| (k.value().2, v.value())))
            .collect::<Result<_, _>>()?;
        for (hour, n) in hours {
            self.hours.remove((project, from, hour))?;
            self.add_hourly(project, into, hour, n)?;
        }
        let tags: Vec<(String, String, u64)> = super::issues::tags(&self.tags, project, from)?;
        for (k, v, n) in tags {
            self.tags.remove((project, from, k.as_str(), v.as_str()))?;
            self.add_tag(project, into, &k, &v, n)?;
        }
        self.tag_keys
            .retain_in((project, from, "")..(project, from + 1, ""), |_, _| false)?;
        for hash in std::iter::once(&source.hash).chain(&source.merged_hashes) {
            self.hashes.insert((project, hash.as_slice()), into)?;
            target.merged_hashes.push(hash.clone());
        }
        target.count += source.count;
        target.stored += source.stored;
        super::sketch::merge(&mut target.users, &source.users);
        if source.first_seen < target.first_seen {
            target.first_seen = source.first_seen;
            target.first_event = source.first_event;
            target.first_release = source.first_release.clone();
        }
        if source.last_seen > target.last_seen {
            target.last_seen = source.last_seen;
            target.last_event = source.last_event;
        }
        for r in &source.releases {
            target.remember_release(r);
        }
        for e in &source.environments {
            target.remember_environment(e);
        }
        target.regressions += source.regressions;
        target.feedback += source.feedback;
        target.comments += source.comments;
        if source.exact_users.is_none() {
            target.exact_users = None;
        }
        self.slices
            .merge(project, into, from, &mut target, &source)?;
        self.issues.remove((project, from))?;
        self.put_issue(&target)?;
        Ok(events.len() as u64)
    }

    /// Deletes a project: its issues and events, its keys, its slug. Returns (issues, events).
    pub fn delete_project(
        &mut self,
        txn: &WriteTransaction,
        project: &Project,
    ) -> Result<(u64, u64), StoreError> {
        let ids: Vec<u64> = self
            .project_issues(project.id)?
            .iter()
            .map(|i| i.id)
            .collect();
        let mut events = 0;
        self.slices.forget_terms(project.id)?;
        for id in &ids {
            events += self.delete_issue(project.id, *id)?;
            super::activity::forget(txn, project.id, *id)?;
        }
        let mut keys = txn.open_table(super::KEYS)?;
        let doomed: Vec<String> = super::projects::keys(&keys)?
            .into_iter()
            .filter(|k| k.project == project.id)
            .map(|k| k.public_key)
            .collect();
        for key in doomed {
            keys.remove(key.as_str())?;
        }
        txn.open_table(super::PROJECT_SLUGS)?
            .remove(project.slug.as_str())?;
        self.projects.remove(project.id)?;
        super::outbox::Outbox::open(txn)?.forget(project.id)?;
        super::feedback::FeedbackRows::open(txn)?.forget(project.id)?;
        super::outcomes::forget(txn, project.id)?;
        super::health::forget(txn, project.id)?;
        super::monitors::forget(txn, project.id)?;
        Ok((ids.len() as u64, events))
    }

    pub fn issue(&self, project: u64, id: u64) -> Result<Option<Issue>, StoreError> {
        self.issues
            .get((project, id))?
            .map(|v| decode("issues", v.value()))
            .transpose()
    }

    pub fn project(&self, id: u64) -> Result<Option<Project>, StoreError> {
        self.projects
            .get(id)?
            .map(|v| decode("projects", v.value()))
            .transpose()
    }

    pub fn put_project(&mut self, project: &Project) -> Result<(), StoreError> {
        self.projects
            .insert(project.id, encode(project).as_slice())?;
        Ok(())
    }

    /// The issue a fingerprint hash leads to, if any.
    pub fn issue_by_hash(&self, project: u64, hash: &[u8]) -> Result<Option<Issue>, StoreError> {
        let Some(id) = self.hashes.get((project, hash))?.map(|v| v.value()) else {
            return Ok(None);
        };
        self.issues
            .get((project, id))?
            .map(|v| decode("issues", v.value()))
            .transpose()
    }

    pub fn link_hash(&mut self, project: u64, hash: &[u8], issue: u64) -> Result<(), StoreError> {
        self.hashes.insert((project, hash), issue)?;
        Ok(())
    }

    pub fn put_issue(&mut self, issue: &Issue) -> Result<(), StoreError> {
        self.issues
            .insert((issue.project, issue.id), encode(issue).as_slice())?;
        Ok(())
    }

    /// Adds to a project's events of an hour (the projects page's sparkline).
    pub fn add_project_hourly(
        &mut self,
        txn: &WriteTransaction,
        project: u64,
        hour: u64,
        n: u64,
    ) -> Result<(), StoreError> {
        let mut table = txn.open_table(super::PROJECT_HOURS)?;
        let current = table.get((project, hour))?.map(|v| v.value()).unwrap_or(0);
        table.insert((project, hour), current + n)?;
        Ok(())
    }

    pub fn add_hourly(
        &mut self,
        project: u64,
        issue: u64,
        hour: u64,
        n: u64,
    ) -> Result<(), StoreError> {
        let current = self
            .hours
            .get((project, issue, hour))?
            .map(|v| v.value())
            .unwrap_or(0);
        self.hours.insert((project, issue, hour), current + n)?;
        Ok(())
    }

    /// Counts `n` events with a tag on an issue, within the caps: a value an issue has not
    /// seen, past [`MAX_TAG_VALUES`] for its key (or a key past [`MAX_TAG_KEYS`]), is counted
    /// under [`OTHER_TAG`].
    pub fn add_tag(
        &mut self,
        project: u64,
        issue: u64,
        key: &str,
        value: &str,
        n: u64,
    ) -> Result<(), StoreError> {
        let current = self
            .tags
            .get((project, issue, key, value))?
            .map(|v| v.value());
        let (key, value) = match current {
            Some(_) => (key, value),
            None => self.admit_tag(project, issue, key, value)?,
        };
        let current = match current {
            Some(c) => c,
            None => self
                .tags
                .get((project, issue, key, value))?
                .map_or(0, |v| v.value()),
        };
        self.tags
            .insert((project, issue, key, value), current + n)?;
        Ok(())
    }

    /// Where a tag an issue has not counted yet goes: its own row while its key has room,
    /// else the key's `(other)` value, or `(other)` altogether past the key cap.
    fn admit_tag<'k>(
        &mut self,
        project: u64,
        issue: u64,
        key: &'k str,
        value: &'k str,
    ) -> Result<(&'k str, &'k str), StoreError> {
        if key == OTHER_TAG || value == OTHER_TAG {
            return Ok((key, value));
        }
        let distinct = self.tag_keys.get((project, issue, key))?.map(|v| v.value());
        match distinct {
            Some(d) if d >= MAX_TAG_VALUES => Ok((key, OTHER_TAG)),
            Some(d) => {
                self.tag_keys.insert((project, issue, key), d + 1)?;
                Ok((key, value))
            }
            None => {
                let keys = self
                    .tag_keys
                    .range((project, issue, "")..(project, issue + 1, ""))?
                    .count() as u64;
                if keys >= MAX_TAG_KEYS {
                    return Ok((OTHER_TAG, OTHER_TAG));
                }
                self.tag_keys.insert((project, issue, key), 1)?;
                Ok((key, value))
            }
        }
    }
}

/// Where a stored event is, in arrival order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArrivalRecord {
    pub project: u64,
    pub issue: u64,
    /// Receive time, whole Unix seconds.
    pub received: u64,
    pub id: EventId,
}

impl ArrivalRecord {
    fn encode(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.project.to_le_bytes());
        out[8..16].copy_from_slice(&self.issue.to_le_bytes());
        out[16..24].copy_from_slice(&self.received.to_le_bytes());
        out[24..].copy_from_slice(&self.id.0);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<ArrivalRecord> {
        let word = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
        Some(ArrivalRecord {
            project: word(0)?,
            issue: word(8)?,
            received: word(16)?,
            id: EventId::from_slice(bytes.get(24..40)?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issue_keeps_a_bounded_set_of_tags() {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut rows = Tables::open(&txn).unwrap();
            for event in 0..300u64 {
                rows.add_tag(1, 7, "browser", "Firefox", 1).unwrap();
                rows.add_tag(1, 7, "request_id", &format!("r-{event}"), 1)
                    .unwrap();
                rows.add_tag(1, 7, &format!("key{event}"), "v", 1).unwrap();
            }
        }
        let tags = super::super::issues::tags(&txn.open_table(ISSUE_TAGS).unwrap(), 1, 7).unwrap();
        let count = |k: &str, v: &str| {
            tags.iter()
                .find(|(key, value, _)| key == k && value == v)
                .map(|t| t.2)
        };
        assert_eq!(
            count("browser", "Firefox"),
            Some(300),
            "a common value is exact"
        );
        let request_ids = tags.iter().filter(|t| t.0 == "request_id").count() as u64;
        assert_eq!(
            request_ids,
            MAX_TAG_VALUES + 1,
            "the first values and (other)"
        );
        assert_eq!(count("request_id", OTHER_TAG), Some(300 - MAX_TAG_VALUES));
        let keys: std::collections::BTreeSet<&str> = tags.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(
            keys.len() as u64,
            MAX_TAG_KEYS + 1,
            "the first keys and (other)"
        );
        // Every event is still counted, inside the caps or under (other).
        let all: u64 = tags.iter().map(|t| t.2).sum();
        assert_eq!(all, 900);
    }
}

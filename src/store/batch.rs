//! The writer's view of one write transaction: every table it touches, opened once per batch
//! rather than once per event, with the few operations that storing events needs.

use redb::{ReadableTable, Table, WriteTransaction};

use super::events::{self, EncodedEvent};
use super::issues::Issue;
use super::projects::Project;
use super::{
    EVENTS, ISSUE_EVENTS, ISSUE_HASHES, ISSUE_HOURS, ISSUE_TAGS, ISSUES, META, PROJECTS,
    StoreError, decode, encode,
};

pub struct Batch<'t> {
    meta: Table<'t, &'static str, u64>,
    projects: Table<'t, u64, &'static [u8]>,
    issues: Table<'t, (u64, u64), &'static [u8]>,
    hashes: Table<'t, (u64, &'static [u8]), u64>,
    events: Table<'t, (u64, &'static [u8]), &'static [u8]>,
    issue_events: Table<'t, (u64, u64, u64), &'static [u8]>,
    hours: Table<'t, (u64, u64, u64), u64>,
    tags: Table<'t, (u64, u64, &'static str, &'static str), u64>,
}

impl<'t> Batch<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<Batch<'t>, StoreError> {
        Ok(Batch {
            meta: txn.open_table(META)?,
            projects: txn.open_table(PROJECTS)?,
            issues: txn.open_table(ISSUES)?,
            hashes: txn.open_table(ISSUE_HASHES)?,
            events: txn.open_table(EVENTS)?,
            issue_events: txn.open_table(ISSUE_EVENTS)?,
            hours: txn.open_table(ISSUE_HOURS)?,
            tags: txn.open_table(ISSUE_TAGS)?,
        })
    }

    /// The last arrival sequence number handed out.
    pub fn seq(&self) -> Result<u64, StoreError> {
        Ok(self.meta.get("event_seq")?.map(|v| v.value()).unwrap_or(0))
    }

    pub fn set_seq(&mut self, seq: u64) -> Result<(), StoreError> {
        self.meta.insert("event_seq", seq)?;
        Ok(())
    }

    pub fn event_exists(&self, project: u64, id: &[u8; 16]) -> Result<bool, StoreError> {
        Ok(self.events.get((project, id.as_slice()))?.is_some())
    }

    pub fn insert_event(
        &mut self,
        project: u64,
        issue: u64,
        seq: u64,
        id: &[u8; 16],
        encoded: &EncodedEvent,
    ) -> Result<(), StoreError> {
        self.events.insert(
            (project, id.as_slice()),
            events::row(issue, seq, encoded).as_slice(),
        )?;
        self.issue_events
            .insert((project, issue, seq), id.as_slice())?;
        Ok(())
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
            .map(|v| v.value())
            .unwrap_or(0);
        self.tags
            .insert((project, issue, key, value), current + n)?;
        Ok(())
    }
}

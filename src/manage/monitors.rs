//! Cron monitors of a project: list them with their status, schedule, next expected
//! check-in and recent check-ins; mute (no issue is opened) and delete them.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::monitors::Monitor;
use crate::store::backup::Progress;
use crate::store::monitors::{self, MONITORS};

/// One check-in as the front ends show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckInView {
    pub id: String,
    pub status: String,
    pub started: String,
    /// Seconds, once the run ended.
    pub duration: Option<f64>,
    pub environment: Option<String>,
}

/// A monitor as the front ends show it; `checkins` newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorView {
    pub slug: String,
    /// `ok`, `error`, `missed`, `timeout` or `in_progress`.
    pub status: String,
    pub schedule: String,
    pub timezone: String,
    pub checkin_margin: u32,
    pub max_runtime: u32,
    pub failure_issue_threshold: u32,
    pub recovery_threshold: u32,
    pub muted: bool,
    pub created: String,
    pub last_checkin: Option<String>,
    pub next_expected: Option<String>,
    pub checkins: Vec<CheckInView>,
}

impl From<Monitor> for MonitorView {
    fn from(m: Monitor) -> MonitorView {
        MonitorView {
            status: m.status.as_str().to_string(),
            schedule: m.config.schedule.describe(),
            timezone: m.config.timezone.clone(),
            checkin_margin: m.config.checkin_margin,
            max_runtime: m.config.max_runtime,
            failure_issue_threshold: m.config.failure_issue_threshold,
            recovery_threshold: m.config.recovery_threshold,
            muted: m.muted,
            created: crate::time::rfc3339(m.created),
            last_checkin: m.last_checkin.map(crate::time::rfc3339),
            next_expected: m.next_expected.map(crate::time::rfc3339),
            checkins: m
                .checkins
                .into_iter()
                .rev()
                .map(|c| CheckInView {
                    id: c.id,
                    status: c.status.as_str().to_string(),
                    started: crate::time::rfc3339(c.started),
                    duration: c.duration,
                    environment: c.environment,
                })
                .collect(),
            slug: m.slug,
        }
    }
}

/// A project's monitors by slug.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorList {
    pub project: String,
}

impl Operation for MonitorList {
    type Answer = Vec<MonitorView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<MonitorView>, ManageError> {
        actor.require_scope("project:read")?;
        let project = h.project(actor, &self.project)?;
        let txn = h.db.begin_read()?;
        let list: Vec<(u64, Monitor)> =
            monitors::list(&txn.open_table(MONITORS)?, Some(project.id))?;
        Ok(list.into_iter().map(|(_, m)| m.into()).collect())
    }
}

/// Mutes a monitor (its failures open no issue) or unmutes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorMute {
    pub project: String,
    pub slug: String,
    pub muted: bool,
}

impl Operation for MonitorMute {
    type Answer = MonitorView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<MonitorView, ManageError> {
        actor.require_scope("project:write")?;
        let project = h.project(actor, &self.project)?;
        let (slug, muted) = (self.slug.clone(), self.muted);
        let found = h.write(move |txn| {
            let table = txn.open_table(MONITORS)?;
            let found: Option<Monitor> = monitors::get(&table, project.id, &slug)?;
            drop(table);
            let Some(mut m) = found else { return Ok(None) };
            m.muted = muted;
            monitors::put(txn, project.id, &slug, &m)?;
            Ok(Some(m))
        })?;
        found
            .map(MonitorView::from)
            .ok_or_else(|| ManageError::NotFound(format!("no monitor '{}'", self.slug)))
    }
}

/// Deletes a monitor and its check-ins (its issue stays).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorDelete {
    pub project: String,
    pub slug: String,
}

/// What was deleted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorDeleted {
    pub deleted: String,
}

impl Operation for MonitorDelete {
    type Answer = MonitorDeleted;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<MonitorDeleted, ManageError> {
        actor.require_scope("project:write")?;
        let project = h.project(actor, &self.project)?;
        let slug = self.slug.clone();
        if h.write(move |txn| monitors::remove(txn, project.id, &slug))? {
            Ok(MonitorDeleted { deleted: self.slug })
        } else {
            Err(ManageError::NotFound(format!("no monitor '{}'", self.slug)))
        }
    }
}

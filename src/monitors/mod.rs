//! Cron monitors: a scheduled job checks in when it starts and when it ends, and picket
//! notices when it does not. A monitor is made by its first check-in that carries a
//! `monitor_config`; from then on each check-in moves its state, and a supervised worker
//! marks it *missed* when no check-in came within schedule + margin and *timed out* when an
//! in-progress check-in ran past `max_runtime`. Failures (an `error` check-in, a miss, a
//! timeout), once `failure_issue_threshold` came in a row, become events of the monitor's
//! issue ("Cron failure: nightly-backup (missed check-in)"), so the normal alert rules mail
//! and post them; `recovery_threshold` good check-ins in a row resolve that issue.
//!
//! The state changes are pure functions of the monitor and the time ([`Monitor::check_in`],
//! [`Monitor::tick`]); [`apply_check_in`] and [`apply_due`] run them in the writer's
//! transaction, and the caller stores the failure events they return like any other event.

pub mod checkin;
pub mod schedule;
pub mod worker;

use std::collections::VecDeque;

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::store::StoreError;
use crate::store::issues::{self, StatusChange};
use crate::store::monitors::{self as rows, MONITORS};
use checkin::{CheckIn, MonitorConfig, Reported};

/// Check-ins kept per monitor (the latest).
pub const MAX_CHECKINS: usize = 50;
/// Monitors per project; check-ins that would make more are refused.
pub const MAX_PER_PROJECT: usize = 1_000;

/// Where a monitor stands, as its last check-in (or the worker) left it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MonitorStatus {
    #[default]
    Ok,
    Error,
    Missed,
    Timeout,
    InProgress,
}

impl MonitorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorStatus::Ok => "ok",
            MonitorStatus::Error => "error",
            MonitorStatus::Missed => "missed",
            MonitorStatus::Timeout => "timeout",
            MonitorStatus::InProgress => "in_progress",
        }
    }
}

/// One check-in as kept: what it said, or what the worker decided (missed, timeout).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct CheckInRecord {
    pub id: String,
    pub status: MonitorStatus,
    /// When the run started (for a miss: when it was expected).
    pub started: f64,
    /// Seconds it ran, once known.
    pub duration: Option<f64>,
    pub environment: Option<String>,
}

/// A monitor and its recent check-ins.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Monitor {
    pub slug: String,
    pub config: MonitorConfig,
    pub status: MonitorStatus,
    /// Muted monitors keep their check-ins but open no issue.
    pub muted: bool,
    pub created: f64,
    pub last_checkin: Option<f64>,
    /// When the next run is expected (it is missed past this plus the margin).
    pub next_expected: Option<f64>,
    /// Failures and successes in a row.
    pub failures: u32,
    pub successes: u32,
    /// Whether the monitor's issue is open because of it.
    pub incident: bool,
    pub environment: Option<String>,
    /// Oldest first, at most [`MAX_CHECKINS`].
    pub checkins: VecDeque<CheckInRecord>,
}

/// What a state change asks for besides the row.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Store a failure event (what happened, in a few words).
    Failure(String),
    /// Resolve the monitor's issue.
    Recovered,
}

impl Monitor {
    fn new(slug: &str, config: MonitorConfig, now: f64) -> Monitor {
        Monitor {
            slug: slug.to_string(),
            config,
            created: now,
            ..Default::default()
        }
    }

    fn tz(&self) -> chrono_tz::Tz {
        schedule::time_zone(&self.config.timezone).unwrap_or(chrono_tz::UTC)
    }

    fn push(&mut self, record: CheckInRecord) {
        self.checkins.push_back(record);
        while self.checkins.len() > MAX_CHECKINS {
            self.checkins.pop_front();
        }
    }

    fn fail(&mut self, status: MonitorStatus, what: String) -> Vec<Signal> {
        self.status = status;
        self.failures = self.failures.saturating_add(1);
        self.successes = 0;
        if self.muted || self.failures < self.config.failure_issue_threshold {
            return Vec::new();
        }
        self.incident = true;
        vec![Signal::Failure(what)]
    }

    fn succeed(&mut self) -> Vec<Signal> {
        self.status = MonitorStatus::Ok;
        self.successes = self.successes.saturating_add(1);
        self.failures = 0;
        if self.incident && self.successes >= self.config.recovery_threshold {
            self.incident = false;
            return vec![Signal::Recovered];
        }
        Vec::new()
    }

    /// Applies a check-in that arrived at `now`.
    pub fn check_in(&mut self, c: &CheckIn, now: f64) -> Vec<Signal> {
        if let Some(config) = &c.config {
            self.config = config.clone();
        }
        if c.environment.is_some() {
            self.environment = c.environment.clone();
        }
        let closing = c.status != Reported::InProgress;
        let open = self.checkins.iter_mut().rev().find(|r| r.id == c.id);
        match open {
            // A retry of a check-in already applied changes nothing.
            Some(r) if r.status == status_of(c.status) => return Vec::new(),
            Some(r)
                if closing
                    && matches!(r.status, MonitorStatus::InProgress | MonitorStatus::Timeout) =>
            {
                let timed_out = r.status == MonitorStatus::Timeout;
                r.status = status_of(c.status);
                r.duration = c.duration.or(Some((now - r.started).max(0.0)));
                self.last_checkin = Some(now);
                // A timed-out run already counted as a failure.
                return match (c.status, timed_out) {
                    (Reported::Ok, _) => self.succeed(),
                    (_, true) => Vec::new(),
                    _ => self.fail(MonitorStatus::Error, "check-in error".into()),
                };
            }
            _ => {}
        }
        let started = match (closing, c.duration) {
            (true, Some(d)) => now - d,
            _ => now,
        };
        self.push(CheckInRecord {
            id: c.id.clone(),
            status: status_of(c.status),
            started,
            duration: if closing { c.duration } else { None },
            environment: c.environment.clone(),
        });
        self.last_checkin = Some(now);
        self.next_expected = self.config.schedule.next_after(now, self.tz());
        match c.status {
            Reported::InProgress => {
                self.status = MonitorStatus::InProgress;
                Vec::new()
            }
            Reported::Ok => self.succeed(),
            Reported::Error => self.fail(MonitorStatus::Error, "check-in error".into()),
        }
    }

    /// Whether [`Self::tick`] would change anything at `now`.
    pub fn due(&self, now: f64) -> bool {
        let runtime = f64::from(self.config.max_runtime) * 60.0;
        let overdue = self
            .checkins
            .iter()
            .any(|r| r.status == MonitorStatus::InProgress && r.started + runtime < now);
        overdue || self.missed_at(now).is_some()
    }

    /// The expected run that is missed at `now`, if any.
    fn missed_at(&self, now: f64) -> Option<f64> {
        let expected = self.next_expected?;
        let margin = f64::from(self.config.checkin_margin) * 60.0;
        (now > expected + margin).then_some(expected)
    }

    /// Marks what is overdue at `now`: runs past `max_runtime` time out, and an expected run
    /// without a check-in is missed (once; the next expected run is then counted from now).
    pub fn tick(&mut self, now: f64) -> Vec<Signal> {
        let mut signals = Vec::new();
        let runtime = f64::from(self.config.max_runtime) * 60.0;
        let mut timeouts = 0;
        for r in self.checkins.iter_mut() {
            if r.status == MonitorStatus::InProgress && r.started + runtime < now {
                r.status = MonitorStatus::Timeout;
                r.duration = Some(runtime);
                timeouts += 1;
            }
        }
        for _ in 0..timeouts {
            let what = format!("timed out after {} minutes", self.config.max_runtime);
            signals.extend(self.fail(MonitorStatus::Timeout, what));
        }
        if let Some(expected) = self.missed_at(now) {
            self.push(CheckInRecord {
                id: crate::ids::hex(&crate::ids::random_bytes()),
                status: MonitorStatus::Missed,
                started: expected,
                duration: None,
                environment: self.environment.clone(),
            });
            let margin = f64::from(self.config.checkin_margin) * 60.0;
            let tz = self.tz();
            let mut next = self.config.schedule.next_after(expected, tz);
            // After a long outage: count one miss, then expect the next run from now on.
            if next.is_some_and(|n| n + margin < now) {
                next = self.config.schedule.next_after(now - margin, tz);
            }
            self.next_expected = next;
            signals.extend(self.fail(MonitorStatus::Missed, "missed check-in".into()));
        }
        signals
    }
}

fn status_of(r: Reported) -> MonitorStatus {
    match r {
        Reported::InProgress => MonitorStatus::InProgress,
        Reported::Ok => MonitorStatus::Ok,
        Reported::Error => MonitorStatus::Error,
    }
}

/// The event that stands for a monitor's failure: every failure of one monitor groups into
/// one issue, titled by what happened.
pub fn failure_event(monitor: &Monitor, what: &str, now: f64) -> Event {
    let mut event = Event {
        event_id: crate::ids::EventId(crate::ids::random_bytes()),
        timestamp: now,
        received: now,
        level: crate::event::Level::Error,
        platform: "other".into(),
        logger: Some("picket.monitors".into()),
        environment: monitor.environment.clone(),
        fingerprint: vec!["picket-monitor".into(), monitor.slug.clone()],
        ..Default::default()
    };
    event.logentry = Some(crate::event::model::LogEntry {
        formatted: Some(format!("Cron failure: {} ({what})", monitor.slug)),
        ..Default::default()
    });
    event
        .tags
        .push(("monitor.slug".into(), monitor.slug.clone()));
    event.culprit = Some(format!("monitor {}", monitor.slug));
    event
}

/// What a write did: the monitor as written (none when the check-in named an unknown monitor
/// without a config) and the failure events to store.
pub struct Applied {
    pub monitor: Option<Monitor>,
    pub failures: Vec<Event>,
}

/// Why a check-in was not applied.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("no monitor '{0}' in this project: send a check-in with a monitor_config first")]
    Unknown(String),
    #[error("this project already has {MAX_PER_PROJECT} monitors")]
    TooMany,
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Resolves the monitor's issue, found by the fingerprint its failure events carry.
fn resolve_issue(
    txn: &WriteTransaction,
    project: u64,
    monitor: &Monitor,
) -> Result<(), StoreError> {
    let hash = crate::event::grouping::group(&failure_event(monitor, "", 0.0)).hash;
    let Some(id) = txn
        .open_table(crate::store::ISSUE_HASHES)?
        .get((project, hash.as_slice()))?
        .map(|v| v.value())
    else {
        return Ok(());
    };
    let (who, at) = (crate::store::activity::Who::Picket, crate::time::now());
    issues::set_status(txn, project, id, &StatusChange::Resolve, None, who, at)?;
    Ok(())
}

fn follow(
    txn: &WriteTransaction,
    project: u64,
    monitor: &Monitor,
    signals: Vec<Signal>,
    now: f64,
) -> Result<Vec<Event>, StoreError> {
    let mut failures = Vec::new();
    for s in signals {
        match s {
            Signal::Failure(what) => failures.push(failure_event(monitor, &what, now)),
            Signal::Recovered => resolve_issue(txn, project, monitor)?,
        }
    }
    Ok(failures)
}

/// Applies a check-in inside a write transaction.
pub fn apply_check_in(
    txn: &WriteTransaction,
    project: u64,
    c: &CheckIn,
    now: f64,
) -> Result<Applied, MonitorError> {
    let table = txn.open_table(MONITORS).map_err(StoreError::from)?;
    let known: Option<Monitor> = rows::get(&table, project, &c.slug)?;
    let mut monitor = match (known, &c.config) {
        (Some(m), _) => m,
        (None, Some(config)) => {
            if rows::count(&table, project)? >= MAX_PER_PROJECT {
                return Err(MonitorError::TooMany);
            }
            Monitor::new(&c.slug, config.clone(), now)
        }
        (None, None) => return Err(MonitorError::Unknown(c.slug.clone())),
    };
    drop(table);
    let signals = monitor.check_in(c, now);
    rows::put(txn, project, &monitor.slug, &monitor)?;
    let failures = follow(txn, project, &monitor, signals, now)?;
    Ok(Applied {
        monitor: Some(monitor),
        failures,
    })
}

/// Every monitor due at `now`, as (project, slug); read without blocking the writer.
pub fn due(db: &redb::Database, now: f64) -> Result<Vec<(u64, String)>, StoreError> {
    let txn = db.begin_read()?;
    let all: Vec<(u64, Monitor)> = rows::list(&txn.open_table(MONITORS)?, None)?;
    Ok(all
        .into_iter()
        .filter(|(_, m)| m.due(now))
        .map(|(p, m)| (p, m.slug))
        .collect())
}

/// Applies the worker's tick to the monitors given; the failure events to store, by project.
pub fn apply_due(
    txn: &WriteTransaction,
    monitors: &[(u64, String)],
    now: f64,
) -> Result<Vec<(u64, Event)>, StoreError> {
    let mut out = Vec::new();
    for (project, slug) in monitors {
        let found: Option<Monitor> = rows::get(&txn.open_table(MONITORS)?, *project, slug)?;
        let Some(mut monitor) = found else { continue };
        let signals = monitor.tick(now);
        rows::put(txn, *project, slug, &monitor)?;
        for event in follow(txn, *project, &monitor, signals, now)? {
            out.push((*project, event));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use schedule::{Schedule, Unit};

    fn config(minutes: u32) -> MonitorConfig {
        MonitorConfig {
            schedule: Schedule::Interval {
                value: minutes,
                unit: Unit::Minute,
            },
            checkin_margin: 1,
            max_runtime: 5,
            ..Default::default()
        }
    }

    fn check(slug: &str, id: &str, status: Reported) -> CheckIn {
        CheckIn {
            id: id.into(),
            slug: slug.into(),
            status,
            duration: None,
            environment: None,
            config: None,
        }
    }

    #[test]
    fn ok_then_missed_then_ok_opens_and_resolves() {
        let mut m = Monitor::new("backup", config(10), 0.0);
        assert!(
            m.check_in(&check("backup", "a", Reported::Ok), 1000.0)
                .is_empty()
        );
        assert_eq!(m.next_expected, Some(1600.0));
        assert!(!m.due(1650.0));
        assert!(m.due(1661.0));
        assert_eq!(
            m.tick(1661.0),
            vec![Signal::Failure("missed check-in".into())]
        );
        assert_eq!(m.status, MonitorStatus::Missed);
        assert_eq!(m.next_expected, Some(2200.0));
        assert!(!m.due(1700.0), "one miss per expected run");
        // A second miss updates the issue again.
        assert_eq!(m.tick(2261.0).len(), 1);
        assert_eq!(
            m.check_in(&check("backup", "b", Reported::Ok), 2300.0),
            vec![Signal::Recovered]
        );
        assert_eq!(m.status, MonitorStatus::Ok);
        assert_eq!(m.checkins.len(), 4);
    }

    #[test]
    fn in_progress_runs_time_out_and_close() {
        let mut m = Monitor::new("etl", config(60), 0.0);
        m.check_in(&check("etl", "run1", Reported::InProgress), 100.0);
        assert_eq!(m.status, MonitorStatus::InProgress);
        assert_eq!(
            m.check_in(&check("etl", "run1", Reported::Ok), 160.0),
            vec![]
        );
        assert_eq!(m.checkins[0].duration, Some(60.0));
        assert_eq!(m.checkins.len(), 1);
        m.check_in(&check("etl", "run2", Reported::InProgress), 1000.0);
        assert!(m.due(1000.0 + 5.0 * 60.0 + 1.0));
        let s = m.tick(1301.0);
        assert_eq!(s, vec![Signal::Failure("timed out after 5 minutes".into())]);
        assert_eq!(m.status, MonitorStatus::Timeout);
        // The late end of a timed-out run does not count twice; an ok one recovers.
        assert_eq!(
            m.check_in(&check("etl", "run2", Reported::Ok), 1400.0),
            vec![Signal::Recovered]
        );
    }

    #[test]
    fn thresholds_and_muting() {
        let mut m = Monitor::new("x", config(10), 0.0);
        m.config.failure_issue_threshold = 2;
        m.config.recovery_threshold = 2;
        assert!(
            m.check_in(&check("x", "1", Reported::Error), 10.0)
                .is_empty()
        );
        assert_eq!(m.check_in(&check("x", "2", Reported::Error), 20.0).len(), 1);
        assert!(m.check_in(&check("x", "3", Reported::Ok), 30.0).is_empty());
        assert_eq!(
            m.check_in(&check("x", "4", Reported::Ok), 40.0),
            vec![Signal::Recovered]
        );
        // A retried check-in changes nothing.
        assert!(m.check_in(&check("x", "4", Reported::Ok), 41.0).is_empty());
        m.muted = true;
        m.check_in(&check("x", "5", Reported::Error), 50.0);
        assert!(
            m.check_in(&check("x", "6", Reported::Error), 60.0)
                .is_empty()
        );
        assert_eq!(m.status, MonitorStatus::Error);
    }
}

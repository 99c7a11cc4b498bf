//! Check-ins reaching intake: `check_in` envelope items and Sentry's HTTP check-in for shell
//! scripts (`GET` or `POST /api/{project}/cron/{monitor_slug}/{sentry_key}/?status=…`). Each
//! is applied to its monitor through the writer (answered after the commit), then the failure
//! events it set off are stored like any other event.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::IntakeError;
use super::auth::Credentials;
use super::http::Intake;
use crate::monitors::checkin::{self, CheckIn};
use crate::monitors::{self, MonitorError};
use crate::store::outcomes::Source;

/// The HTTP check-in path: (project, monitor slug, public key).
pub fn route(path: &str) -> Option<(&str, &str, &str)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        ["api", project, "cron", slug, key] => Some((project, slug, key)),
        _ => None,
    }
}

impl Intake {
    /// Applies a check-in to its monitor and stores the failure events it sets off. A monitor
    /// that does not exist (and the check-in does not make) is an error for the caller.
    pub async fn check_in(&self, project: u64, c: CheckIn) -> Result<(), MonitorError> {
        let queue = self.queue.clone();
        let now = crate::time::now();
        let applied = tokio::task::spawn_blocking(move || {
            queue.write(
                move |txn| match monitors::apply_check_in(txn, project, &c, now) {
                    Err(MonitorError::Store(e)) => Err(e),
                    other => Ok(other),
                },
            )
        })
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))??;
        for event in applied.failures {
            if let Err(e) = self.submit(project, event).await {
                tracing::warn!("a cron monitor's failure event was not stored: {e}");
            }
        }
        Ok(())
    }

    /// Applies the check-ins of an envelope; those for unknown monitors are counted as dropped.
    pub async fn check_ins(&self, project: u64, list: Vec<CheckIn>) -> Result<(), IntakeError> {
        for c in list {
            match self.check_in(project, c).await {
                Ok(()) => {}
                Err(MonitorError::Unknown(_)) => self.counters.count_outcome(
                    project,
                    Source::Server,
                    "check_in",
                    "unknown_monitor",
                    1,
                ),
                Err(MonitorError::TooMany) => self.counters.count_outcome(
                    project,
                    Source::Server,
                    "check_in",
                    "too_many_monitors",
                    1,
                ),
                Err(MonitorError::Store(e)) => return Err(IntakeError::Unavailable(e.to_string())),
            }
        }
        Ok(())
    }
}

/// Answers an HTTP check-in: 202 with the check-in's id, 404 for an unknown monitor.
pub async fn handle(
    state: &Intake,
    req: Request<Incoming>,
    (project, slug, key): (&str, &str, &str),
) -> Result<(StatusCode, serde_json::Value), IntakeError> {
    let project: u64 = project.parse().map_err(|_| IntakeError::BadProjectPath)?;
    let creds = Credentials {
        public_key: key.to_string(),
        ..Default::default()
    };
    let project = state.admit(&creds, Some(project))?;
    let c = checkin::from_query(slug, req.uri().query().unwrap_or(""))?;
    let id = c.id.clone();
    match state.check_in(project, c).await {
        Ok(()) => Ok((StatusCode::ACCEPTED, serde_json::json!({ "id": id }))),
        Err(e @ MonitorError::Unknown(_)) => Err(IntakeError::Monitor(e.to_string())),
        Err(MonitorError::TooMany) => Err(IntakeError::Monitor(MonitorError::TooMany.to_string())),
        Err(MonitorError::Store(e)) => Err(IntakeError::Unavailable(e.to_string())),
    }
}

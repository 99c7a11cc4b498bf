//! The running server's own state: workers, queue and counters (`picket status`), and, in
//! test builds, a way to make a worker panic to exercise supervision.

use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::status::StatusReport;
use crate::store::backup::Progress;

/// The running server's workers, queue and counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status;

impl Operation for Status {
    type Answer = StatusReport;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<StatusReport, ManageError> {
        actor.require_admin("see the server's status")?;
        match &h.live {
            Some(live) => Ok(live.snapshot()),
            None => Err(ManageError::NotFound(format!(
                "no picket server is running on {}",
                h.config.data_dir.display()
            ))),
        }
    }
}

/// Makes a worker panic, to test supervision. Not in release builds.
#[cfg(debug_assertions)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Crash {
    pub worker: String,
}

#[cfg(debug_assertions)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Crashed {
    pub crashed: String,
}

#[cfg(debug_assertions)]
impl Operation for Crash {
    type Answer = Crashed;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<Crashed, ManageError> {
        actor.require_admin("crash workers")?;
        match (self.worker.as_str(), &h.writes) {
            ("writer", super::Writes::Writer(queue)) => {
                queue
                    .crash_writer()
                    .map_err(|_| ManageError::Storage("the writer has stopped".into()))?;
                Ok(Crashed {
                    crashed: self.worker,
                })
            }
            _ => Err(ManageError::Invalid(format!(
                "cannot crash worker '{}' here",
                self.worker
            ))),
        }
    }
}

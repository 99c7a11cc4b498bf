//! Store-and-forward settings: which upstream a project forwards to, and the events upstream
//! refused for good (dead letters), which can be put back in the outbox.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::projects::ProjectView;
use super::{Actor, Handle, ManageError, Operation};
use crate::ids::{Dsn, EventId};
use crate::store::backup::Progress;
use crate::store::outbox::{self, Outbox};
use crate::store::{FORWARD_DEAD, PROJECTS, projects};

/// Makes a project forward to an upstream DSN, or (with `None`) stops it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectForward {
    pub project: String,
    pub dsn: Option<String>,
}

impl Operation for ProjectForward {
    type Answer = ProjectView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<ProjectView, ManageError> {
        if let Some(dsn) = &self.dsn {
            let parsed = Dsn::parse(dsn)
                .map_err(|e| ManageError::Invalid(format!("bad upstream DSN: {e}")))?;
            if parsed.scheme == "udp" {
                return Err(ManageError::Invalid(
                    "bad upstream DSN: forwarding needs an http or https DSN".into(),
                ));
            }
        }
        let dsn = self.dsn;
        let project = h.update_project(actor, &self.project, move |p| p.forward_to = dsn)?;
        Ok(ProjectView::of(h, &project, None))
    }
}

/// The dead letters of every project; with `retry`, puts them back in the outbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetters {
    pub retry: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetterView {
    pub project: String,
    pub event_id: EventId,
    /// The upstream's HTTP status.
    pub status: u16,
    pub reason: String,
    pub refused_at: String,
    pub received: String,
}

/// The list, or (after a retry) how many went back and which.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeadLetterAnswer {
    Retried {
        retried: u64,
        dead_letters: Vec<DeadLetterView>,
    },
    List(Vec<DeadLetterView>),
}

impl Operation for DeadLetters {
    type Answer = DeadLetterAnswer;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<DeadLetterAnswer, ManageError> {
        actor.require_admin("see or retry dead letters")?;
        let txn = h.db.begin_read()?;
        let all = projects::list(&txn.open_table(PROJECTS)?)?;
        let letters = outbox::dead_letters(&txn.open_table(FORWARD_DEAD)?)?;
        drop(txn);
        let slug = |id: u64| {
            all.iter()
                .find(|p| p.id == id)
                .map_or_else(|| id.to_string(), |p| p.slug.clone())
        };
        let list: Vec<DeadLetterView> = letters
            .iter()
            .map(|(project, d)| DeadLetterView {
                project: slug(*project),
                event_id: d.event_id,
                status: d.status,
                reason: d.reason.clone(),
                refused_at: crate::time::rfc3339(d.at),
                received: crate::time::rfc3339(d.queued),
            })
            .collect();
        if !self.retry {
            return Ok(DeadLetterAnswer::List(list));
        }
        let retried = h.write(|txn| Outbox::open(txn)?.retry_dead(None))?;
        Ok(DeadLetterAnswer::Retried {
            retried,
            dead_letters: list,
        })
    }
}

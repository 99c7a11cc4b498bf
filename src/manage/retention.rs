//! Retention settings of a project: its own cap on stored events, or the configured one.

use serde::{Deserialize, Serialize};

use super::projects::ProjectView;
use super::{Actor, Handle, ManageError, Operation};
use crate::store::backup::Progress;

/// Sets (or with `None` clears) a project's own cap on stored events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectRetention {
    pub project: String,
    pub max_events: Option<u64>,
}

impl Operation for ProjectRetention {
    type Answer = ProjectView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<ProjectView, ManageError> {
        let max_events = self.max_events;
        let project = h.update_project(actor, &self.project, move |p| p.max_events = max_events)?;
        Ok(ProjectView::of(h, &project, None))
    }
}

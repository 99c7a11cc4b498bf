//! Backups of the data file while it is in use: one consistent snapshot copied into a
//! directory, with progress for the CLI's bar.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::store::backup::{self, BackupSummary, Progress};

/// Copies a consistent snapshot of the data file into a directory (an absolute path: the
/// server's working directory is not the caller's).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Backup {
    pub dest: PathBuf,
}

impl Operation for Backup {
    type Answer = BackupSummary;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        progress: Progress<'_>,
    ) -> Result<BackupSummary, ManageError> {
        actor.require_admin("make backups")?;
        if !self.dest.is_absolute() {
            return Err(ManageError::Invalid(format!(
                "the backup directory {} must be an absolute path",
                self.dest.display()
            )));
        }
        Ok(backup::backup(&h.db, &self.dest, progress)?)
    }
}

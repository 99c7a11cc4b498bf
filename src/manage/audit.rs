//! The audit log as admins read it (`picket audit`, the admins' audit page): sign-ins and
//! their failures, tokens made and revoked, accounts made, deactivated and promoted, project
//! roles and two-factor changes, newest first.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::store::audit::{self, AUDIT, AuditEntry};
use crate::store::backup::Progress;

/// Entries one page shows unless asked for more.
pub const DEFAULT_LIMIT: usize = 100;
/// The most one request returns.
pub const MAX_LIMIT: usize = 10_000;

/// One audit entry as the CLI, the JSON and the page show it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditView {
    pub id: u64,
    pub at: String,
    /// Unix seconds.
    pub timestamp: f64,
    /// `sign_in`, `sign_in_failed`, `token_created`, `user_deactivated`, … (see README).
    pub action: String,
    /// Who did it: an email, "the command line", "API token NAME", or "" for a visitor who
    /// was not signed in.
    pub actor: String,
    /// Whom or what it was done to.
    pub subject: String,
    pub address: Option<String>,
    pub detail: String,
}

impl AuditView {
    fn of(id: u64, e: &AuditEntry) -> AuditView {
        AuditView {
            id,
            at: crate::time::rfc3339(e.at),
            timestamp: e.at,
            action: e.action.name().to_string(),
            actor: e.actor.as_ref().map(|w| w.describe()).unwrap_or_default(),
            subject: e.subject.clone(),
            address: e.address.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// The newest audit entries (older than `before`, an entry id, to page back).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditList {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub before: Option<u64>,
}

impl Operation for AuditList {
    type Answer = Vec<AuditView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<AuditView>, ManageError> {
        actor.require_admin("read the audit log")?;
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ManageError::Invalid(format!(
                "limit: give 1 to {MAX_LIMIT}, not {limit}"
            )));
        }
        let txn = h.db.begin_read()?;
        let entries = audit::list(&txn.open_table(AUDIT)?, limit, self.before)?;
        Ok(entries
            .iter()
            .map(|(id, e)| AuditView::of(*id, e))
            .collect())
    }
}

impl Handle {
    /// [`Handle::write`] that also records `entry` in the audit log, in the same transaction.
    pub fn write_audited<T: Send + 'static>(
        &self,
        entry: AuditEntry,
        work: impl FnOnce(&redb::WriteTransaction) -> Result<T, crate::store::StoreError>
        + Send
        + 'static,
    ) -> Result<T, crate::store::StoreError> {
        self.write(move |txn| {
            let out = work(txn)?;
            audit::record(txn, &entry)?;
            Ok(out)
        })
    }
}

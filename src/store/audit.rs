//! The audit log: who signed in (and who failed to), who made or revoked a token, who created,
//! deactivated or promoted an account, who turned on two-factor codes, in the order it
//! happened. Entries are written in the transaction that makes the change, so the log never
//! claims what did not happen; the oldest go once [`MAX_ENTRIES`] are kept.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::activity::Who;
use super::{StoreError, decode, encode};

/// Entry number → [`AuditEntry`].
pub(crate) const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// Entries kept; past it the oldest are dropped (failed sign-ins are throttled, so this is
/// weeks of a busy server).
pub const MAX_ENTRIES: u64 = 100_000;

/// What was done.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// Signed in (the detail says how: password, two-factor code, single sign-on, proxy).
    SignIn,
    /// A sign-in was refused (wrong password or code, an unknown or refused account).
    SignInFailed,
    SignOut,
    /// A password was set (with a one-time link) or changed.
    PasswordSet,
    /// Someone asked for a password-reset mail for an existing account.
    PasswordResetRequested,
    /// An admin made a new set-password link.
    PasswordLinkMade,
    UserCreated,
    UserActivated,
    UserDeactivated,
    /// An account became an admin (or an admin's password was replaced from the CLI).
    AdminGranted,
    /// An account stopped being an admin.
    AdminRevoked,
    /// A project's members or owners changed.
    ProjectRoleChanged,
    TokenCreated,
    TokenRevoked,
    TwoFactorEnabled,
    TwoFactorDisabled,
    /// A recovery code stood in for a two-factor code.
    RecoveryCodeUsed,
    /// An account was linked to a single sign-on identity.
    AccountLinked,
}

impl AuditAction {
    /// The name the CLI and the JSON show.
    pub fn name(self) -> &'static str {
        match self {
            AuditAction::SignIn => "sign_in",
            AuditAction::SignInFailed => "sign_in_failed",
            AuditAction::SignOut => "sign_out",
            AuditAction::PasswordSet => "password_set",
            AuditAction::PasswordResetRequested => "password_reset_requested",
            AuditAction::PasswordLinkMade => "password_link_made",
            AuditAction::UserCreated => "user_created",
            AuditAction::UserActivated => "user_activated",
            AuditAction::UserDeactivated => "user_deactivated",
            AuditAction::AdminGranted => "admin_granted",
            AuditAction::AdminRevoked => "admin_revoked",
            AuditAction::ProjectRoleChanged => "project_role_changed",
            AuditAction::TokenCreated => "token_created",
            AuditAction::TokenRevoked => "token_revoked",
            AuditAction::TwoFactorEnabled => "two_factor_enabled",
            AuditAction::TwoFactorDisabled => "two_factor_disabled",
            AuditAction::RecoveryCodeUsed => "recovery_code_used",
            AuditAction::AccountLinked => "account_linked",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub at: f64,
    /// Who did it; `None` for a visitor who is not signed in (a failed sign-in, a reset
    /// request).
    pub actor: Option<Who>,
    pub action: AuditAction,
    /// Whom or what it was done to: an account's email, a token's name, a project's slug.
    pub subject: String,
    /// The client's address, where the change came over HTTP.
    pub address: Option<String>,
    /// More, in words ("password", "wrong code", "owner of shop").
    pub detail: String,
}

impl AuditEntry {
    pub fn new(actor: Option<Who>, action: AuditAction, subject: &str) -> AuditEntry {
        AuditEntry {
            at: crate::time::now(),
            actor,
            action,
            subject: subject.to_string(),
            address: None,
            detail: String::new(),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> AuditEntry {
        self.detail = detail.into();
        self
    }

    pub fn from_address(mut self, address: std::net::IpAddr) -> AuditEntry {
        self.address = Some(address.to_string());
        self
    }
}

/// Appends an entry in the transaction that makes the change, dropping the oldest past
/// [`MAX_ENTRIES`].
pub fn record(txn: &WriteTransaction, entry: &AuditEntry) -> Result<u64, StoreError> {
    let mut table = txn.open_table(AUDIT)?;
    let next = table.last()?.map_or(1, |(k, _)| k.value() + 1);
    table.insert(next, encode(entry).as_slice())?;
    if table.len()? > MAX_ENTRIES {
        let oldest = table.first()?.map(|(k, _)| k.value());
        if let Some(oldest) = oldest {
            table.remove(oldest)?;
        }
    }
    Ok(next)
}

/// Up to `limit` entries, newest first, older than entry `before` if given.
pub fn list(
    table: &impl ReadableTable<u64, &'static [u8]>,
    limit: usize,
    before: Option<u64>,
) -> Result<Vec<(u64, AuditEntry)>, StoreError> {
    let mut out = Vec::new();
    for row in table.range(..before.unwrap_or(u64::MAX))?.rev() {
        let (k, v) = row?;
        out.push((k.value(), decode("audit", v.value())?));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase;

    #[test]
    fn entries_come_back_newest_first_and_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("a.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        for i in 0..5 {
            let e = AuditEntry::new(None, AuditAction::SignInFailed, &format!("u{i}@x"));
            record(&txn, &e).unwrap();
        }
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        let got = list(&txn.open_table(AUDIT).unwrap(), 2, None).unwrap();
        assert_eq!(
            got.iter()
                .map(|(_, e)| e.subject.as_str())
                .collect::<Vec<_>>(),
            ["u4@x", "u3@x"]
        );
        let older = list(&txn.open_table(AUDIT).unwrap(), 10, Some(got[1].0)).unwrap();
        assert_eq!(older.len(), 3);
    }
}

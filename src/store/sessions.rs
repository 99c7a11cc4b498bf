//! Web sessions, kept server-side so they can be revoked: the cookie holds a random token, the
//! file its hash with the user, the form (CSRF) token and the expiry.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::users::{new_token, token_hash};
use super::{SESSIONS, StoreError, decode, encode};

/// How long a session lasts.
pub const LIFETIME: f64 = 14.0 * 86_400.0;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Session {
    pub email: String,
    /// The token every form of this session must carry.
    pub csrf: String,
    pub created: f64,
    pub expires: f64,
    /// How the user signed in: `password`, `two_factor`, `recovery_code`, `sso`, `proxy`.
    pub method: String,
    /// The password was right; a two-factor code is still to come. Such a session opens
    /// nothing but the code form.
    pub awaiting_code: bool,
}

/// How long the code form waits after the password.
pub const CODE_WAIT: f64 = 5.0 * 60.0;

/// Starts a session signed in by `method`; returns the cookie token and the session.
pub fn start(
    txn: &WriteTransaction,
    email: &str,
    now: f64,
    method: &str,
) -> Result<(String, Session), StoreError> {
    start_with(txn, email, now, method, false)
}

/// Starts a session that waits for a two-factor code.
pub fn start_awaiting_code(
    txn: &WriteTransaction,
    email: &str,
    now: f64,
) -> Result<(String, Session), StoreError> {
    start_with(txn, email, now, "password", true)
}

fn start_with(
    txn: &WriteTransaction,
    email: &str,
    now: f64,
    method: &str,
    awaiting_code: bool,
) -> Result<(String, Session), StoreError> {
    let (token, hash) = new_token();
    let session = Session {
        email: email.to_string(),
        csrf: new_token().0,
        created: now,
        expires: now + if awaiting_code { CODE_WAIT } else { LIFETIME },
        method: method.to_string(),
        awaiting_code,
    };
    txn.open_table(SESSIONS)?
        .insert(hash.as_str(), encode(&session).as_slice())?;
    Ok((token, session))
}

/// The live session a cookie token names.
pub fn get(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    token: &str,
    now: f64,
) -> Result<Option<Session>, StoreError> {
    let Some(row) = table.get(token_hash(token).as_str())? else {
        return Ok(None);
    };
    let session: Session = decode("sessions", row.value())?;
    Ok((session.expires > now).then_some(session))
}

pub fn end(txn: &WriteTransaction, token: &str) -> Result<(), StoreError> {
    txn.open_table(SESSIONS)?
        .remove(token_hash(token).as_str())?;
    Ok(())
}

/// Ends every session of a user (deactivated, or a new password set).
pub fn end_all(txn: &WriteTransaction, email: &str) -> Result<(), StoreError> {
    end_all_but(txn, email, None)
}

/// Ends every session of a user but the one whose cookie token is `keep` (the user who just
/// changed their password stays signed in where they did it).
pub fn end_all_but(
    txn: &WriteTransaction,
    email: &str,
    keep: Option<&str>,
) -> Result<(), StoreError> {
    let kept = keep.map(token_hash);
    let mut table = txn.open_table(SESSIONS)?;
    table.retain(|hash, v| {
        Some(hash) == kept.as_deref()
            || decode::<Session>("sessions", v).is_ok_and(|s| s.email != email)
    })?;
    Ok(())
}

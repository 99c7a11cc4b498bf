//! Accounts of the web UI: email, argon2id password hash, admin flag, and one-time
//! set-password links (kept as hashes, valid for a few days).

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{StoreError, USERS, decode, encode};

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct User {
    pub email: String,
    /// PHC string of an argon2id hash.
    pub password_hash: String,
    pub is_admin: bool,
    pub active: bool,
    pub created: f64,
    /// MD5 of the one-time set-password token, while one is outstanding.
    pub password_token: Option<String>,
    pub password_token_expires: f64,
    /// Alert mail only about issues assigned to this user.
    pub mail_assigned_only: bool,
    /// The base32 secret of two-factor codes, once enrollment is confirmed.
    pub totp_secret: Option<String>,
    /// A secret shown for enrollment, until a code from it confirms it.
    pub totp_pending: Option<String>,
    /// The last time step whose code signed in (a code works once).
    pub totp_step: u64,
    /// SHA-256 hashes of the unused recovery codes.
    pub recovery_codes: Vec<String>,
    /// The single sign-on identity linked to the account: `issuer sub`.
    pub sso_subject: Option<String>,
}

impl User {
    /// Whether signing in with a password also needs a two-factor code.
    pub fn has_two_factor(&self) -> bool {
        self.totp_secret.is_some()
    }
}

/// How long a set-password link an admin makes works.
pub const TOKEN_LIFETIME: f64 = 7.0 * 86_400.0;

/// A new random token (64 hex digits) and the hash that is stored.
pub fn new_token() -> (String, String) {
    let token = format!(
        "{}{}",
        crate::ids::hex(&crate::ids::random_bytes()),
        crate::ids::hex(&crate::ids::random_bytes())
    );
    let hash = token_hash(&token);
    (token, hash)
}

/// What the file keeps of a token.
pub fn token_hash(token: &str) -> String {
    use md5::{Digest, Md5};
    crate::ids::hex(&Md5::digest(token.as_bytes()))
}

fn put(txn: &WriteTransaction, user: &User) -> Result<(), StoreError> {
    txn.open_table(USERS)?
        .insert(user.email.as_str(), encode(user).as_slice())?;
    Ok(())
}

fn existing(txn: &WriteTransaction, email: &str) -> Result<User, StoreError> {
    get(&txn.open_table(USERS)?, email)?
        .ok_or_else(|| StoreError::NotFound(format!("no user {email}")))
}

/// Creates a user without a password and returns the one-time token that sets it.
pub fn create_user(
    txn: &WriteTransaction,
    email: &str,
    is_admin: bool,
    now: f64,
) -> Result<(User, String), StoreError> {
    let (token, hash) = new_token();
    let user = User {
        email: email.trim().to_ascii_lowercase(),
        is_admin,
        active: true,
        created: now,
        password_token: Some(hash),
        password_token_expires: now + TOKEN_LIFETIME,
        ..Default::default()
    };
    insert_new(txn, &user)?;
    Ok((user, token))
}

/// A new one-time set-password token for a user, working for `lifetime` seconds (the old
/// password keeps working until it is used).
pub fn reset_token(
    txn: &WriteTransaction,
    email: &str,
    now: f64,
    lifetime: f64,
) -> Result<String, StoreError> {
    let mut user = existing(txn, email)?;
    let (token, hash) = new_token();
    user.password_token = Some(hash);
    user.password_token_expires = now + lifetime;
    put(txn, &user)?;
    Ok(token)
}

/// The user a set-password token belongs to, if it is valid now.
pub fn by_token(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    token: &str,
    now: f64,
) -> Result<Option<User>, StoreError> {
    let hash = token_hash(token);
    Ok(list(table)?.into_iter().find(|u| {
        u.active
            && u.password_token.as_deref() == Some(hash.as_str())
            && u.password_token_expires > now
    }))
}

/// Sets a password with a one-time token, which is then used up.
pub fn set_password_with_token(
    txn: &WriteTransaction,
    token: &str,
    password_hash: &str,
    now: f64,
) -> Result<User, StoreError> {
    let mut user = by_token(&txn.open_table(USERS)?, token, now)?
        .ok_or_else(|| StoreError::NotFound("this link is invalid or has expired".into()))?;
    user.password_hash = password_hash.to_string();
    user.password_token = None;
    put(txn, &user)?;
    super::sessions::end_all(txn, &user.email)?;
    Ok(user)
}

/// Sets a user's password; their other sessions end (all but `keep`, a session's cookie token).
pub fn set_password(
    txn: &WriteTransaction,
    email: &str,
    password_hash: &str,
    keep: Option<&str>,
) -> Result<User, StoreError> {
    let mut user = existing(txn, email)?;
    user.password_hash = password_hash.to_string();
    put(txn, &user)?;
    super::sessions::end_all_but(txn, &user.email, keep)?;
    Ok(user)
}

/// Changes a user's row with `change`, which may refuse (and then nothing changes).
pub fn update<T>(
    txn: &WriteTransaction,
    email: &str,
    change: impl FnOnce(&mut User) -> Result<T, StoreError>,
) -> Result<(User, T), StoreError> {
    let mut user = existing(txn, email)?;
    let out = change(&mut user)?;
    put(txn, &user)?;
    Ok((user, out))
}

/// Adds a new user (a conflict if the email has an account).
pub fn insert_new(txn: &WriteTransaction, user: &User) -> Result<(), StoreError> {
    if get(&txn.open_table(USERS)?, &user.email)?.is_some() {
        return Err(StoreError::Conflict(format!(
            "user {} exists already",
            user.email
        )));
    }
    put(txn, user)
}

/// Activates or deactivates a user (a deactivated one cannot sign in; their sessions end).
pub fn set_active(txn: &WriteTransaction, email: &str, active: bool) -> Result<User, StoreError> {
    let mut user = existing(txn, email)?;
    user.active = active;
    put(txn, &user)?;
    if !active {
        super::sessions::end_all(txn, email)?;
    }
    Ok(user)
}

/// Sets whether a user wants alert mail only about issues assigned to them.
pub fn set_mail_assigned_only(
    txn: &WriteTransaction,
    email: &str,
    only: bool,
) -> Result<User, StoreError> {
    let mut user = existing(txn, email)?;
    user.mail_assigned_only = only;
    put(txn, &user)?;
    Ok(user)
}

/// Creates an admin or, when `update`, makes an existing account an admin with the new
/// password (its sessions end); an existing account without `update` is a conflict.
pub fn create_superuser(
    txn: &WriteTransaction,
    email: &str,
    password_hash: &str,
    now: f64,
    update: bool,
) -> Result<User, StoreError> {
    let email = email.trim().to_ascii_lowercase();
    let mut table = txn.open_table(USERS)?;
    let found: Option<User> = match table.get(email.as_str())? {
        Some(v) => Some(decode("users", v.value())?),
        None => None,
    };
    if found.is_some() && !update {
        return Err(StoreError::Conflict(format!(
            "a user {email} exists already: pass --update to give it this password and make it an admin"
        )));
    }
    let existed = found.is_some();
    let mut user: User = match found {
        Some(user) => user,
        None => User {
            email: email.clone(),
            created: now,
            ..Default::default()
        },
    };
    user.password_hash = password_hash.to_string();
    user.is_admin = true;
    user.active = true;
    table.insert(email.as_str(), encode(&user).as_slice())?;
    drop(table);
    if existed {
        super::sessions::end_all(txn, &email)?;
    }
    Ok(user)
}

/// A user, from a fresh read transaction.
pub fn find(db: &redb::Database, email: &str) -> Result<Option<User>, StoreError> {
    use redb::ReadableDatabase;
    get(&db.begin_read()?.open_table(USERS)?, email)
}

pub fn get(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    email: &str,
) -> Result<Option<User>, StoreError> {
    table
        .get(email)?
        .map(|v| decode("users", v.value()))
        .transpose()
}

pub fn list(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Vec<User>, StoreError> {
    let mut out = Vec::new();
    for row in table.iter()? {
        out.push(decode("users", row?.1.value())?);
    }
    Ok(out)
}

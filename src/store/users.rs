//! Accounts of the web UI: email, argon2id password hash, admin flag.

use argon2::password_hash::{PasswordHasher, SaltString};
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
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| StoreError::Invalid(format!("no randomness for a salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| StoreError::Invalid(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Invalid(format!("cannot hash the password: {e}")))
}

/// Checks a password against a stored hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Whether text looks like an email address (local part, @, domain, no spaces).
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty() && !domain.is_empty() && !email.contains(char::is_whitespace)
}

/// Creates an admin, or makes an existing account an admin with the new password.
pub fn create_superuser(
    txn: &WriteTransaction,
    email: &str,
    password_hash: &str,
    now: f64,
) -> Result<User, StoreError> {
    let email = email.trim().to_ascii_lowercase();
    if !valid_email(&email) {
        return Err(StoreError::Invalid(format!(
            "'{email}' is not an email address"
        )));
    }
    let mut table = txn.open_table(USERS)?;
    let mut user: User = match table.get(email.as_str())? {
        Some(v) => decode("users", v.value())?,
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
    Ok(user)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!valid_email("nope"));
    }
}

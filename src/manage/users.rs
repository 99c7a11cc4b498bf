//! Accounts of the web UI (and, through their tokens, of the API): admins, users made by an
//! admin with a one-time set-password link, password changes, and deactivation. Passwords are
//! hashed here with argon2id; the store keeps only the hash.

use argon2::password_hash::{PasswordHasher, SaltString};
use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::store::USERS;
use crate::store::audit::{AuditAction, AuditEntry};
use crate::store::backup::Progress;
use crate::store::users::{self, User};

/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

/// A user as the admin pages and the CLI show one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserView {
    pub email: String,
    pub is_admin: bool,
    #[serde(default = "yes")]
    pub active: bool,
    /// Alert mail only about issues assigned to them.
    #[serde(default)]
    pub mail_assigned_only: bool,
    /// Signing in with a password also needs a two-factor code.
    #[serde(default)]
    pub two_factor: bool,
    /// The account is linked to a single sign-on identity.
    #[serde(default)]
    pub single_sign_on: bool,
}

fn yes() -> bool {
    true
}

impl From<&User> for UserView {
    fn from(u: &User) -> UserView {
        UserView {
            email: u.email.clone(),
            is_admin: u.is_admin,
            mail_assigned_only: u.mail_assigned_only,
            active: u.active,
            two_factor: u.has_two_factor(),
            single_sign_on: u.sso_subject.is_some(),
        }
    }
}

/// A one-time link that sets a user's password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetPasswordLink {
    pub email: String,
    pub url: String,
}

/// An email address, trimmed and lowercased, or why it is not one.
fn email_address(email: &str) -> Result<String, ManageError> {
    let email = email.trim().to_ascii_lowercase();
    if !valid_email(&email) {
        return Err(ManageError::Invalid(format!(
            "'{email}' is not an email address"
        )));
    }
    Ok(email)
}

/// Creates an admin, or makes an existing account an admin with the new password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateSuperuser {
    pub email: String,
    /// An argon2id hash: the CLI hashes the password before it leaves the terminal.
    pub password_hash: String,
    /// An existing account of that email gets the password and becomes an admin; without it,
    /// an existing account is a conflict.
    #[serde(default)]
    pub update: bool,
}

impl Operation for CreateSuperuser {
    type Answer = UserView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<UserView, ManageError> {
        actor.require_admin("create admins")?;
        let email = email_address(&self.email)?;
        let now = crate::time::now();
        let (hash, update) = (self.password_hash, self.update);
        let entry = AuditEntry::new(Some(actor.who()), AuditAction::AdminGranted, &email).detail(
            if update {
                "admin, with a new password"
            } else {
                "new admin"
            },
        );
        let user = h.write_audited(entry, move |txn| {
            users::create_superuser(txn, &email, &hash, now, update)
        })?;
        Ok(UserView::from(&user))
    }
}

/// Creates a user without a password; the answer holds the link that sets it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserCreate {
    pub email: String,
    pub admin: bool,
}

impl Operation for UserCreate {
    type Answer = SetPasswordLink;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<SetPasswordLink, ManageError> {
        actor.require_admin("create users")?;
        let email = email_address(&self.email)?;
        let (admin, now) = (self.admin, crate::time::now());
        let e = email.clone();
        let entry = AuditEntry::new(Some(actor.who()), AuditAction::UserCreated, &email)
            .detail(if admin { "admin" } else { "member" });
        let (_, token) =
            h.write_audited(entry, move |txn| users::create_user(txn, &e, admin, now))?;
        Ok(link(h, email, &token))
    }
}

fn link(h: &Handle, email: String, token: &str) -> SetPasswordLink {
    SetPasswordLink {
        email,
        url: format!("{}/set-password/{token}", h.config.base_url()),
    }
}

/// A new set-password link for a user (the old password works until it is used).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserResetLink {
    pub email: String,
}

impl Operation for UserResetLink {
    type Answer = SetPasswordLink;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<SetPasswordLink, ManageError> {
        actor.require_admin("reset passwords")?;
        let email = self.email.trim().to_ascii_lowercase();
        let now = crate::time::now();
        let e = email.clone();
        let entry = AuditEntry::new(Some(actor.who()), AuditAction::PasswordLinkMade, &email);
        let token = h.write_audited(entry, move |txn| {
            users::reset_token(txn, &e, now, users::TOKEN_LIFETIME)
        })?;
        Ok(link(h, email, &token))
    }
}

/// Activates or deactivates a user; a deactivated one cannot sign in and their sessions end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserSetActive {
    pub email: String,
    pub active: bool,
}

impl Operation for UserSetActive {
    type Answer = UserView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<UserView, ManageError> {
        actor.require_admin("activate or deactivate users")?;
        let email = self.email.trim().to_ascii_lowercase();
        if let Actor::User(me) = actor
            && me.email == email
        {
            return Err(ManageError::Invalid(
                "you cannot deactivate yourself".into(),
            ));
        }
        let active = self.active;
        let action = if active {
            AuditAction::UserActivated
        } else {
            AuditAction::UserDeactivated
        };
        let entry = AuditEntry::new(Some(actor.who()), action, &email);
        let user = h.write_audited(entry, move |txn| users::set_active(txn, &email, active))?;
        Ok(UserView::from(&user))
    }
}

/// Makes a user an admin or takes it away (the audit log records who did).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserSetAdmin {
    pub email: String,
    pub admin: bool,
}

impl Operation for UserSetAdmin {
    type Answer = UserView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<UserView, ManageError> {
        actor.require_admin("change who is an admin")?;
        let email = self.email.trim().to_ascii_lowercase();
        if !self.admin && actor.user().is_some_and(|me| me.email == email) {
            return Err(ManageError::Invalid(
                "you cannot take away your own admin role".into(),
            ));
        }
        let admin = self.admin;
        let action = if admin {
            AuditAction::AdminGranted
        } else {
            AuditAction::AdminRevoked
        };
        let entry = AuditEntry::new(Some(actor.who()), action, &email);
        let (user, ()) = h.write_audited(entry, move |txn| {
            users::update(txn, &email, |u| {
                u.is_admin = admin;
                Ok(())
            })
        })?;
        Ok(UserView::from(&user))
    }
}

/// The signed-in user's own mail choice: alert mail only about issues assigned to them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MailChoice {
    pub assigned_only: bool,
}

impl Operation for MailChoice {
    type Answer = UserView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<UserView, ManageError> {
        let Some(me) = actor.user() else {
            return Err(ManageError::Invalid(
                "only a signed-in user has mail choices".into(),
            ));
        };
        let (email, only) = (me.email.clone(), self.assigned_only);
        let user = h.write(move |txn| users::set_mail_assigned_only(txn, &email, only))?;
        Ok(UserView::from(&user))
    }
}

/// Changes the signed-in user's own password, given the current one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordChange {
    pub current: String,
    pub new: String,
    /// The session (its cookie token) that stays signed in; every other session of the user
    /// ends.
    #[serde(default, skip_serializing)]
    pub keep_session: Option<String>,
}

impl Operation for PasswordChange {
    type Answer = UserView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<UserView, ManageError> {
        let Actor::User(me) = actor else {
            return Err(ManageError::Invalid(
                "only a signed-in user changes their own password".into(),
            ));
        };
        if !verify_password(&self.current, &me.password_hash) {
            return Err(ManageError::Invalid(
                "The current password is wrong.".into(),
            ));
        }
        if self.new.chars().count() < MIN_PASSWORD {
            return Err(ManageError::Invalid(
                "The new password needs at least 8 characters.".into(),
            ));
        }
        let hash = hash_password(&self.new)?;
        let email = me.email.clone();
        let keep = self.keep_session;
        let entry = AuditEntry::new(Some(actor.who()), AuditAction::PasswordSet, &email)
            .detail("changed by its owner");
        let user = h.write_audited(entry, move |txn| {
            users::set_password(txn, &email, &hash, keep.as_deref())
        })?;
        Ok(UserView::from(&user))
    }
}

/// Sets a password with a one-time link's token (the token is the permission), which is then
/// used up.
pub fn set_password_with_token(
    h: &Handle,
    token: &str,
    password: &str,
) -> Result<UserView, ManageError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(ManageError::Invalid(
            "A password needs at least 8 characters.".into(),
        ));
    }
    let hash = hash_password(password)?;
    let (token, now) = (token.to_string(), crate::time::now());
    let user = h.write(move |txn| {
        let user = users::set_password_with_token(txn, &token, &hash, now)?;
        let who = crate::store::activity::Who::User(user.email.clone());
        let entry = AuditEntry::new(Some(who), AuditAction::PasswordSet, &user.email)
            .detail("with a one-time link");
        crate::store::audit::record(txn, &entry)?;
        Ok(user)
    })?;
    Ok(UserView::from(&user))
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, ManageError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| ManageError::Storage(format!("no randomness for a salt: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| ManageError::Storage(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ManageError::Invalid(format!("cannot hash the password: {e}")))
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

/// Every account, for the admins' user list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserList;

impl Operation for UserList {
    type Answer = Vec<UserView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<UserView>, ManageError> {
        actor.require_admin("list users")?;
        let txn = h.db.begin_read()?;
        let all = users::list(&txn.open_table(USERS)?)?;
        Ok(all.iter().map(UserView::from).collect())
    }
}

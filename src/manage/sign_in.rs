//! Who may sign in, and how: the second step after a password (a two-factor code or a
//! recovery code), two-factor enrollment, accounts proven by single sign-on or by a trusted
//! proxy's header (linked by verified email once, then by the provider's subject; made on
//! first sign-in when configured; admins by group), and password-reset requests. Every
//! outcome, refusals included, goes into the audit log.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::identity::oidc::Identity;
use crate::identity::totp;
use crate::store::activity::Who;
use crate::store::audit::{self, AuditAction, AuditEntry};
use crate::store::backup::Progress;
use crate::store::tables::Tables;
use crate::store::users::{self, User};
use crate::store::{PROJECT_SLUGS, StoreError, USERS};

/// What an enrolling user is shown: the secret (to type in), and its QR code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TwoFactorSetup {
    pub secret: String,
    pub uri: String,
    /// An `<svg>` element drawn on the server.
    pub qr_svg: String,
}

impl TwoFactorSetup {
    /// What `email` is shown to enroll `secret` in an app (which names it after `issuer`).
    pub fn of(secret: String, email: &str, issuer: &str) -> Result<TwoFactorSetup, ManageError> {
        let uri = totp::uri(&secret, email, issuer);
        let qr_svg = totp::qr_svg(&uri)
            .ok_or_else(|| ManageError::Storage("cannot draw the QR code".into()))?;
        Ok(TwoFactorSetup {
            secret,
            uri,
            qr_svg,
        })
    }
}

/// Starts (or restarts) two-factor enrollment for the signed-in user: a new secret, pending
/// until a code from it confirms it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TwoFactorStart;

fn me(actor: &Actor) -> Result<&User, ManageError> {
    match actor {
        Actor::User(u) => Ok(u),
        _ => Err(ManageError::Invalid(
            "only a signed-in user sets up their own two-factor codes".into(),
        )),
    }
}

impl Operation for TwoFactorStart {
    type Answer = TwoFactorSetup;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<TwoFactorSetup, ManageError> {
        let email = me(actor)?.email.clone();
        let setup = TwoFactorSetup::of(totp::new_secret(), &email, &h.config.organization)?;
        let pending = setup.secret.clone();
        h.write(move |txn| {
            users::update(txn, &email, |u| {
                u.totp_pending = Some(pending);
                Ok(())
            })
        })?;
        Ok(setup)
    }
}

/// Recovery codes, shown once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryCodes {
    pub codes: Vec<String>,
}

/// Confirms enrollment with a code from the pending secret; two-factor codes are then
/// required at sign-in, and the answer holds the recovery codes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TwoFactorConfirm {
    pub code: String,
}

impl Operation for TwoFactorConfirm {
    type Answer = RecoveryCodes;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<RecoveryCodes, ManageError> {
        let email = me(actor)?.email.clone();
        let now = crate::time::now() as u64;
        let (codes, hashes) = totp::new_recovery_codes();
        let entry = AuditEntry::new(Some(actor.who()), AuditAction::TwoFactorEnabled, &email);
        let code = self.code;
        h.write_audited(entry, move |txn| {
            users::update(txn, &email, |u| {
                let secret = u.totp_pending.clone().ok_or_else(|| {
                    StoreError::Conflict("start the two-factor setup first".into())
                })?;
                let step = totp::check(&secret, &code, now, 0).ok_or_else(|| {
                    StoreError::Conflict(
                        "That code is not right: check the phone's clock and type the code \
                         shown now."
                            .into(),
                    )
                })?;
                u.totp_secret = Some(secret);
                u.totp_pending = None;
                u.totp_step = step;
                u.recovery_codes = hashes;
                Ok(())
            })
        })
        .map_err(wrong_code)?;
        Ok(RecoveryCodes { codes })
    }
}

/// A refusal of a code reads as invalid input, not as a clash.
fn wrong_code(e: StoreError) -> ManageError {
    match e {
        StoreError::Conflict(why) => ManageError::Invalid(why),
        other => other.into(),
    }
}

/// Turns two-factor codes off: the user's own (with a current code), or, for an admin, any
/// user's (who lost their phone and recovery codes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TwoFactorDisable {
    /// Another user's email (admins only); none: the actor's own.
    #[serde(default)]
    pub email: Option<String>,
    /// A current code, for one's own.
    #[serde(default)]
    pub code: String,
}

impl Operation for TwoFactorDisable {
    type Answer = super::users::UserView;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<super::users::UserView, ManageError> {
        let (email, own) = match self.email.map(|e| e.trim().to_ascii_lowercase()) {
            Some(e) if actor.user().is_none_or(|u| u.email != e) => {
                actor.require_admin("turn off another user's two-factor codes")?;
                (e, false)
            }
            _ => (me(actor)?.email.clone(), true),
        };
        let now = crate::time::now() as u64;
        let entry = AuditEntry::new(Some(actor.who()), AuditAction::TwoFactorDisabled, &email);
        let code = self.code;
        let (user, ()) = h
            .write_audited(entry, move |txn| {
                users::update(txn, &email, |u| {
                    if own {
                        let secret = u.totp_secret.clone().unwrap_or_default();
                        if totp::check(&secret, &code, now, 0).is_none() {
                            return Err(StoreError::Conflict(
                                "That code is not right; type the one your app shows now.".into(),
                            ));
                        }
                    }
                    u.totp_secret = None;
                    u.totp_pending = None;
                    u.recovery_codes.clear();
                    Ok(())
                })
            })
            .map_err(wrong_code)?;
        Ok(super::users::UserView::from(&user))
    }
}

/// How a second step was passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    Code,
    RecoveryCode,
}

/// Checks the second step of a password sign-in: a two-factor code (once per time step) or
/// an unused recovery code, which is then used up. A wrong one is recorded and refused.
pub fn check_second_factor(
    h: &Handle,
    email: &str,
    code: &str,
    address: std::net::IpAddr,
) -> Result<SecondFactor, ManageError> {
    let now = crate::time::now() as u64;
    let subject = email.to_string();
    let (email, code) = (email.to_string(), code.to_string());
    let outcome = h.write(move |txn| {
        let checked = users::update(txn, &email, |u| {
            let secret = u.totp_secret.clone().unwrap_or_default();
            if let Some(step) = totp::check(&secret, &code, now, u.totp_step) {
                u.totp_step = step;
                return Ok(SecondFactor::Code);
            }
            let hash = totp::recovery_hash(&code);
            match u.recovery_codes.iter().position(|h| *h == hash) {
                Some(at) if code.chars().filter(char::is_ascii_alphanumeric).count() == 10 => {
                    u.recovery_codes.remove(at);
                    Ok(SecondFactor::RecoveryCode)
                }
                _ => Err(StoreError::Conflict("wrong code".into())),
            }
        });
        let who = Some(Who::User(email.clone()));
        match checked {
            Ok((_, how)) => {
                let action = match how {
                    SecondFactor::Code => AuditAction::SignIn,
                    SecondFactor::RecoveryCode => AuditAction::RecoveryCodeUsed,
                };
                let detail = match how {
                    SecondFactor::Code => "password and two-factor code",
                    SecondFactor::RecoveryCode => "password and a recovery code",
                };
                let entry = AuditEntry::new(who, action, &email)
                    .detail(detail)
                    .from_address(address);
                audit::record(txn, &entry)?;
                Ok(Ok(how))
            }
            Err(StoreError::Conflict(_)) => Ok(Err(())),
            Err(e) => Err(e),
        }
    })?;
    match outcome {
        Ok(how) => Ok(how),
        Err(()) => {
            let who = Some(Who::User(subject.clone()));
            let why = "wrong two-factor code";
            record(h, who, AuditAction::SignInFailed, &subject, address, why)?;
            Err(ManageError::Invalid("That code is not right.".into()))
        }
    }
}

/// Records an audit entry on its own (a refusal, where nothing else changes).
pub fn record(
    h: &Handle,
    actor: Option<Who>,
    action: AuditAction,
    subject: &str,
    address: std::net::IpAddr,
    detail: &str,
) -> Result<(), ManageError> {
    let entry = AuditEntry::new(actor, action, subject)
        .detail(detail)
        .from_address(address);
    h.write(move |txn| audit::record(txn, &entry).map(|_| ()))?;
    Ok(())
}

/// How an identity was proven, for the audit log and the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// An OpenID Connect provider's ID token.
    SingleSignOn,
    /// A trusted proxy's header.
    Proxy,
}

impl Proof {
    pub fn method(self) -> &'static str {
        match self {
            Proof::SingleSignOn => "sso",
            Proof::Proxy => "proxy",
        }
    }
}

/// The account a proven identity signs in to: the one linked to the provider's subject, else
/// the one of the (verified) email, linked now; else a new one when the configuration makes
/// accounts on first sign-in. With `admin_group` set, membership decides the admin flag.
/// Refusals name why (and are recorded).
pub fn account_for(
    h: &Handle,
    identity: &Identity,
    proof: Proof,
    address: std::net::IpAddr,
) -> Result<User, ManageError> {
    let refuse = |why: String| -> Result<User, ManageError> {
        record(
            h,
            None,
            AuditAction::SignInFailed,
            if identity.email.is_empty() {
                &identity.subject
            } else {
                &identity.email
            },
            address,
            &why,
        )?;
        Err(ManageError::Forbidden(why))
    };
    let oidc = &h.config.oidc;
    let email = identity.email.clone();
    if !super::users::valid_email(&email) {
        return refuse("the provider sent no email address".into());
    }
    if proof == Proof::SingleSignOn && !identity.email_verified {
        return refuse(format!("the provider has not verified the email {email}"));
    }
    let domain = email.rsplit('@').next().unwrap_or("");
    if proof == Proof::SingleSignOn
        && !oidc.allowed_domains.is_empty()
        && !oidc
            .allowed_domains
            .iter()
            .any(|d| d.trim_start_matches('@').eq_ignore_ascii_case(domain))
    {
        return refuse(format!("{email} is not in an allowed domain"));
    }
    let subject = format!("{} {}", identity.issuer, identity.subject);
    let txn = h.db.begin_read()?;
    let table = txn.open_table(USERS)?;
    let linked = users::list(&table)?
        .into_iter()
        .find(|u| proof == Proof::SingleSignOn && u.sso_subject.as_deref() == Some(&subject));
    let by_email = users::get(&table, &email)?;
    drop((table, txn));
    let auto_create = match proof {
        Proof::SingleSignOn => oidc.auto_create,
        Proof::Proxy => h.config.auth.auto_create,
    };
    let admin = (proof == Proof::SingleSignOn && !oidc.admin_group.is_empty())
        .then(|| identity.groups.contains(&oidc.admin_group));
    let existing = match (linked, by_email) {
        (Some(u), _) => Some(u),
        (None, Some(u)) if proof == Proof::SingleSignOn && u.sso_subject.is_some() => {
            return refuse(format!(
                "{email} is linked to another single sign-on identity"
            ));
        }
        (None, found) => found,
    };
    let who = Some(Who::User(email.clone()));
    let detail = match proof {
        Proof::SingleSignOn => "single sign-on",
        Proof::Proxy => "trusted proxy header",
    };
    match existing {
        Some(user) if !user.active => refuse(format!("the account {} is deactivated", user.email)),
        Some(user) => {
            let account = user.email.clone();
            let link = (proof == Proof::SingleSignOn && user.sso_subject.is_none())
                .then(|| subject.clone());
            let entries =
                sign_in_entries(&user, who, &account, detail, link.is_some(), admin, address);
            Ok(h.write(move |txn| {
                let (user, ()) = users::update(txn, &account, |u| {
                    if let Some(link) = link {
                        u.sso_subject = Some(link);
                    }
                    if let Some(admin) = admin {
                        u.is_admin = admin;
                    }
                    Ok(())
                })?;
                for e in &entries {
                    audit::record(txn, e)?;
                }
                Ok(user)
            })?)
        }
        None if !auto_create => refuse(format!(
            "there is no account for {email} (an admin makes one, or turns on auto_create)"
        )),
        None => {
            let user = User {
                email: email.clone(),
                is_admin: admin.unwrap_or(false),
                active: true,
                created: crate::time::now(),
                sso_subject: (proof == Proof::SingleSignOn).then_some(subject),
                ..Default::default()
            };
            let projects = oidc.default_projects.clone();
            let made = AuditEntry::new(Some(Who::Picket), AuditAction::UserCreated, &email)
                .detail(format!(
                    "on first sign-in ({detail}){}",
                    if user.is_admin { ", admin" } else { "" }
                ))
                .from_address(address);
            let signed = AuditEntry::new(who, AuditAction::SignIn, &email)
                .detail(detail)
                .from_address(address);
            let new = user.clone();
            h.write(move |txn| {
                users::insert_new(txn, &new)?;
                join_projects(txn, &new.email, &projects)?;
                audit::record(txn, &made)?;
                audit::record(txn, &signed)?;
                Ok(())
            })?;
            Ok(user)
        }
    }
}

/// The audit entries of an existing account's sign-in: linked, promoted or demoted, signed in.
fn sign_in_entries(
    user: &User,
    who: Option<Who>,
    email: &str,
    detail: &str,
    linked: bool,
    admin: Option<bool>,
    address: std::net::IpAddr,
) -> Vec<AuditEntry> {
    let mut entries = Vec::new();
    let entry = |action, text: &str| {
        AuditEntry::new(who.clone(), action, email)
            .detail(text)
            .from_address(address)
    };
    if linked {
        entries.push(entry(AuditAction::AccountLinked, "by verified email"));
    }
    match admin {
        Some(true) if !user.is_admin => entries.push(entry(
            AuditAction::AdminGranted,
            "member of the admin group",
        )),
        Some(false) if user.is_admin => {
            entries.push(entry(AuditAction::AdminRevoked, "not in the admin group"))
        }
        _ => {}
    }
    entries.push(entry(AuditAction::SignIn, detail));
    entries
}

/// Makes a new account a member of these projects (slugs that do not exist are skipped).
fn join_projects(
    txn: &redb::WriteTransaction,
    email: &str,
    slugs: &[String],
) -> Result<(), StoreError> {
    let ids: Vec<u64> = {
        let table = txn.open_table(PROJECT_SLUGS)?;
        let mut ids = Vec::new();
        for slug in slugs {
            if let Some(id) = redb::ReadableTable::get(&table, slug.as_str())? {
                ids.push(id.value());
            }
        }
        ids
    };
    let mut tables = Tables::open(txn)?;
    for id in ids {
        if let Some(mut project) = tables.project(id)?
            && !project.members.iter().any(|m| m == email)
        {
            project.members.push(email.to_string());
            tables.put_project(&project)?;
        }
    }
    Ok(())
}

/// Someone asked for a password-reset mail for `email`: the one-time link's token, when an
/// active account with a password (or none yet) has that email and may sign in with a
/// password; `None` otherwise (the asker is told the same either way).
pub fn request_password_reset(
    h: &Handle,
    email: &str,
    address: std::net::IpAddr,
) -> Result<Option<String>, ManageError> {
    let email = email.trim().to_ascii_lowercase();
    let Some(user) = users::find(&h.db, &email)? else {
        return Ok(None);
    };
    if !user.active || !h.config.oidc.password_allowed(&email) {
        return Ok(None);
    }
    let lifetime = h.config.auth.reset_link_lifetime.0.as_secs_f64();
    let now = crate::time::now();
    let entry = AuditEntry::new(None, AuditAction::PasswordResetRequested, &email)
        .detail("a reset link was mailed")
        .from_address(address);
    let token = h.write_audited(entry, move |txn| {
        users::reset_token(txn, &email, now, lifetime)
    })?;
    Ok(Some(token))
}

//! API tokens: make one (its secret is shown once), list them, revoke one, and find who a
//! request's bearer secret speaks for. A token acts as the user who made it; one made on the
//! command line without `--user` acts as the operator. Users manage their own tokens; admins
//! and the operator see and revoke every token.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{Actor, DEFAULT_SCOPES, Handle, ManageError, Operation, SCOPES, TokenActor};
use crate::store::audit::{AuditAction, AuditEntry};
use crate::store::backup::Progress;
use crate::store::tokens::{self, ApiToken};
use crate::store::{API_TOKENS, PROJECTS, USERS, projects, users};

/// A token as lists show it (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// The project it is limited to (slug), if any.
    pub project: Option<String>,
    /// The user it acts as; none: the operator.
    pub user: Option<String>,
    pub created: String,
    /// The secret's first characters.
    pub hint: String,
}

impl TokenView {
    /// A token as shown, its project named by slug (by id once the project is gone).
    fn of(
        token: &ApiToken,
        projects: &impl ReadableTable<u64, &'static [u8]>,
    ) -> Result<TokenView, ManageError> {
        let project = match token.project {
            Some(id) => {
                Some(projects::get(projects, id)?.map_or_else(|| id.to_string(), |p| p.slug))
            }
            None => None,
        };
        Ok(TokenView {
            id: token.id.to_string(),
            name: token.name.clone(),
            scopes: token.scopes.clone(),
            project,
            user: token.user.clone(),
            created: crate::time::rfc3339(token.created),
            hint: token.hint.clone(),
        })
    }
}

/// Makes a token. Without scopes it gets the default set; without a user it acts as whoever
/// makes it (the operator on the command line, the signed-in user in the UI).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenCreate {
    pub name: String,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Limit it to this project (slug or id).
    #[serde(default)]
    pub project: Option<String>,
    /// The user it acts as (the operator and admins may name another user).
    #[serde(default)]
    pub user: Option<String>,
}

/// A new token, with its secret: printed once, kept nowhere.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenCreated {
    pub id: String,
    pub name: String,
    pub token: String,
    pub scopes: Vec<String>,
    pub project: Option<String>,
    pub user: Option<String>,
}

/// Checks scope names against Sentry's and sorts them; an empty list is refused.
fn scope_list(asked: Option<Vec<String>>) -> Result<Vec<String>, ManageError> {
    let mut scopes: Vec<String> = match asked {
        None => DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
        Some(list) => list
            .iter()
            .flat_map(|s| s.split([',', ' ']))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    };
    if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err(ManageError::Invalid(format!(
            "scopes: '{bad}' is not a scope (one of {})",
            SCOPES.join(", ")
        )));
    }
    if scopes.is_empty() {
        return Err(ManageError::Invalid("scopes: give at least one".into()));
    }
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

impl Operation for TokenCreate {
    type Answer = TokenCreated;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<TokenCreated, ManageError> {
        if matches!(actor, Actor::Token(_)) {
            return Err(ManageError::Forbidden(
                "a token cannot make tokens; sign in or use the command line".into(),
            ));
        }
        let name = self.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ManageError::Invalid(
                "name: give the token a name of at most 100 characters".into(),
            ));
        }
        let scopes = scope_list(self.scopes)?;
        let user = match (
            self.user.map(|u| u.trim().to_ascii_lowercase()),
            actor.user(),
        ) {
            (None, me) => me.cloned(),
            (Some(email), me) if me.is_some_and(|m| m.email == email) => me.cloned(),
            (Some(email), _) => {
                actor.require_admin("make tokens for other users")?;
                let txn = h.db.begin_read()?;
                let user = users::get(&txn.open_table(USERS)?, &email)?
                    .filter(|u| u.active)
                    .ok_or_else(|| {
                        ManageError::NotFound(format!("user: no active user {email}"))
                    })?;
                Some(user)
            }
        };
        // The project must be one the token's user may see.
        let as_user = match &user {
            Some(u) => Actor::User(u.clone()),
            None => Actor::Operator,
        };
        let project = match &self.project {
            Some(p) => Some(h.project(&as_user, p)?),
            None => None,
        };
        let token = ApiToken {
            name,
            user: user.map(|u| u.email),
            scopes,
            project: project.as_ref().map(|p| p.id),
            created: crate::time::now(),
            ..Default::default()
        };
        let subject = token.name.clone();
        let entry = AuditEntry::new(Some(actor.who()), AuditAction::TokenCreated, &subject).detail(
            format!(
                "{} for {}",
                token.scopes.join(" "),
                token.user.as_deref().unwrap_or("the operator")
            ),
        );
        let (token, secret) = h.write_audited(entry, move |txn| tokens::create(txn, token))?;
        Ok(TokenCreated {
            id: token.id.to_string(),
            name: token.name,
            token: secret,
            scopes: token.scopes,
            project: project.map(|p| p.slug),
            user: token.user,
        })
    }
}

/// The tokens the actor may see: their own, or every one for admins and the operator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenList;

impl Operation for TokenList {
    type Answer = Vec<TokenView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<TokenView>, ManageError> {
        let txn = h.db.begin_read()?;
        let all = tokens::list(&txn.open_table(API_TOKENS)?)?;
        let projects = txn.open_table(PROJECTS)?;
        all.iter()
            .filter(|t| may_manage(actor, t))
            .map(|t| TokenView::of(t, &projects))
            .collect()
    }
}

/// Whether the actor may see and revoke a token.
fn may_manage(actor: &Actor, token: &ApiToken) -> bool {
    match actor {
        Actor::Token(_) => false,
        _ if actor.is_admin() => true,
        _ => actor
            .user()
            .is_some_and(|u| token.user.as_deref() == Some(u.email.as_str())),
    }
}

/// Revokes a token by id: requests with it are refused from then on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRevoke {
    pub id: String,
}

impl Operation for TokenRevoke {
    type Answer = TokenView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<TokenView, ManageError> {
        let missing = || ManageError::NotFound(format!("no token {}", self.id));
        let id: u64 = self.id.trim().parse().map_err(|_| missing())?;
        let txn = h.db.begin_read()?;
        let token = tokens::list(&txn.open_table(API_TOKENS)?)?
            .into_iter()
            .find(|t| t.id == id && may_manage(actor, t))
            .ok_or_else(missing)?;
        drop(txn);
        let entry = AuditEntry::new(Some(actor.who()), AuditAction::TokenRevoked, &token.name)
            .detail(format!("id {}", token.id));
        let revoked = h.write_audited(entry, move |txn| tokens::revoke(txn, token.id))?;
        TokenView::of(&revoked, &h.db.begin_read()?.open_table(PROJECTS)?)
    }
}

impl Handle {
    /// The actor a bearer secret speaks for. A secret that is unknown (or revoked), or whose
    /// user is gone or deactivated, answers `None`.
    pub fn authenticate(&self, secret: &str) -> Result<Option<Actor>, ManageError> {
        let txn = self.db.begin_read()?;
        let Some(token) = tokens::by_secret(&txn.open_table(API_TOKENS)?, secret)? else {
            return Ok(None);
        };
        let user = match &token.user {
            Some(email) => match users::get(&txn.open_table(USERS)?, email)? {
                Some(u) if u.active => Some(u),
                _ => return Ok(None),
            },
            None => None,
        };
        Ok(Some(Actor::Token(Box::new(TokenActor { token, user }))))
    }
}

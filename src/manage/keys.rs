//! Client keys: the public part of a DSN. A project has one or more; revoking one refuses
//! every event sent with it from then on, and each may have its own rate limit.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use super::{Actor, Handle, ManageError, Operation};
use crate::ids::RateLimit;
use crate::store::backup::Progress;
use crate::store::projects::{self, ProjectKey};
use crate::store::{KEYS, PROJECTS};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyView {
    pub public_key: String,
    pub secret_key: String,
    pub project: u64,
    pub active: bool,
    pub created: String,
    pub dsn: String,
    /// Its own limit; `null` uses `rate_limits.per_key_per_minute`.
    pub rate_limit: Option<RateLimit>,
}

impl KeyView {
    fn of(h: &Handle, key: &ProjectKey) -> KeyView {
        KeyView {
            public_key: key.public_key.clone(),
            secret_key: key.secret_key.clone(),
            project: key.project,
            active: key.active,
            created: crate::time::rfc3339(key.created),
            dsn: h.config.dsn(&key.public_key, key.project),
            rate_limit: key.rate_limit,
        }
    }
}

impl Handle {
    /// A key by its public part, if the actor may see its project.
    /// A key the actor may change: one of a project they own.
    fn key(&self, actor: &Actor, public_key: &str) -> Result<ProjectKey, ManageError> {
        let txn = self.db.begin_read()?;
        let key = projects::key(&txn.open_table(KEYS)?, public_key)?;
        let project = match &key {
            Some(k) => {
                projects::get(&txn.open_table(PROJECTS)?, k.project)?.filter(|p| actor.may_see(p))
            }
            None => None,
        };
        match (key, project) {
            (Some(key), Some(project)) => {
                actor.require_owner(&project, "change its keys")?;
                Ok(key)
            }
            _ => Err(ManageError::NotFound(format!("no key {public_key}"))),
        }
    }
}

/// A project's keys, active or not.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyList {
    pub project: String,
}

impl Operation for KeyList {
    type Answer = Vec<KeyView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<KeyView>, ManageError> {
        actor.require_scope("project:read")?;
        let project = h.project(actor, &self.project)?;
        let txn = h.db.begin_read()?;
        let keys = projects::keys(&txn.open_table(KEYS)?)?;
        Ok(keys
            .iter()
            .filter(|k| k.project == project.id)
            .map(|k| KeyView::of(h, k))
            .collect())
    }
}

/// Another key for a project.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyCreate {
    pub project: String,
}

impl Operation for KeyCreate {
    type Answer = KeyView;
    const CHANGES_KEYS: bool = true;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<KeyView, ManageError> {
        let project = h.owned_project(actor, &self.project, "make keys")?.id;
        let now = crate::time::now();
        let key = h.write(move |txn| projects::create_key(txn, project, now))?;
        Ok(KeyView::of(h, &key))
    }
}

/// Revokes a key: events sent with it are refused from then on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRevoke {
    pub public_key: String,
}

impl Operation for KeyRevoke {
    type Answer = KeyView;
    const CHANGES_KEYS: bool = true;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<KeyView, ManageError> {
        let public_key = h.key(actor, &self.public_key)?.public_key;
        let key = h.write(move |txn| projects::revoke_key(txn, &public_key))?;
        Ok(KeyView::of(h, &key))
    }
}

/// Gives a key its own rate limit, or (with `None`) returns it to the default.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRateLimit {
    pub public_key: String,
    pub limit: Option<RateLimit>,
}

impl Operation for KeyRateLimit {
    type Answer = KeyView;
    const CHANGES_KEYS: bool = true;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<KeyView, ManageError> {
        let public_key = h.key(actor, &self.public_key)?.public_key;
        let limit = self.limit;
        let key = h.write(move |txn| projects::set_rate_limit(txn, &public_key, limit))?;
        Ok(KeyView::of(h, &key))
    }
}

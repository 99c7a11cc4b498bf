//! The key cache: every client key in memory, so authenticating an ingest request reads
//! nothing from the file, and each project's privacy settings and inbound filters, which the
//! intake workers apply to every event. Reloaded whole after any management write that
//! touches keys or projects. It answers with the key or the reason it refuses one; what that means on the wire
//! is intake's business.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use redb::{Database, ReadableDatabase};

use super::projects::{self, ProjectKey};
use super::{KEYS, PROJECTS, StoreError};
use crate::event::filters::InboundFilters;
use crate::event::scrub::Privacy;

#[derive(Default)]
pub struct KeyCache {
    keys: RwLock<HashMap<String, ProjectKey>>,
    policies: RwLock<HashMap<u64, Arc<Policy>>>,
}

/// What intake applies to a project's events.
#[derive(Debug, Default, PartialEq)]
pub struct Policy {
    pub privacy: Privacy,
    pub filters: InboundFilters,
}

/// Why a key may not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.as_str())]
pub enum KeyRefusal {
    Unknown,
    Revoked,
    WrongSecret,
    OtherProject,
}

impl KeyRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRefusal::Unknown => "unknown public key",
            KeyRefusal::Revoked => "the key has been revoked",
            KeyRefusal::WrongSecret => "the secret key does not match",
            KeyRefusal::OtherProject => "the key belongs to another project",
        }
    }
}

impl KeyCache {
    pub fn load(db: &Database) -> Result<KeyCache, StoreError> {
        let cache = KeyCache::default();
        cache.reload(db)?;
        Ok(cache)
    }

    pub fn reload(&self, db: &Database) -> Result<(), StoreError> {
        let txn = db.begin_read()?;
        let all = projects::keys(&txn.open_table(KEYS)?)?;
        let map = all.into_iter().map(|k| (k.public_key.clone(), k)).collect();
        let policies = projects::list(&txn.open_table(PROJECTS)?)?
            .into_iter()
            .map(|p| {
                let policy = Policy {
                    privacy: p.privacy,
                    filters: p.filters,
                };
                (p.id, Arc::new(policy))
            })
            .collect();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = map;
        *self.policies.write().unwrap_or_else(|e| e.into_inner()) = policies;
        Ok(())
    }

    /// A project's privacy settings and filters (the defaults for one not loaded yet).
    pub fn policy(&self, project: u64) -> Arc<Policy> {
        self.policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&project)
            .cloned()
            .unwrap_or_default()
    }

    /// The key named by `public_key` (and `secret`, when the client sent one), if it may send
    /// to `path_project` (the id in the URL).
    pub fn authorize(
        &self,
        public_key: &str,
        secret: Option<&str>,
        path_project: Option<u64>,
    ) -> Result<ProjectKey, KeyRefusal> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        let key = keys.get(public_key).ok_or(KeyRefusal::Unknown)?;
        if !key.active {
            return Err(KeyRefusal::Revoked);
        }
        if let Some(secret) = secret
            && !constant_time_eq(secret.as_bytes(), key.secret_key.as_bytes())
        {
            return Err(KeyRefusal::WrongSecret);
        }
        match path_project {
            Some(p) if p != key.project => Err(KeyRefusal::OtherProject),
            _ => Ok(key.clone()),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

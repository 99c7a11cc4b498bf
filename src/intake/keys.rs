//! The key cache: every client key in memory, so authenticating a request reads nothing from
//! the file. Reloaded whole after any management write that touches keys or projects.

use std::collections::HashMap;
use std::sync::RwLock;

use redb::{Database, ReadableDatabase};

use super::IntakeError;
use super::auth::Credentials;
use crate::store::projects::{self, ProjectKey};
use crate::store::{KEYS, StoreError};

#[derive(Default)]
pub struct KeyCache {
    keys: RwLock<HashMap<String, ProjectKey>>,
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
        if let Ok(mut keys) = self.keys.write() {
            *keys = map;
        }
        Ok(())
    }

    /// The key these credentials name, if it may send to `path_project` (the id in the URL).
    pub fn authorize(
        &self,
        creds: &Credentials,
        path_project: Option<u64>,
    ) -> Result<ProjectKey, IntakeError> {
        let keys = self
            .keys
            .read()
            .map_err(|_| IntakeError::Unavailable("key cache poisoned".into()))?;
        let key = keys
            .get(&creds.public_key)
            .ok_or(IntakeError::Rejected("unknown public key"))?;
        if !key.active {
            return Err(IntakeError::Rejected("the key has been revoked"));
        }
        if let Some(secret) = &creds.secret_key
            && !constant_time_eq(secret.as_bytes(), key.secret_key.as_bytes())
        {
            return Err(IntakeError::Rejected("the secret key does not match"));
        }
        match path_project {
            Some(p) if p != key.project => {
                Err(IntakeError::Rejected("the key belongs to another project"))
            }
            _ => Ok(key.clone()),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

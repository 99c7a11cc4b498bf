//! The writer's issue cache: fingerprint → issue row, so that the hot path of an event for a
//! known issue reads nothing from the file. Only the writer touches it, and it is updated
//! only after a commit succeeds, so it never holds what the file does not.

use std::num::NonZeroUsize;

use lru::LruCache;
use redb::WriteTransaction;

use crate::store::StoreError;
use crate::store::issues::{self, Issue};

pub struct IssueCache {
    lru: LruCache<(u64, [u8; 16]), Issue>,
}

impl IssueCache {
    pub fn new(capacity: usize) -> IssueCache {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        IssueCache {
            lru: LruCache::new(capacity),
        }
    }

    /// The issue a fingerprint leads to: from the cache, else from the file.
    pub fn load(
        &mut self,
        txn: &WriteTransaction,
        project: u64,
        hash: &[u8; 16],
    ) -> Result<Option<Issue>, StoreError> {
        if let Some(issue) = self.lru.get(&(project, *hash)) {
            return Ok(Some(issue.clone()));
        }
        issues::by_hash(txn, project, hash)
    }

    /// Records an issue as committed.
    pub fn put(&mut self, hash: [u8; 16], issue: Issue) {
        self.lru.put((issue.project, hash), issue);
    }

    /// Forgets everything (after a failed commit or a management write).
    pub fn clear(&mut self) {
        self.lru.clear();
    }
}

//! The writer's issue cache: fingerprint → issue row, so that the hot path of an event for a
//! known issue reads nothing from the file. Only the writer touches it, and it is updated
//! only after a commit succeeds, so it never holds what the file does not.

use std::num::NonZeroUsize;

use crate::store::issues::Issue;
use lru::LruCache;

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

    /// The committed issue a fingerprint leads to, if cached.
    pub fn get(&mut self, project: u64, hash: &[u8; 16]) -> Option<Issue> {
        self.lru.get(&(project, *hash)).cloned()
    }

    /// Records an issue as committed.
    pub fn put(&mut self, hash: [u8; 16], issue: Issue) {
        self.lru.put((issue.project, hash), issue);
    }

    /// Forgets one issue (a management write changed it).
    pub fn forget(&mut self, project: u64, issue: u64) {
        let keys: Vec<(u64, [u8; 16])> = self
            .lru
            .iter()
            .filter(|(_, i)| i.project == project && i.id == issue)
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            self.lru.pop(&key);
        }
    }

    /// Forgets everything (after a failed commit or a management write).
    pub fn clear(&mut self) {
        self.lru.clear();
    }
}

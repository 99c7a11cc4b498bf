//! Each project's issues as of some commit, kept in memory for the issue list and the
//! projects page, and refreshed by re-reading only the issues that later commits changed.

use std::collections::HashMap;
use std::sync::Arc;

use redb::ReadableDatabase;

use super::Web;
use crate::store::issues::{self, Issue};
use crate::store::{ISSUES, StoreError};

/// A project's issues as of some commit, with what the list's text search looks at.
pub struct IssueSnapshot {
    pub(super) version: u64,
    pub(super) issues: Vec<Arc<Issue>>,
    index: HashMap<u64, usize>,
    /// Lowercased title and culprit of each issue.
    pub(super) haystacks: Vec<Arc<str>>,
    /// Every environment and release the issues name (for the list's filters).
    pub(super) environments: std::collections::BTreeSet<String>,
    pub(super) releases: std::collections::BTreeSet<String>,
}

fn haystack(issue: &Issue) -> Arc<str> {
    crate::manage::search::haystack(issue).into()
}

impl IssueSnapshot {
    fn put(&mut self, issue: Issue) {
        let text = haystack(&issue);
        for e in &issue.environments {
            if !self.environments.contains(e) {
                self.environments.insert(e.clone());
            }
        }
        for r in &issue.releases {
            if !self.releases.contains(r) {
                self.releases.insert(r.clone());
            }
        }
        match self.index.get(&issue.id) {
            Some(&at) => {
                self.issues[at] = Arc::new(issue);
                self.haystacks[at] = text;
            }
            None => {
                self.index.insert(issue.id, self.issues.len());
                self.issues.push(Arc::new(issue));
                self.haystacks.push(text);
            }
        }
    }
}

/// A project's issues as of the last commit: the cached snapshot, refreshed with the issues
/// changed since (or read whole when that cannot be told).
pub(super) fn project_issues(web: &Web, project: u64) -> Result<Arc<IssueSnapshot>, StoreError> {
    use std::sync::atomic::Ordering;
    // The version first: what is read after it is at least that new.
    let version = web.stats.version.load(Ordering::Acquire);
    let cached = web
        .snapshots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&project)
        .cloned();
    if let Some(snapshot) = &cached
        && snapshot.version == version
    {
        return Ok(snapshot.clone());
    }
    let changed = cached.as_ref().and_then(|s| {
        web.stats
            .changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .since(s.version, project)
    });
    let txn = web.handle.db.begin_read()?;
    let table = txn.open_table(ISSUES)?;
    let fresh = match (cached, changed) {
        (Some(old), Some(ids)) => {
            let mut next = IssueSnapshot {
                version,
                issues: old.issues.clone(),
                index: old.index.clone(),
                haystacks: old.haystacks.clone(),
                environments: old.environments.clone(),
                releases: old.releases.clone(),
            };
            for id in ids {
                if let Some(issue) = issues::get(&table, project, id)? {
                    next.put(issue);
                }
            }
            next
        }
        _ => {
            let mut next = IssueSnapshot {
                version,
                issues: Vec::new(),
                index: HashMap::new(),
                haystacks: Vec::new(),
                environments: Default::default(),
                releases: Default::default(),
            };
            for issue in issues::list(&table, project, None)? {
                next.put(issue);
            }
            next
        }
    };
    let fresh = Arc::new(fresh);
    web.snapshots
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(project, fresh.clone());
    Ok(fresh)
}

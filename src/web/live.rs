//! Live updates of the issue list and the issue page: a JSON endpoint that says what changed
//! since the commit a page shows, answered from memory (the writer's change log) and the few
//! issue rows that changed, and the small script, served from picket's own origin, that
//! polls it while the tab is visible and marks what changed. Pages work without it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use hyper::StatusCode;
use serde_json::json;

use redb::ReadableDatabase;

use super::{Nav, Page, Visitor, Web, not_found, page};
use crate::store::issues::{self, Issue};
use crate::store::{ISSUES, StoreError};

/// The script: polls every few seconds while the tab is visible.
pub const SCRIPT: &str = include_str!("live.js");

/// At most this many changed issues are listed in one answer (the page reloads past it).
const MAX_CHANGED: usize = 200;

/// `GET /projects/{slug}/live?since=V[&issue=N]`: the current version, and the issues that
/// changed after version `V` (only issue `N`, if given) with their figures; `reload` when that
/// cannot be told (a management change, or too long ago).
pub fn live(web: &Web, visitor: &Visitor, slug: &str, query: &HashMap<String, String>) -> Page {
    let Some(project) = web.visible_project(visitor, slug) else {
        return not_found(Nav::of(visitor));
    };
    let since: u64 = query.get("since").and_then(|v| v.parse().ok()).unwrap_or(0);
    let only: Option<u64> = query.get("issue").and_then(|v| v.parse().ok());
    let version = web.stats.version.load(Ordering::Acquire);
    if since >= version {
        return answer(json!({ "version": version, "changed": [], "reload": false }));
    }
    let changed = web
        .stats
        .changes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .since(since, project.id);
    let Some(mut ids) = changed else {
        return answer(json!({ "version": version, "changed": [], "reload": true }));
    };
    if let Some(only) = only {
        ids.retain(|i| *i == only);
    }
    if ids.len() > MAX_CHANGED {
        return answer(json!({ "version": version, "changed": [], "reload": true }));
    }
    // Only the changed issues are read (a few rows), not the project's list.
    let read = || -> Result<Vec<Issue>, StoreError> {
        let txn = web.handle.db.begin_read()?;
        let table = txn.open_table(ISSUES)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            out.extend(issues::get(&table, project.id, *id)?);
        }
        Ok(out)
    };
    let found = match read() {
        Ok(found) => found,
        Err(e) => {
            return page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                json!({ "detail": e.to_string() }).to_string(),
            );
        }
    };
    let changed: Vec<_> = found
        .iter()
        .map(|i| {
            json!({
                "id": i.id,
                "title": i.title,
                "count": i.count,
                "status": i.status.as_str(),
                "first_seen": crate::time::rfc3339(i.first_seen),
                "last_seen": crate::time::rfc3339(i.last_seen),
            })
        })
        .collect();
    answer(json!({ "version": version, "changed": changed, "reload": false }))
}

fn answer(body: serde_json::Value) -> Page {
    page(StatusCode::OK, "application/json", body.to_string())
}

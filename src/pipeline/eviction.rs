//! Eviction: the writer keeps the file within its count caps and disk budget in the same
//! transaction that crosses them (per issue, then per project, then the whole file); the
//! janitor (`crate::janitor`) deletes events by age. A transaction evicts a bounded number of
//! events ([`most_evicted`]), a few times what it stores: a store far over a cap just lowered
//! comes down over the following batches, while events keep being answered at once. What goes
//! first when a project is over its cap is not simply the oldest event: the issues with the
//! most stored events are thinned first, oldest events first, so that a flood is thinned while
//! rare issues keep their history. An issue's first and latest events are never evicted, and
//! nothing users count on changes: `count`, first and last seen, tag values and hourly counts
//! stay as they were; only `stored` goes down.

use std::collections::{BinaryHeap, HashMap};

use crate::store::StoreError;
use crate::store::issues::Issue;
use crate::store::projects::Project;
use crate::store::tables::Tables;

/// Count caps; 0 means none.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caps {
    pub per_project: u64,
    pub per_issue: u64,
}

/// A project over its cap is brought this fraction below it, so eviction runs in batches.
const PROJECT_SLACK: u64 = 20;

/// The fewest events a transaction may evict, however few it stores.
const MIN_EVICTED: u64 = 1_000;

/// The most events a transaction storing `stored` events evicts: enough to outpace what it
/// adds (so a store over its caps comes down under any flow), few enough that the batch's
/// requests are answered in milliseconds even when a cap was just lowered far below what the
/// file holds.
pub fn most_evicted(stored: usize) -> u64 {
    (stored as u64).saturating_mul(4).max(MIN_EVICTED)
}

/// Evicts up to `n` of an issue's oldest events, never its first or latest. Returns how many.
fn evict(rows: &mut Tables<'_>, issue: &mut Issue, n: u64) -> Result<u64, StoreError> {
    let wanted = usize::try_from(n).unwrap_or(usize::MAX);
    let candidates = rows.oldest_events(issue.project, issue.id, wanted.saturating_add(2))?;
    let mut removed = 0;
    for (seq, id) in candidates {
        if removed >= n {
            break;
        }
        if id == issue.first_event || id == issue.last_event {
            continue;
        }
        rows.delete_event(issue.project, issue.id, seq, &id)?;
        removed += 1;
    }
    issue.stored -= removed.min(issue.stored);
    Ok(removed)
}

fn hash_key(issue: &Issue) -> (u64, [u8; 16]) {
    let mut hash = [0u8; 16];
    if issue.hash.len() == 16 {
        hash.copy_from_slice(&issue.hash);
    }
    (issue.project, hash)
}

/// Applies the caps to the issues and projects a batch touched, evicting at most `most`
/// events. Issues it changes beyond those are added to `touched`, so the caller writes them.
/// Returns the events evicted.
pub fn enforce_caps(
    rows: &mut Tables<'_>,
    touched: &mut HashMap<(u64, [u8; 16]), Issue>,
    projects: &mut HashMap<u64, Project>,
    caps: Caps,
    most: u64,
) -> Result<u64, StoreError> {
    let mut evicted = 0;
    if caps.per_issue > 0 {
        for issue in touched.values_mut() {
            if issue.stored > caps.per_issue && evicted < most {
                let excess = (issue.stored - caps.per_issue).min(most - evicted);
                let n = evict(rows, issue, excess)?;
                if let Some(p) = projects.get_mut(&issue.project) {
                    p.stored -= n.min(p.stored);
                }
                evicted += n;
            }
        }
    }
    for project in projects.values_mut() {
        // A project's own cap, set from the CLI, wins over the configured one.
        let cap = project.max_events.unwrap_or(caps.per_project);
        if cap == 0 || project.stored <= cap || evicted >= most {
            continue;
        }
        let target = cap - cap / PROJECT_SLACK;
        let issues = latest_issues(rows, touched, &[project.id])?;
        let excess = (project.stored - target).min(most - evicted);
        let removed: u64 = thin(rows, touched, issues, excess)?.values().sum();
        project.stored -= removed.min(project.stored);
        evicted += removed;
    }
    Ok(evicted)
}

/// Every issue of these projects in its newest state: the batch's own where it has one.
fn latest_issues(
    rows: &Tables<'_>,
    touched: &HashMap<(u64, [u8; 16]), Issue>,
    projects: &[u64],
) -> Result<HashMap<(u64, u64), Issue>, StoreError> {
    let mut issues = HashMap::new();
    for &project in projects {
        for issue in rows.project_issues(project)? {
            issues.insert((project, issue.id), issue);
        }
    }
    for issue in touched.values().filter(|i| projects.contains(&i.project)) {
        issues.insert((issue.project, issue.id), issue.clone());
    }
    Ok(issues)
}

/// Evicts about `excess` events from `issues`, the issues with the most stored events first,
/// until they are level with the next largest. Issues it changes are added to `touched`.
/// Returns the events evicted per project.
fn thin(
    rows: &mut Tables<'_>,
    touched: &mut HashMap<(u64, [u8; 16]), Issue>,
    mut issues: HashMap<(u64, u64), Issue>,
    excess: u64,
) -> Result<HashMap<u64, u64>, StoreError> {
    let mut heap: BinaryHeap<(u64, (u64, u64))> =
        issues.iter().map(|(key, i)| (i.stored, *key)).collect();
    let mut evicted: HashMap<u64, u64> = HashMap::new();
    let mut total = 0;
    while total < excess {
        let Some((stored, key)) = heap.pop() else {
            break;
        };
        if stored <= 2 {
            break; // only first and latest events are left anywhere
        }
        let next = heap.peek().map_or(0, |(s, _)| *s);
        let n = (stored - next + 1).min(excess - total).clamp(1, 1000);
        let Some(issue) = issues.get_mut(&key) else {
            continue;
        };
        let removed = evict(rows, issue, n)?;
        *evicted.entry(key.0).or_default() += removed;
        total += removed;
        touched.insert(hash_key(issue), issue.clone());
        if removed > 0 {
            heap.push((issue.stored, key));
        }
    }
    Ok(evicted)
}

/// Keeps the data file within `retention.max_disk`. redb reuses freed pages but never gives
/// space back to the filesystem by itself (only `compact` does), and it grows its file in steps
/// (doubling, then a region at a time). So the budget is kept by never letting the file need a
/// step that would cross it: once the next step would, the stored events are capped at what the
/// file holds, less a margin for copy-on-write. What the file holds is learnt from its history:
/// the number of events stored when the file last had to grow, scaled to its new length.
#[derive(Debug)]
pub struct DiskBudget {
    max: u64,
    file: std::path::PathBuf,
    last_len: u64,
    last_total: u64,
    /// Events per byte of file, measured when the file had to grow (kept in the file).
    density: Option<f64>,
    loaded: bool,
    cap: Option<u64>,
}

/// The share of what the file holds that events may use, leaving the rest for the pages a
/// commit writes before the ones it freed can be reused.
const DISK_FILL: f64 = 0.8;

impl DiskBudget {
    pub fn new(max: u64, file: std::path::PathBuf) -> DiskBudget {
        DiskBudget {
            max,
            file,
            last_len: 0,
            last_total: 0,
            density: None,
            loaded: false,
            cap: None,
        }
    }

    /// The number of stored events the file has room for, given `total` stored now, or `None`
    /// while the file may still grow within the budget.
    pub fn cap(&mut self, rows: &mut Tables<'_>, total: u64) -> Result<Option<u64>, StoreError> {
        if !self.loaded {
            self.density = rows.disk_density()?;
            self.loaded = true;
        }
        let Ok(file_len) = std::fs::metadata(&self.file).map(|m| m.len()) else {
            return Ok(self.cap);
        };
        // Source-map uploads and attachments live in the file too: events get what they
        // leave. Attachments go with their events, so evicting events makes room for both.
        let uploads = rows.artifact_bytes()? + rows.attachment_bytes()?;
        let len = file_len.saturating_sub(uploads);
        let max = self.max.saturating_sub(uploads);
        if len > self.last_len {
            // It grew: the shorter file was full with the events stored before this batch.
            if self.last_len > 0 && self.last_total > 0 {
                let density = self.last_total as f64 / self.last_len as f64;
                rows.set_disk_density(density)?;
                self.density = Some(density);
            }
            self.last_len = len;
        }
        self.last_total = total;
        let cap = if crate::store::next_growth(file_len) <= self.max {
            None
        } else {
            // Without a measured growth, assume the file is full now: a smaller cap, the safe side.
            let density = self.density.unwrap_or(total as f64 / len.max(1) as f64);
            Some((density * len.min(max) as f64 * DISK_FILL) as u64)
        };
        if cap != self.cap {
            match cap {
                Some(n) if file_len > self.max => tracing::warn!(
                    "the data file ({file_len} bytes, {uploads} of them source maps and attachments) is larger \
                     than retention.max_disk ({} bytes): keeping at most {n} events; \
                     `picket compact` returns the space",
                    self.max
                ),
                Some(n) => tracing::info!(
                    "the data file ({file_len} bytes, {uploads} of them source maps and attachments) is as large \
                     as retention.max_disk ({} bytes) lets it grow: keeping at most {n} events",
                    self.max
                ),
                None => tracing::info!("the data file has room to grow within retention.max_disk"),
            }
            self.cap = cap;
        }
        Ok(cap)
    }
}

/// Brings the events stored in the whole file (`total`, over the projects `all`) down to
/// `cap` (less the slack), thinning the largest issues of every project first, by at most
/// `most` events in this transaction. Returns the events evicted.
pub fn enforce_total(
    rows: &mut Tables<'_>,
    touched: &mut HashMap<(u64, [u8; 16]), Issue>,
    projects: &mut HashMap<u64, Project>,
    all: &[Project],
    total: u64,
    cap: u64,
    most: u64,
) -> Result<u64, StoreError> {
    if total <= cap || most == 0 {
        return Ok(0);
    }
    let target = cap - cap / PROJECT_SLACK;
    let ids: Vec<u64> = all.iter().map(|p| p.id).collect();
    let issues = latest_issues(rows, touched, &ids)?;
    let evicted = thin(rows, touched, issues, (total - target).min(most))?;
    for project in all {
        if let Some(&n) = evicted.get(&project.id) {
            let p = projects
                .entry(project.id)
                .or_insert_with(|| project.clone());
            p.stored -= n.min(p.stored);
        }
    }
    Ok(evicted.values().sum())
}

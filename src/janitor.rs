//! The janitor: a worker of the server that deletes events older than `retention.max_age`, a
//! few thousand per write transaction through the writer's queue so intake never waits long,
//! and uploaded source-map chunks that were never assembled.
//! An issue's first and latest events are kept, and counts users see do not change; only
//! `stored` goes down.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::time::Duration;

use redb::WriteTransaction;
use tokio::sync::watch;

use crate::pipeline::Queue;
use crate::store::StoreError;
use crate::store::issues::Issue;
use crate::store::tables::Tables;

/// How long an uploaded chunk waits to be assembled into a bundle…
const CHUNK_AGE: Duration = Duration::from_secs(86_400);
/// …and how often the janitor looks, at most, for such chunks and for unused uploads.
const UPLOADS_SWEEP: Duration = Duration::from_secs(3600);

/// What the janitor needs to expire source-map uploads: who notes their use, and how long an
/// unused one is kept.
#[derive(Clone)]
pub struct Uploads {
    pub symbolicator: std::sync::Arc<crate::artifacts::Symbolicator>,
    pub max_age: Duration,
}

/// Records when uploads were last used, then deletes those unused for `max_age` and chunks
/// never assembled. Blocking. Returns how many went.
fn expire_uploads(queue: &Queue, uploads: &Uploads) -> Result<u64, StoreError> {
    let used = uploads.symbolicator.take_used();
    let now = crate::time::now();
    let (bundle_cutoff, chunk_cutoff) = (
        now - uploads.max_age.as_secs_f64(),
        now - CHUNK_AGE.as_secs_f64(),
    );
    queue.write_aside(move |txn| {
        Ok(
            crate::store::artifacts::touch_and_expire(txn, &used, bundle_cutoff)?
                + crate::store::artifacts::expire_chunks(txn, chunk_cutoff)?,
        )
    })
}

/// Deletes events older than `max_age`, and chunks never assembled, every few seconds, until
/// stopped.
pub async fn run(
    queue: Queue,
    max_age: Duration,
    uploads: Uploads,
    mut stop: watch::Receiver<bool>,
) -> Result<(), StoreError> {
    let mut last_uploads_sweep = std::time::Instant::now();
    // Uploads are looked at hourly, or more often when they expire sooner: a write
    // transaction for them every few seconds would cost a commit each time for nothing.
    let uploads_every = interval(uploads.max_age).max(UPLOADS_SWEEP.min(uploads.max_age / 4));
    let tick = interval(max_age).min(uploads_every);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = crate::supervisor::stopped(&mut stop) => return Ok(()),
        }
        let queue = queue.clone();
        let chunks_due = last_uploads_sweep.elapsed() >= uploads_every;
        if chunks_due {
            last_uploads_sweep = std::time::Instant::now();
        }
        let uploads = uploads.clone();
        let (swept, expired) = tokio::task::spawn_blocking(move || {
            let swept = sweep(&queue, max_age)?;
            let expired = if chunks_due {
                expire_uploads(&queue, &uploads)?
            } else {
                0
            };
            Ok::<_, StoreError>((swept, expired))
        })
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))?;
        if swept > 0 {
            tracing::info!("retention: deleted {swept} events older than {max_age:?}");
        }
        if expired > 0 {
            tracing::info!("deleted {expired} unused source-map uploads and chunks");
        }
    }
}

/// Deletes up to `limit` events that arrived before `cutoff` (Unix seconds), starting at
/// arrival sequence `from`. Returns the events deleted and where to go on, or `None` when the
/// scan reached events newer than the cutoff.
pub fn expire(
    txn: &WriteTransaction,
    cutoff: u64,
    from: u64,
    limit: usize,
) -> Result<(u64, Option<u64>), StoreError> {
    let mut rows = Tables::open(txn)?;
    let old = rows.arrived_before(cutoff, from, limit)?;
    let next = (old.len() == limit).then(|| old.last().map_or(from, |(seq, _)| seq + 1));
    let mut issues: HashMap<(u64, u64), Issue> = HashMap::new();
    let mut projects: HashMap<u64, u64> = HashMap::new();
    let mut deleted = 0;
    for (seq, arrival) in old {
        let issue = match issues.entry((arrival.project, arrival.issue)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => match rows.issue(arrival.project, arrival.issue)? {
                Some(issue) => e.insert(issue),
                None => continue,
            },
        };
        if arrival.id == issue.first_event || arrival.id == issue.last_event {
            continue;
        }
        rows.delete_event(arrival.project, arrival.issue, seq, &arrival.id)?;
        issue.stored = issue.stored.saturating_sub(1);
        *projects.entry(arrival.project).or_default() += 1;
        deleted += 1;
    }
    for issue in issues.values() {
        rows.put_issue(issue)?;
    }
    for (id, n) in projects {
        if let Some(mut project) = rows.project(id)? {
            project.stored = project.stored.saturating_sub(n);
            rows.put_project(&project)?;
        }
    }
    Ok((deleted, next))
}

/// Rows the janitor deletes per write transaction, so the writer is never held for long.
const EXPIRE_CHUNK: usize = 5_000;

/// How often the janitor looks: a quarter of `max_age`, between 1 s and 60 s.
fn interval(max_age: Duration) -> Duration {
    (max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// One pass: deletes everything older than `max_age`. Blocking.
pub fn sweep(queue: &Queue, max_age: Duration) -> Result<u64, StoreError> {
    let cutoff = (crate::time::now() - max_age.as_secs_f64()).max(0.0) as u64;
    let mut from = 0;
    let mut total = 0;
    loop {
        let (deleted, next) = queue.write(move |txn| expire(txn, cutoff, from, EXPIRE_CHUNK))?;
        total += deleted;
        match next {
            Some(n) => from = n,
            None => return Ok(total),
        }
    }
}

//! The writer thread: the only code that writes to the file (redb allows one write
//! transaction at a time). It drains the queue into a batch, appends the batch to the
//! write-ahead log and syncs it (one sequential write), applies the whole batch in one
//! transaction that does not wait for the disk (readers see it at once), and answers every
//! request in it. While it waits for the log's sync the next batch gathers, so under load one
//! sync and one transaction serve many events (group commit). Every second or so,
//! and before every management write, a checkpoint commits durably and the log starts over;
//! after a crash the log's records past the last checkpoint are applied again, each once (its
//! sequence number is stored with it). Without a log (benchmarks of the store alone), every
//! batch commits durably itself.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, WriteTransaction};

use super::cache::IssueCache;
use super::changes::BatchChanges;
use super::{Ack, Arrival, FeedbackArrival, Job, Jobs, Reply, SessionArrival, Stats, Touches};
use crate::store::StoreError;
use crate::store::activity::Change;
use crate::store::feedback::{self, FeedbackRows};
use crate::store::issues::{Issue, Status};
use crate::store::outcomes::{OutcomeKey, Source};
use crate::store::projects::Project;
use crate::store::slices::SliceEvent;
use crate::store::tables::Tables;
use crate::store::wal::{APPLIED, Record, Wal};

/// Bound of the writer's memory of indexed terms.
const MAX_KNOWN_TERMS: usize = 500_000;

/// `Default` is no batching limits or caps at all; the server fills every field from its config.
#[derive(Debug, Clone, Default)]
pub struct WriterConfig {
    /// Most events in one transaction.
    pub batch_max: usize,
    /// Issues kept in the fingerprint cache.
    pub issue_cache: usize,
    /// Save redb's allocator state with every commit, so that reopening after a crash is
    /// quick instead of a walk over the whole file.
    pub quick_repair: bool,
    /// Stored-event caps applied in the transaction that crosses them.
    pub caps: crate::pipeline::eviction::Caps,
    /// Whether alert mail is configured (alerts are queued for mail only then).
    pub alert_mail: bool,
    /// Seconds within which a rule does not fire twice for one issue (`alerts.throttle`).
    pub alert_throttle: f64,
    /// The data file and its size budget (`retention.max_disk`; 0: none).
    pub file: std::path::PathBuf,
    pub max_disk: u64,
    /// The write-ahead log, shared by the writer's restarts; without one every batch is
    /// committed durably.
    pub wal: Option<Arc<Mutex<Wal>>>,
    /// A checkpoint at least this often while batches arrive…
    pub checkpoint_every: Duration,
    /// …and whenever the log grows past this many bytes.
    pub checkpoint_bytes: u64,
}

/// A batch as the log holds it.
#[derive(serde::Serialize)]
struct LoggedRef<'a> {
    events: Vec<&'a Arrival>,
    feedback: Vec<&'a FeedbackArrival>,
    sessions: Vec<&'a SessionArrival>,
    outcomes: Vec<(&'a OutcomeKey, u64)>,
}

/// A batch read back from the log.
#[derive(serde::Deserialize)]
struct Logged {
    events: Vec<Arrival>,
    feedback: Vec<FeedbackArrival>,
    sessions: Vec<SessionArrival>,
    outcomes: Vec<(OutcomeKey, u64)>,
}

/// An event waiting in a batch, with where to send its ack.
type Submitted = (Box<Arrival>, Reply);

/// What one transaction stores: events, then feedback (so feedback about an event of the
/// same batch finds it).
#[derive(Default)]
struct Batch {
    events: Vec<Submitted>,
    feedback: Vec<(Box<FeedbackArrival>, Reply)>,
    sessions: Vec<(Box<SessionArrival>, Reply)>,
    outcomes: HashMap<OutcomeKey, u64>,
}

impl Batch {
    fn len(&self) -> usize {
        self.events.len() + self.feedback.len() + self.sessions.len()
    }
}

pub struct Writer {
    db: Arc<Database>,
    jobs: Jobs,
    cache: IssueCache,
    stats: Arc<Stats>,
    config: WriterConfig,
    disk: Option<super::eviction::DiskBudget>,
    windows: crate::alert::rules::Windows,
    /// Hashes of (project, issue, term) the search index is known to hold, so repeated
    /// messages and tags do not look it up again (bounded; forgotten on any doubt).
    known_terms: HashSet<u64>,
    /// Feedback waiting for its event, as last counted: while there is none, storing an
    /// event does not look for any.
    feedback_waiting: u64,
    /// The sequence number of the last batch logged.
    wal_seq: u64,
    /// Since when batches have been applied that no checkpoint has made durable yet.
    unsynced_since: Option<Instant>,
    /// The last batch evicted stored events to keep the disk budget (a checkpoint follows at
    /// once).
    evicted_for_budget: bool,
}

impl Writer {
    /// A writer for the queue's jobs. It holds no sender, so the queue closes (and the writer
    /// returns) once every [`Queue`](super::Queue) is gone.
    pub fn new(db: Arc<Database>, jobs: Jobs, stats: Arc<Stats>, config: WriterConfig) -> Writer {
        Writer {
            db,
            jobs,
            cache: IssueCache::new(config.issue_cache),
            stats,
            disk: (config.max_disk > 0)
                .then(|| super::eviction::DiskBudget::new(config.max_disk, config.file.clone())),
            windows: Default::default(),
            known_terms: HashSet::new(),
            feedback_waiting: u64::MAX,
            wal_seq: 0,
            unsynced_since: None,
            evicted_for_budget: false,
            config,
        }
    }

    fn wal(&self) -> Option<std::sync::MutexGuard<'_, Wal>> {
        self.config
            .wal
            .as_ref()
            .map(|w| w.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn applied_seq(&self) -> Result<u64, StoreError> {
        crate::store::wal::applied(&self.db.begin_read()?)
    }

    /// Applies the log's records past the last checkpoint (a crash's leftovers), each once,
    /// then checkpoints: what opening a data directory does before anything else writes.
    pub fn recover(&mut self, records: Vec<Record>) -> Result<usize, StoreError> {
        let applied = self.applied_seq()?;
        let mut replayed = 0;
        for record in records {
            if record.seq <= applied {
                continue;
            }
            let logged: Logged =
                rmp_serde::from_slice(&record.payload).map_err(|e| StoreError::Corrupt {
                    table: "picket.wal",
                    cause: format!("record {} cannot be read by this version: {e}", record.seq),
                })?;
            // Nobody waits for an answer: the requests were answered before the crash.
            fn unanswered<T>(items: Vec<T>) -> Vec<(Box<T>, super::Reply)> {
                let no_one = || tokio::sync::oneshot::channel().0;
                items.into_iter().map(|i| (Box::new(i), no_one())).collect()
            }
            let batch = Batch {
                events: unanswered(logged.events),
                feedback: unanswered(logged.feedback),
                sessions: unanswered(logged.sessions),
                outcomes: logged.outcomes.into_iter().collect(),
            };
            replayed += batch.len();
            self.wal_seq = record.seq;
            self.apply(batch, Some(record.seq), None)?;
        }
        self.checkpoint()?;
        self.synced();
        Ok(replayed)
    }

    /// Makes every batch applied so far durable and starts the log over.
    fn checkpoint(&mut self) -> Result<(), StoreError> {
        if self.unsynced_since.is_none() {
            return Ok(());
        }
        let txn = self.begin(true)?;
        txn.commit()?;
        self.synced();
        Ok(())
    }

    /// A durable commit made everything before it durable: the log starts over.
    fn synced(&mut self) {
        self.unsynced_since = None;
        if let Some(mut wal) = self.wal() {
            wal.clear();
        }
    }

    /// Checkpoints when the last one is old enough, the log big enough, or the last batch
    /// evicted events to keep the disk budget.
    fn checkpoint_if_due(&mut self) {
        let evicted_for_budget = std::mem::take(&mut self.evicted_for_budget);
        let due = self.unsynced_since.is_some_and(|since| {
            evicted_for_budget
                || since.elapsed() >= self.config.checkpoint_every
                || self
                    .wal()
                    .is_some_and(|w| w.len() >= self.config.checkpoint_bytes)
        });
        if due && let Err(e) = self.checkpoint() {
            tracing::error!("checkpoint failed (the log keeps the batches): {e}");
        }
    }

    /// How long the writer may wait for work before a checkpoint is due.
    fn idle_wait(&self) -> Option<Duration> {
        self.unsynced_since
            .map(|since| self.config.checkpoint_every.saturating_sub(since.elapsed()))
    }

    /// Runs until every sender of the queue is gone and the queue is drained.
    pub fn run(mut self) {
        let jobs = self.jobs.clone();
        // A panicked writer leaves the lock poisoned; the queue itself is intact.
        let jobs = jobs.lock().unwrap_or_else(|e| e.into_inner());
        self.stats.running.store(true, Ordering::SeqCst);
        let _stopped = RunningFlag(self.stats.clone());
        self.feedback_waiting = self.count_waiting_feedback().unwrap_or(u64::MAX);
        // Past both what is applied and what an earlier run of this writer logged.
        let logged = self.wal().map_or(0, |w| w.last_seq());
        self.wal_seq = self.applied_seq().unwrap_or(0).max(logged);
        loop {
            let job = match self.idle_wait() {
                Some(wait) => match jobs.recv_timeout(wait) {
                    Ok(job) => job,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        self.checkpoint_if_due();
                        continue;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            let mut batch = Batch::default();
            let mut admin = None;
            let mut next = Some(job);
            while let Some(job) = next.take() {
                match job {
                    Job::Event(arrival, ack) => batch.events.push((arrival, ack)),
                    Job::Feedback(feedback, ack) => batch.feedback.push((feedback, ack)),
                    Job::Sessions(sessions, ack) => batch.sessions.push((sessions, ack)),
                    Job::Admin { work, touches } => admin = Some((work, touches)),
                    Job::Outcomes(counts) => {
                        for (k, n) in counts {
                            *batch.outcomes.entry(k).or_default() += n;
                        }
                    }
                    #[cfg(debug_assertions)]
                    Job::Crash => panic!("writer crash requested for testing"),
                }
                if admin.is_none() && batch.len() < self.config.batch_max {
                    next = jobs.try_recv().ok();
                }
            }
            if batch.len() > 0 || !batch.outcomes.is_empty() {
                self.write_batch(batch);
            }
            if let Some((work, touches)) = admin {
                self.run_admin(work, touches);
            }
            self.checkpoint_if_due();
        }
        match self.checkpoint() {
            Err(e) => {
                tracing::error!("the last checkpoint failed (the log keeps the batches): {e}")
            }
            Ok(()) => {
                if let Some(Err(e)) = self.wal().map(|mut wal| wal.truncate()) {
                    tracing::warn!("{e}");
                }
            }
        }
    }

    /// Runs a management write; the issues it `touches` are forgotten by the cache and told
    /// to readers (one that may change any issue makes every cache start over).
    fn run_admin(&mut self, work: super::AdminWork, touches: Touches) {
        match &touches {
            Touches::Everything => {
                self.cache.clear();
                self.known_terms.clear();
            }
            Touches::Nothing => {}
            Touches::Issues(list) => {
                for &(project, issue) in list {
                    self.cache.forget(project, issue);
                }
            }
        }
        let txn = match self.begin(true) {
            Ok(txn) => txn,
            Err(e) => {
                tracing::error!("management write failed to start: {e}");
                return;
            }
        };
        let (commit, reply) = work(&txn);
        if commit {
            // Durable, so a checkpoint for every batch before it too.
            let done = txn
                .commit()
                .map_err(StoreError::from)
                .map(|()| self.synced());
            self.changed(match &touches {
                Touches::Everything => None,
                Touches::Nothing => Some(&[]),
                Touches::Issues(list) => Some(list),
            });
            reply(done);
        } else {
            let _ = txn.abort();
            reply(Ok(()));
        }
    }

    /// Records a commit for readers' caches: which issues it changed (`None`: anything).
    fn changed(&self, issues: Option<&[(u64, u64)]>) {
        let mut log = self.stats.changes.lock().unwrap_or_else(|e| e.into_inner());
        let version = self.stats.version.load(Ordering::Acquire) + 1;
        log.record(version, issues);
        self.stats.version.store(version, Ordering::Release);
    }

    /// A write transaction: committed durably, or (a logged batch) without waiting for the
    /// disk.
    fn begin(&self, durable: bool) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write()?;
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability)
            .map_err(|e| StoreError::Db(e.to_string()))?;
        if durable {
            txn.set_quick_repair(self.config.quick_repair);
        }
        Ok(txn)
    }

    /// Appends the batch to the log (when there is one): its sequence number and where its
    /// record starts.
    fn log(&mut self, batch: &Batch) -> Result<Option<(u64, u64)>, StoreError> {
        let Some(wal) = &self.config.wal else {
            return Ok(None);
        };
        let record = LoggedRef {
            events: batch.events.iter().map(|(a, _)| a.as_ref()).collect(),
            feedback: batch.feedback.iter().map(|(f, _)| f.as_ref()).collect(),
            sessions: batch.sessions.iter().map(|(s, _)| s.as_ref()).collect(),
            outcomes: batch.outcomes.iter().map(|(k, n)| (k, *n)).collect(),
        };
        let payload = rmp_serde::to_vec(&record)
            .map_err(|e| StoreError::Io(format!("cannot encode a log record: {e}")))?;
        let seq = self.wal_seq + 1;
        let mut wal = wal.lock().unwrap_or_else(|e| e.into_inner());
        let at = wal.append(seq, &payload)?;
        self.wal_seq = seq;
        Ok(Some((seq, at)))
    }

    fn count_waiting_feedback(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let waiting = txn.open_table(feedback::FEEDBACK_PENDING)?;
        Ok(redb::ReadableTableMetadata::len(&waiting)?)
    }

    fn write_batch(&mut self, batch: Batch) {
        self.stats
            .queued
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        match self.log(&batch) {
            Ok(logged) => {
                let _ = self.apply(batch, logged.map(|l| l.0), logged.map(|l| l.1));
            }
            Err(e) => {
                tracing::error!("logging a batch of {} records failed: {e}", batch.len());
                fail(batch, &e);
            }
        }
    }

    /// Applies a batch (logged as `seq`, starting at `cut_at` in the log) and answers its
    /// requests.
    fn apply(
        &mut self,
        mut batch: Batch,
        seq: Option<u64>,
        cut_at: Option<u64>,
    ) -> Result<(), StoreError> {
        let arrivals: Vec<&Arrival> = batch.events.iter().map(|(a, _)| a.as_ref()).collect();
        let feedback: Vec<&FeedbackArrival> =
            batch.feedback.iter().map(|(f, _)| f.as_ref()).collect();
        let mut extra = BatchChanges::default();
        extra.outcomes = std::mem::take(&mut batch.outcomes);
        for (sessions, _) in &batch.sessions {
            extra.count_sessions(sessions);
        }
        // A page redb cannot read may stop it with a panic (debug builds always do): that is
        // a damaged file, reported like the Corrupted error release builds return.
        let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.commit_batch(&arrivals, &feedback, extra, seq)
        }))
        .unwrap_or_else(|panic| {
            Err(StoreError::Damaged(crate::store::panic_detail(
                panic.as_ref(),
            )))
        });
        match committed {
            Ok((acks, feedback_acks, committed)) => {
                let touched: Vec<(u64, u64)> =
                    committed.iter().map(|(_, i)| (i.project, i.id)).collect();
                self.changed(Some(&touched));
                for (hash, issue) in committed {
                    self.cache.put(hash, issue);
                }
                let stored = acks.iter().filter(|a| **a == Ack::Stored).count() as u64;
                self.stats.stored.fetch_add(stored, Ordering::Relaxed);
                self.stats
                    .duplicates
                    .fetch_add(acks.len() as u64 - stored, Ordering::Relaxed);
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                let answers = (batch.events.into_iter())
                    .map(|(_, reply)| reply)
                    .zip(acks)
                    .chain(
                        batch
                            .feedback
                            .into_iter()
                            .map(|(_, r)| r)
                            .zip(feedback_acks),
                    )
                    .chain(batch.sessions.into_iter().map(|(_, r)| (r, Ack::Stored)));
                for (reply, ack) in answers {
                    let _ = reply.send(Ok(ack));
                }
                if seq.is_some() {
                    self.unsynced_since.get_or_insert_with(Instant::now);
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!("writing a batch of {} records failed: {e}", batch.len());
                if let StoreError::Damaged(detail) = &e {
                    crate::store::report_damage(detail);
                }
                self.cache.clear();
                self.known_terms.clear();
                self.feedback_waiting = u64::MAX;
                // Not applied, not acknowledged: not replayed either.
                if let Some(at) = cut_at
                    && let Some(mut wal) = self.wal()
                    && let Err(cut) = wal.cut(at)
                {
                    tracing::error!("cannot cut the failed batch from the log: {cut}");
                }
                let message = e.to_string();
                fail(batch, &e);
                Err(StoreError::Db(message))
            }
        }
    }

    /// Applies a batch in one transaction. Returns each event's ack and the issues as
    /// committed (for the cache).
    #[allow(clippy::type_complexity)]
    fn commit_batch(
        &mut self,
        batch: &[&Arrival],
        feedback: &[&FeedbackArrival],
        changes: BatchChanges<'_>,
        logged: Option<u64>,
    ) -> Result<(Vec<Ack>, Vec<Ack>, Vec<([u8; 16], Issue)>), StoreError> {
        let txn = self.begin(logged.is_none())?;
        let mut changes = changes;
        let mut acks = Vec::with_capacity(batch.len());
        let mut rows = Tables::open(&txn)?;
        // Opened only when the batch has feedback to store or some waits for an event.
        let mut feedback_rows = if self.feedback_waiting > 0 || !feedback.is_empty() {
            Some(FeedbackRows::open(&txn)?)
        } else {
            None
        };
        let mut seq = rows.seq()?;
        for &arrival in batch {
            if rows.event_exists(arrival.project, &arrival.event_id)? {
                acks.push(Ack::Duplicate);
                continue;
            }
            let mut hash = arrival.grouping.hash;
            let project = project_of(&mut changes.projects, &rows, arrival.project)?;
            project.stored += 1;
            let mut opened = false;
            if !changes.issues.contains_key(&(arrival.project, hash)) {
                let known = match self.cache.get(arrival.project, &hash) {
                    Some(issue) => Some(issue),
                    None => rows.issue_by_hash(arrival.project, &hash)?,
                };
                let issue = match known {
                    Some(issue) => issue,
                    None => {
                        let id = project.next_issue.max(1);
                        project.next_issue = id + 1;
                        rows.link_hash(arrival.project, &hash, id)?;
                        opened = true;
                        new_issue(arrival, id)
                    }
                };
                // A fingerprint of an issue merged into another leads to that one, which the
                // batch holds (and the cache keeps) under its own hash.
                if let Ok(own) = <[u8; 16]>::try_from(issue.hash.as_slice()) {
                    hash = own;
                }
                changes
                    .issues
                    .entry((arrival.project, hash))
                    .or_insert(issue);
            }
            let Some(issue) = changes.issues.get_mut(&(arrival.project, hash)) else {
                return Err(StoreError::NotFound("an issue of the batch is gone".into()));
            };
            seq += 1;
            let (before, first) = (issue.status, issue.count == 0);
            // Resolved in a release: only an event of that release or a newer one reopens it.
            let reopens = match &issue.resolved_in {
                Some(resolved) if issue.status == Status::Resolved => {
                    let release = arrival.facts.release.as_deref();
                    let appeared = match release {
                        Some(r) => crate::store::releases::first_appearance(
                            &txn.open_table(crate::store::RELEASE_STATS)?,
                            arrival.project,
                            r,
                        )?,
                        None => None,
                    };
                    resolved.reopens(release, appeared)
                }
                _ => true,
            };
            if let Some(change) = record(issue, arrival, reopens) {
                let at = arrival.facts.received;
                changes
                    .activity
                    .push((arrival.project, issue.id, at, change));
            }
            let fired = crate::alert::rules::evaluate(
                &project.alerts,
                before,
                first,
                issue,
                arrival.facts.received,
                &mut self.windows,
                self.config.alert_throttle,
            );
            let at = arrival.facts.received;
            let mail = self.config.alert_mail;
            changes
                .alerts
                .extend(alerts(project, issue.id, fired, arrival.event_id, at, mail));
            rows.insert_event(
                arrival.project,
                issue.id,
                seq,
                &arrival.event_id,
                &arrival.encoded,
            )?;
            if !arrival.attachments.is_empty() {
                if project.attachments_off {
                    let key = OutcomeKey {
                        project: arrival.project,
                        source: Source::Server,
                        category: "attachment".into(),
                        reason: "disabled".into(),
                    };
                    *changes.outcomes.entry(key).or_default() += arrival.attachments.len() as u64;
                } else {
                    rows.insert_attachments(
                        arrival.project,
                        &arrival.event_id,
                        &arrival.attachments,
                    )?;
                }
            }
            if self.feedback_waiting > 0
                && let Some(waiting) = &mut feedback_rows
            {
                for row in waiting.link(arrival.project, &arrival.event_id, issue.id)? {
                    let about = arrival.event_id;
                    let queued = self.count_feedback(project, issue, &row.feedback, about);
                    changes.alerts.extend(queued);
                }
            }
            if project.forward_to.is_some() {
                changes.forwards.push(crate::store::outbox::OutboxEntry {
                    project: arrival.project,
                    seq,
                    event_id: arrival.event_id,
                    queued: arrival.facts.received,
                });
            }
            if self.known_terms.len() > MAX_KNOWN_TERMS {
                self.known_terms.clear();
            }
            let facts = &arrival.facts;
            rows.slices.record(
                &SliceEvent {
                    project: arrival.project,
                    issue: issue.id,
                    environment: facts.environment.as_deref(),
                    release: facts.release.as_deref(),
                    happened: facts.happened,
                    user: facts.user.as_deref(),
                    terms: &facts.terms,
                },
                issue,
                &mut self.known_terms,
            )?;
            let issue = issue.id;
            changes.count(issue, arrival, opened);
            acks.push(Ack::Stored);
        }
        let mut feedback_acks = Vec::with_capacity(feedback.len());
        if let Some(stored) = &mut feedback_rows {
            for &arrival in feedback {
                feedback_acks.push(self.store_feedback(&mut changes, &rows, stored, arrival)?);
            }
            self.feedback_waiting = stored.waiting()?;
        }
        drop(feedback_rows);
        let most = super::eviction::most_evicted(batch.len());
        let by_caps = super::eviction::enforce_caps(
            &mut rows,
            &mut changes.issues,
            &mut changes.projects,
            self.config.caps,
            most,
        )?;
        let by_budget = self.keep_disk_budget(
            &mut rows,
            &mut changes.issues,
            &mut changes.projects,
            most.saturating_sub(by_caps),
        )?;
        if by_caps + by_budget > 0 {
            tracing::debug!(
                "retention: evicted {by_caps} events over the caps, {by_budget} over the disk budget"
            );
        }
        // Pages freed by a commit are reused only after a durable one. Under the count caps
        // the next regular checkpoint is soon enough (a store at its caps evicts with every
        // batch, and a checkpoint per batch would halve its rate); the disk budget promises a
        // size, so a batch that evicted for it is a checkpoint too.
        if by_budget > 0 {
            self.evicted_for_budget = true;
        }
        rows.set_seq(seq)?;
        let committed = changes.write(rows, &txn)?;
        if let Some(logged) = logged {
            txn.open_table(crate::store::META)?
                .insert(APPLIED, logged)?;
        }
        txn.commit()?;
        Ok((acks, feedback_acks, committed))
    }

    /// Stores one feedback, linked to its event's issue when that is stored, and counts it
    /// on the issue (which may set off the feedback alert).
    fn store_feedback(
        &mut self,
        changes: &mut BatchChanges<'_>,
        rows: &Tables<'_>,
        stored: &mut FeedbackRows<'_>,
        arrival: &FeedbackArrival,
    ) -> Result<Ack, StoreError> {
        let FeedbackArrival { project, feedback } = arrival;
        if stored.exists(*project, &feedback.id)? {
            return Ok(Ack::Duplicate);
        }
        let number = match &feedback.event_id {
            Some(event) => rows.event_issue(*project, event)?,
            None => None,
        };
        let held = project_of(&mut changes.projects, rows, *project)?;
        stored.insert(*project, number, feedback)?;
        held.feedback += 1;
        if held.feedback > feedback::MAX_PER_PROJECT {
            let dropped =
                stored.drop_oldest(*project, held.feedback - feedback::MAX_PER_PROJECT)?;
            held.feedback -= dropped;
        }
        let Some(number) = number else {
            return Ok(Ack::Stored);
        };
        let Some(found) = rows.issue(*project, number)? else {
            return Ok(Ack::Stored);
        };
        let Ok(hash) = <[u8; 16]>::try_from(found.hash.as_slice()) else {
            return Ok(Ack::Stored);
        };
        let issue = match changes.issues.entry((*project, hash)) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(self.cache.get(*project, &hash).unwrap_or(found)),
        };
        let about = feedback.event_id.unwrap_or(feedback.id);
        let queued = self.count_feedback(held, issue, feedback, about);
        changes.alerts.extend(queued);
        Ok(Ack::Stored)
    }

    /// Counts one feedback on its issue; the alerts it sets off (about event `about`).
    fn count_feedback(
        &self,
        project: &Project,
        issue: &mut Issue,
        feedback: &crate::event::feedback::Feedback,
        about: crate::ids::EventId,
    ) -> Vec<crate::store::alerts::Alert> {
        issue.feedback += 1;
        let at = feedback.received;
        let fired = crate::alert::rules::on_feedback(
            &project.alerts,
            issue,
            at,
            self.config.alert_throttle,
            &feedback.message,
        );
        alerts(project, issue.id, fired, about, at, self.config.alert_mail).collect()
    }

    /// Evicts events (at most `most`) when the file has no room left within
    /// `retention.max_disk`.
    fn keep_disk_budget(
        &mut self,
        rows: &mut Tables<'_>,
        touched: &mut HashMap<(u64, [u8; 16]), Issue>,
        projects: &mut HashMap<u64, Project>,
        most: u64,
    ) -> Result<u64, StoreError> {
        let Some(disk) = &mut self.disk else {
            return Ok(0);
        };
        let all = rows.projects()?;
        let total = all
            .iter()
            .map(|p| projects.get(&p.id).map_or(p.stored, |q| q.stored))
            .sum();
        let cap = disk.cap(rows, total)?;
        self.stats
            .disk_cap
            .store(cap.unwrap_or(0), Ordering::Relaxed);
        match cap {
            Some(cap) => {
                super::eviction::enforce_total(rows, touched, projects, &all, total, cap, most)
            }
            None => Ok(0),
        }
    }
}

/// Answers every request of a batch that could not be stored with the error.
fn fail(batch: Batch, e: &StoreError) {
    let replies = batch.events.into_iter().map(|(_, reply)| reply);
    let replies = replies
        .chain(batch.feedback.into_iter().map(|(_, reply)| reply))
        .chain(batch.sessions.into_iter().map(|(_, reply)| reply));
    for reply in replies {
        let _ = reply.send(Err(StoreError::Db(e.to_string())));
    }
}

/// The batch's copy of a project, read from the file the first time the batch needs it.
fn project_of<'c>(
    projects: &'c mut HashMap<u64, Project>,
    rows: &Tables<'_>,
    id: u64,
) -> Result<&'c mut Project, StoreError> {
    Ok(match projects.entry(id) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(
            rows.project(id)?
                .ok_or_else(|| StoreError::NotFound(format!("project {id} is gone")))?,
        ),
    })
}

/// The outbox entries for the alerts an event or feedback set off on an issue of `project`,
/// when there is anywhere to send them.
fn alerts(
    project: &Project,
    issue: u64,
    fired: Vec<crate::alert::rules::Triggered>,
    event_id: crate::ids::EventId,
    at: f64,
    mail: bool,
) -> impl Iterator<Item = crate::store::alerts::Alert> + '_ {
    let targets = mail || !project.alerts.webhooks.is_empty();
    fired
        .into_iter()
        .filter(move |_| targets)
        .map(move |t| crate::store::alerts::Alert {
            project: project.id,
            issue,
            rule: t.rule,
            event_id,
            created: at,
            detail: t.detail,
            mail,
            webhooks: project
                .alerts
                .webhooks
                .iter()
                .map(|h| h.url.clone())
                .collect(),
            held: false,
            to: Vec::new(),
        })
}

/// Clears the running flag when the writer stops, also by panic, so `/health` tells.
struct RunningFlag(Arc<Stats>);

impl Drop for RunningFlag {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::SeqCst);
    }
}

fn new_issue(arrival: &Arrival, id: u64) -> Issue {
    let ev = &arrival.facts;
    Issue {
        project: arrival.project,
        id,
        hash: arrival.grouping.hash.to_vec(),
        strategy: arrival.grouping.strategy,
        title: ev.title.clone(),
        culprit: ev.culprit.clone(),
        level: ev.level,
        platform: ev.platform.clone(),
        status: Status::Unresolved,
        first_seen: ev.received,
        last_seen: ev.received,
        first_event: arrival.event_id,
        last_event: arrival.event_id,
        first_release: ev.release.clone(),
        exact_users: Some(0),
        ..Default::default()
    }
}

/// Folds one event into its issue's aggregates; a resolved issue comes back if `reopens`. The
/// change to record in the issue's activity, when its status changed.
fn record(issue: &mut Issue, arrival: &Arrival, reopens: bool) -> Option<Change> {
    let ev = &arrival.facts;
    let mut change = None;
    issue.count += 1;
    issue.stored += 1;
    issue.last_seen = issue.last_seen.max(ev.received);
    replace(&mut issue.title, &ev.title);
    replace(&mut issue.culprit, &ev.culprit);
    issue.level = ev.level;
    issue.last_event = arrival.event_id;
    match issue.status {
        // An event on a resolved issue is a regression.
        Status::Resolved if reopens => {
            issue.status = Status::Unresolved;
            issue.regressions += 1;
            issue.regressed_at = Some(ev.received);
            issue.resolved_in = None;
            change = Some(Change::Regressed {
                event: arrival.event_id,
                release: ev.release.clone(),
            });
        }
        Status::Resolved | Status::Unresolved | Status::Ignored => {}
    }
    if let Some(identity) = &ev.user {
        issue.add_user(identity);
    }
    // An ignored issue comes back once its condition has run out.
    if issue.status == Status::Ignored {
        let time_up = issue.ignore_until.is_some_and(|t| ev.received >= t);
        let count_up = issue.ignore_until_count.is_some_and(|n| issue.count >= n);
        let users_up = issue
            .ignore_until_users
            .is_some_and(|n| issue.user_count() >= n);
        if time_up || count_up || users_up {
            issue.status = Status::Unresolved;
            issue.ignore_until = None;
            issue.ignore_until_count = None;
            issue.ignore_until_users = None;
            change = Some(Change::Unignored {
                event: Some(arrival.event_id),
            });
        }
    }
    if let Some(release) = &ev.release {
        issue.remember_release(release);
        match &mut issue.last_release {
            Some(last) => replace(last, release),
            None => issue.last_release = Some(release.clone()),
        }
    }
    if let Some(environment) = &ev.environment {
        issue.remember_environment(environment);
    }
    change
}

/// Overwrites a string in place, reusing its buffer.
fn replace(slot: &mut String, value: &str) {
    if slot != value {
        slot.clear();
        slot.push_str(value);
    }
}

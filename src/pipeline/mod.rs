//! The pipeline between intake and the file: a bounded queue and the one writer thread that
//! owns every write. Intake sends ready [`Arrival`]s and waits for their [`Ack`], which comes
//! only after the batch holding them has been committed to disk. Management commands send
//! their writes through the same queue, so the writer's caches never go stale.

mod cache;
mod changes;
pub mod eviction;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};

use redb::WriteTransaction;
use tokio::sync::oneshot;

use crate::event::{Event, Grouping, Level};
use crate::ids::EventId;
use crate::store::StoreError;
use crate::store::attachments::EncodedAttachment;
use crate::store::dictionary::Codec;
use crate::store::events::EncodedEvent;
use crate::store::outcomes::OutcomeKey;

pub use writer::{Writer, WriterConfig};

/// Opens the data directory's write-ahead log and applies what a crash left in it past the
/// last checkpoint (each batch once), before anything else writes: the writer's
/// configuration, with the log, for the writer that runs from then on.
pub fn recover(
    db: &Arc<redb::Database>,
    config: &crate::config::Config,
) -> Result<WriterConfig, StoreError> {
    let (wal, pending) = crate::store::wal::Wal::open(&config.data_dir)?;
    let writer_config = WriterConfig {
        batch_max: config.pipeline.batch_max,
        issue_cache: config.pipeline.issue_cache,
        quick_repair: config.pipeline.quick_repair,
        caps: eviction::Caps {
            per_project: config.retention.max_events_per_project,
            per_issue: config.retention.max_events_per_issue,
        },
        alert_mail: !config.smtp_url.is_empty(),
        alert_throttle: config.alerts.throttle.0.as_secs_f64(),
        file: crate::store::file_in(&config.data_dir),
        max_disk: config.retention.max_disk.0,
        wal: Some(Arc::new(std::sync::Mutex::new(wal))),
        checkpoint_every: config.pipeline.checkpoint_interval.0,
        // The log counts against a disk budget: at most a sixteenth of it.
        checkpoint_bytes: match config.retention.max_disk.0 {
            0 => config.pipeline.checkpoint_size.0,
            budget => config.pipeline.checkpoint_size.0.min(budget / 16),
        },
    };
    if !pending.is_empty() {
        let started = std::time::Instant::now();
        // A writer of its own, before the server's starts: no queue feeds it. It stores what
        // the log holds and evicts nothing: a command run with another configuration than the
        // server's (or none) must not apply its caps to the server's events; the server's
        // writer applies its own on the batches that follow.
        let (idle, jobs) = queue(1);
        let replay = WriterConfig {
            caps: eviction::Caps::default(),
            max_disk: 0,
            ..writer_config.clone()
        };
        let replayed =
            Writer::new(db.clone(), jobs, idle.shared_stats(), replay).recover(pending)?;
        tracing::info!(
            "applied {replayed} records from the write-ahead log in {:?}",
            started.elapsed()
        );
    }
    Ok(writer_config)
}

/// An event ready to store: normalized, grouped and compressed by intake, and summed up in the
/// few [`Facts`] the writer folds into its issue, so that the writer never walks (or frees) a
/// parsed event.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Arrival {
    pub project: u64,
    pub event_id: EventId,
    pub grouping: Grouping,
    pub facts: Facts,
    pub encoded: EncodedEvent,
    /// Attachments sent with the event, compressed; stored only with a new event.
    pub attachments: Vec<EncodedAttachment>,
}

/// What an issue learns from one of its events.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Facts {
    pub event_id: EventId,
    /// Receive time (Unix seconds).
    pub received: f64,
    pub title: String,
    pub culprit: String,
    pub level: Level,
    pub platform: String,
    /// Who it happened to (user id, email, username or address), for the users count.
    pub user: Option<String>,
    pub release: Option<String>,
    pub environment: Option<String>,
    /// The tags the issue counts: the event's own (first value of each key) and the built-in
    /// ones Sentry also shows (level, environment, release, server name).
    pub tags: Vec<(String, String)>,
    /// When it happened by its own clock ([`Event::happened`]; its hourly bucket).
    pub happened: f64,
    /// What search finds it by: its messages' words, its tags and user fields
    /// (`store::slices` terms).
    pub terms: Vec<String>,
}

impl Arrival {
    /// Groups and compresses an event for `project`.
    pub fn new(project: u64, event: Event, codec: &Codec) -> Arrival {
        let event_id = event.event_id;
        let grouping = crate::event::grouping::group(&event);
        let encoded = codec.encode(&event);
        let tags = crate::event::derived::counted(&event);
        let terms = crate::event::derived::terms(&event, &tags);
        let happened = event.happened();
        let facts = Facts {
            happened,
            terms,
            title: event.title(),
            culprit: event.culprit(),
            user: event
                .user
                .as_ref()
                .and_then(|u| u.identity())
                .map(str::to_string),
            level: event.level,
            received: event.received,
            event_id: event.event_id,
            platform: event.platform,
            release: event.release,
            environment: event.environment,
            tags,
        };
        Arrival {
            project,
            event_id,
            grouping,
            facts,
            encoded,
            attachments: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Committed to disk.
    Stored,
    /// An event with this id was already stored for the project; nothing changed.
    Duplicate,
}

/// The issues a management write may change, so that caches of issues forget only those.
#[derive(Debug, Clone, PartialEq)]
pub enum Touches {
    /// Any issue: caches start over.
    Everything,
    /// No issue (outboxes, dictionaries, uploads).
    Nothing,
    /// These (project, issue) only.
    Issues(Vec<(u64, u64)>),
}

/// A management write: runs inside a write transaction of its own and says whether to commit.
/// It gets a reply function to call with the commit's outcome.
type AdminWork = Box<
    dyn FnOnce(&WriteTransaction) -> (bool, Box<dyn FnOnce(Result<(), StoreError>) + Send>) + Send,
>;

/// User feedback ready to store for `project`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct FeedbackArrival {
    pub project: u64,
    pub feedback: crate::event::feedback::Feedback,
}

/// Release-health counts of one envelope's sessions, ready to add for `project`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SessionArrival {
    pub project: u64,
    pub counts: Vec<(
        crate::store::health::BucketKey,
        crate::store::health::HealthBucket,
    )>,
}

/// Where the writer answers once a record is durable.
pub type Reply = oneshot::Sender<Result<Ack, StoreError>>;

/// What the writer thread receives.
pub enum Job {
    Event(Box<Arrival>, Reply),
    Feedback(Box<FeedbackArrival>, Reply),
    Sessions(Box<SessionArrival>, Reply),
    /// A management write, with the issues it may change.
    Admin {
        work: AdminWork,
        touches: Touches,
    },
    /// Counts of what was dropped, added in the next batch (not acknowledged).
    Outcomes(std::collections::HashMap<OutcomeKey, u64>),
    /// Makes the writer panic, to test its supervision. Not in release builds.
    #[cfg(debug_assertions)]
    Crash,
}

/// Figures the writer keeps for `status` and for tests.
#[derive(Default)]
pub struct Stats {
    pub stored: AtomicU64,
    pub duplicates: AtomicU64,
    pub batches: AtomicU64,
    pub queued: AtomicU64,
    pub running: AtomicBool,
    /// The stored events the data file has room for within `retention.max_disk` (0: no cap).
    pub disk_cap: AtomicU64,
    /// Goes up with every commit, so readers can tell whether what they cached is stale.
    pub version: AtomicU64,
    /// Which issues each recent commit changed, so a reader can refresh a cached list by
    /// re-reading only those.
    pub changes: std::sync::Mutex<ChangeLog>,
}

/// The issues recent commits changed, as (version, project, issue); a management write is
/// recorded as a change of everything.
#[derive(Debug, Default)]
pub struct ChangeLog {
    entries: std::collections::VecDeque<(u64, u64, u64)>,
    /// Changes of versions up to this one are no longer all here.
    floor: u64,
}

/// Entries the change log keeps.
const CHANGE_LOG_LEN: usize = 200_000;

impl ChangeLog {
    /// Records what the commit that made `version` changed (`None`: anything).
    pub fn record(&mut self, version: u64, issues: Option<&[(u64, u64)]>) {
        match issues {
            Some(list) => self
                .entries
                .extend(list.iter().map(|&(p, i)| (version, p, i))),
            None => self.entries.push_back((version, u64::MAX, u64::MAX)),
        }
        while self.entries.len() > CHANGE_LOG_LEN {
            if let Some((v, _, _)) = self.entries.pop_front() {
                self.floor = self.floor.max(v);
            }
        }
    }

    /// The issues of `project` changed after `since`, or `None` when that cannot be told
    /// (too long ago, or a management write changed anything).
    pub fn since(&self, since: u64, project: u64) -> Option<Vec<u64>> {
        if since < self.floor {
            return None;
        }
        let mut out = Vec::new();
        for &(v, p, i) in self.entries.iter().rev() {
            if v <= since {
                break;
            }
            if p == u64::MAX {
                return None;
            }
            if p == project {
                out.push(i);
            }
        }
        out.sort_unstable();
        out.dedup();
        Some(out)
    }
}

/// The sending side of the queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    tx: SyncSender<Job>,
    stats: Arc<Stats>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QueueError {
    #[error("the queue is full")]
    Full,
    #[error("the writer has stopped")]
    Closed,
}

impl Queue {
    /// Queues an event without waiting for room; the receiver resolves once it is durable.
    pub fn submit(
        &self,
        arrival: Arrival,
    ) -> Result<oneshot::Receiver<Result<Ack, StoreError>>, QueueError> {
        self.offer(|ack| Job::Event(Box::new(arrival), ack))
    }

    /// Queues user feedback without waiting for room; the receiver resolves once it is durable.
    pub fn submit_feedback(
        &self,
        feedback: FeedbackArrival,
    ) -> Result<oneshot::Receiver<Result<Ack, StoreError>>, QueueError> {
        self.offer(|ack| Job::Feedback(Box::new(feedback), ack))
    }

    /// Queues session counts without waiting for room; the receiver resolves once they are
    /// durable.
    pub fn submit_sessions(
        &self,
        sessions: SessionArrival,
    ) -> Result<oneshot::Receiver<Result<Ack, StoreError>>, QueueError> {
        self.offer(|ack| Job::Sessions(Box::new(sessions), ack))
    }

    fn offer(
        &self,
        job: impl FnOnce(Reply) -> Job,
    ) -> Result<oneshot::Receiver<Result<Ack, StoreError>>, QueueError> {
        let (ack, done) = oneshot::channel();
        match self.tx.try_send(job(ack)) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
                Ok(done)
            }
            Err(TrySendError::Full(_)) => Err(QueueError::Full),
            Err(TrySendError::Disconnected(_)) => Err(QueueError::Closed),
        }
    }

    /// Queues counts of what was dropped without waiting for room or for the commit; gives
    /// them back when the queue is full.
    pub fn count_outcomes(
        &self,
        counts: std::collections::HashMap<OutcomeKey, u64>,
    ) -> Result<(), std::collections::HashMap<OutcomeKey, u64>> {
        match self.tx.try_send(Job::Outcomes(counts)) {
            Ok(()) => Ok(()),
            Err(
                TrySendError::Full(Job::Outcomes(c)) | TrySendError::Disconnected(Job::Outcomes(c)),
            ) => Err(c),
            Err(_) => Ok(()),
        }
    }

    /// Runs `work` in a write transaction of the writer thread and waits for the commit.
    /// Blocking: call it from a thread that may block.
    pub fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.admin(work, Touches::Everything)
    }

    /// [`Queue::write`] for work that changes only these (project, issue) rows among the
    /// issues: caches of issues forget only those.
    pub fn write_issues<T: Send + 'static>(
        &self,
        issues: Vec<(u64, u64)>,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.admin(work, Touches::Issues(issues))
    }

    /// [`Queue::write`] for work that changes no issue (outboxes, dictionaries, uploads):
    /// readers' caches of issues stay valid across it.
    pub fn write_aside<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.admin(work, Touches::Nothing)
    }

    fn admin<T: Send + 'static>(
        &self,
        work: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
        touches: Touches,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::channel();
        let work: AdminWork = Box::new(move |txn| {
            let result = work(txn);
            let commit = result.is_ok();
            let reply: Box<dyn FnOnce(Result<(), StoreError>) + Send> =
                Box::new(move |committed| {
                    let _ = tx.send(committed.and(result));
                });
            (commit, reply)
        });
        let job = Job::Admin { work, touches };
        self.tx.send(job).map_err(|_| StoreError::WriterGone)?;
        rx.recv().map_err(|_| StoreError::WriterGone)?
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The figures, shared with the writer.
    pub fn shared_stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Makes the writer thread panic (test builds only).
    #[cfg(debug_assertions)]
    pub fn crash_writer(&self) -> Result<(), QueueError> {
        self.tx.send(Job::Crash).map_err(|_| QueueError::Closed)
    }
}

/// The receiving side of the queue, shared so that a restarted writer picks up where a
/// panicked one stopped.
pub type Jobs = Arc<std::sync::Mutex<mpsc::Receiver<Job>>>;

/// Creates the queue with room for `capacity` jobs.
pub fn queue(capacity: usize) -> (Queue, Jobs) {
    let (tx, rx) = mpsc::sync_channel(capacity);
    let queue = Queue {
        tx,
        stats: Arc::new(Stats::default()),
    };
    (queue, Arc::new(std::sync::Mutex::new(rx)))
}

//! The log's sync thread: it makes the write-ahead log durable while the writer applies the
//! batch it just appended, so that the disk's sync and the transaction overlap instead of
//! adding up. A batch's requests are answered once the batch is both applied (by the writer)
//! and on disk (a sync that began after its record was written has returned, or a checkpoint
//! has made it durable in the data file). One sync covers every record written before it, so
//! under load one sync answers several batches (group commit).

use std::collections::VecDeque;
use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{Ack, Reply};
use crate::store::StoreError;

/// The answers of one applied batch.
pub(super) type Answers = Vec<(Reply, Ack)>;

#[derive(Default)]
struct State {
    /// The sequence number of the last record written to the log.
    written: u64,
    /// Every record up to this one is on disk.
    synced: u64,
    /// Applied batches waiting for their record's sync, oldest first.
    waiting: VecDeque<(u64, Answers)>,
    /// Why the last sync failed (the writer checkpoints instead).
    failed: Option<String>,
    stop: bool,
}

/// The writer's side of the sync thread; dropping it stops the thread.
pub(super) struct Syncer {
    shared: Arc<(Mutex<State>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Syncer {
    /// Starts the thread syncing `file` (a handle of the log), with every record up to
    /// `synced` already durable.
    pub(super) fn start(file: File, synced: u64) -> Result<Syncer, StoreError> {
        let shared = Arc::new((
            Mutex::new(State {
                written: synced,
                synced,
                ..Default::default()
            }),
            Condvar::new(),
        ));
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("picket-log-sync".into())
            .spawn(move || run(file, &theirs))
            .map_err(|e| StoreError::Io(format!("cannot start the log's sync thread: {e}")))?;
        Ok(Syncer {
            shared,
            thread: Some(thread),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record `seq` has been written: sync it.
    pub(super) fn written(&self, seq: u64) {
        self.state().written = seq;
        self.shared.1.notify_all();
    }

    /// A batch logged as `seq` is applied: its answers go out once its record is on disk.
    pub(super) fn applied(&self, seq: u64, answers: Answers) {
        let mut state = self.state();
        if seq <= state.synced {
            drop(state);
            send(answers);
        } else {
            state.waiting.push_back((seq, answers));
        }
    }

    /// Why a sync failed since the last call, if one did.
    pub(super) fn failure(&self) -> Option<String> {
        self.state().failed.take()
    }

    /// Everything written so far is durable by other means (a checkpoint): every waiting
    /// batch is answered.
    pub(super) fn all_durable(&self) {
        let answers = {
            let mut state = self.state();
            state.synced = state.written;
            std::mem::take(&mut state.waiting)
        };
        for (_, a) in answers {
            send(a);
        }
    }

    /// Neither the log nor a checkpoint made the waiting batches durable: they are answered
    /// with the error, and their clients send them again. (After a failed commit redb refuses
    /// further writes, so no retry is answered as a stored duplicate of an event that is not
    /// durable; a restart replays what the log holds.)
    pub(super) fn fail_waiting(&self, e: &StoreError) {
        let waiting = std::mem::take(&mut self.state().waiting);
        for (_, answers) in waiting {
            for (reply, _) in answers {
                let _ = reply.send(Err(StoreError::Db(e.to_string())));
            }
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.state().stop = true;
        self.shared.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Tells each request of a batch what became of it.
pub(super) fn send(answers: Answers) {
    for (reply, ack) in answers {
        let _ = reply.send(Ok(ack));
    }
}

fn run(file: File, shared: &(Mutex<State>, Condvar)) {
    let (lock, wake) = shared;
    let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        while state.written <= state.synced && !state.stop {
            state = wake.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.written <= state.synced {
            return;
        }
        let target = state.written;
        drop(state);
        let synced = file.sync_data();
        state = lock.lock().unwrap_or_else(|e| e.into_inner());
        match synced {
            Ok(()) => {
                state.synced = state.synced.max(target);
                let mut ready = Vec::new();
                while state.waiting.front().is_some_and(|(seq, _)| *seq <= target) {
                    ready.extend(state.waiting.pop_front());
                }
                drop(state);
                for (_, answers) in ready {
                    send(answers);
                }
                state = lock.lock().unwrap_or_else(|e| e.into_inner());
            }
            Err(e) => {
                tracing::error!("syncing the log failed (a checkpoint follows): {e}");
                if state.stop {
                    // No checkpoint follows a stopping writer: what waits is not answered.
                    return;
                }
                state.failed = Some(e.to_string());
                // The writer checkpoints and then says what is durable; until it has, the
                // failed records count as unsynced.
                while state.failed.is_some() && !state.stop {
                    state = wake.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot::{self, error::TryRecvError};

    #[test]
    fn a_batch_is_answered_once_its_record_is_synced_or_a_checkpoint_made_it_durable() {
        let syncer = Syncer::start(tempfile::tempfile().unwrap(), 0).unwrap();
        let (reply, answer) = oneshot::channel();
        syncer.written(1);
        syncer.applied(1, vec![(reply, Ack::Stored)]);
        assert!(matches!(answer.blocking_recv(), Ok(Ok(Ack::Stored))));

        // Applied, but its record's write not yet announced: it waits…
        let (reply, mut answer) = oneshot::channel();
        syncer.applied(2, vec![(reply, Ack::Duplicate)]);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(answer.try_recv().unwrap_err(), TryRecvError::Empty);
        // …until a checkpoint makes everything applied durable.
        syncer.all_durable();
        assert!(matches!(answer.blocking_recv(), Ok(Ok(Ack::Duplicate))));

        // What neither made durable is answered with the error.
        let (reply, answer) = oneshot::channel();
        syncer.applied(3, vec![(reply, Ack::Stored)]);
        syncer.fail_waiting(&StoreError::Io("the disk is gone".into()));
        assert!(matches!(answer.blocking_recv(), Ok(Err(_))));

        // Stopping syncs what was written and answers what waited for it.
        let (reply, answer) = oneshot::channel();
        syncer.written(4);
        syncer.applied(4, vec![(reply, Ack::Stored)]);
        drop(syncer);
        assert!(matches!(answer.blocking_recv(), Ok(Ok(Ack::Stored))));
    }
}

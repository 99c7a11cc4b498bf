//! The data file as redb reads and writes it: redb's own file backend, except that a write the
//! disk has no room for waits for room instead of failing.
//!
//! redb treats any failed write as fatal to the open database: every later call fails until it
//! is closed and opened again, so one full disk would stop the writer for good (every event
//! refused until a restart). Here a write or a growth of the file that meets `ENOSPC` (or a
//! quota) is retried every second: the transaction in progress stays intact and commits once
//! space is freed, and nothing acknowledged is lost. Meanwhile intake refuses new events (the
//! disk guard, the full queue) and `/health` and `picket status` say the writer waits for disk
//! space. Reads, `fsync` and every other failure pass through unchanged: retrying a failed
//! `fsync` is not safe, so that one still fails the database (and the server restarts).

use std::fs::File;
use std::io;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// Unix seconds since when a write waits for disk space (0: none waits).
static WAITING_SINCE: AtomicU64 = AtomicU64::new(0);
/// Set when the process stops: a waiting write then fails instead of waiting on.
static GIVE_UP: AtomicBool = AtomicBool::new(false);

/// How long a write that found the disk full waits before trying again.
const RETRY: Duration = Duration::from_secs(1);

/// Since when (Unix seconds) the data file's writer waits for disk space, if it does.
pub fn waiting_for_space() -> Option<u64> {
    match WAITING_SINCE.load(Ordering::SeqCst) {
        0 => None,
        since => Some(since),
    }
}

/// Makes a write waiting for space fail, so that a stopping server does not wait forever.
pub fn stop_waiting() {
    GIVE_UP.store(true, Ordering::SeqCst);
}

/// redb's file backend with writes that wait for disk space.
#[derive(Debug)]
pub struct PatientFile {
    inner: FileBackend,
}

impl PatientFile {
    pub fn new(file: File) -> Result<PatientFile, redb::DatabaseError> {
        Ok(PatientFile {
            inner: FileBackend::new(file)?,
        })
    }
}

/// Runs a write (to the data file or its log) until it succeeds, fails for another reason
/// than a full disk, or the process stops.
pub fn patiently(mut write: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    let mut warned = false;
    loop {
        match write() {
            Err(e) if is_full(&e) && !GIVE_UP.load(Ordering::SeqCst) => {
                if !warned {
                    tracing::error!(
                        "the disk holding the data file is full ({e}): the writer waits for space and retries every second; intake refuses events meanwhile"
                    );
                    let now = crate::time::now() as u64;
                    let _ = WAITING_SINCE.compare_exchange(
                        0,
                        now.max(1),
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                    warned = true;
                }
                std::thread::sleep(RETRY);
            }
            result => {
                if warned && result.is_ok() {
                    tracing::warn!("disk space is available again: the writer goes on");
                    WAITING_SINCE.store(0, Ordering::SeqCst);
                }
                return result;
            }
        }
    }
}

fn is_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

impl StorageBackend for PatientFile {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        patiently(|| self.inner.set_len(len))
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        patiently(|| self.inner.write(offset, data))
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

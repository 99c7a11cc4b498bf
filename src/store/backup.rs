//! Copies of the data file. A backup reads one consistent snapshot (a redb read transaction,
//! which never blocks the writer) and writes it into an unnamed file in the destination
//! directory (`O_TMPFILE`), which gets its name `DEST/picket.redb` only once complete: a backup
//! that fails or is killed midway leaves nothing behind. (On a filesystem without unnamed
//! files, a `picket.redb.partial` renamed into place when complete, removed on failure and by
//! the next backup.) `check` verifies a file's integrity.

use std::path::{Path, PathBuf};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};

use super::for_each_table;
use super::{EVENTS, ISSUES, PROJECTS, StoreError, file_in};

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub rows: u64,
    pub events: u64,
    pub bytes: u64,
}

/// Reports rows copied so far out of the total.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

fn io_error(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

fn len<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    match txn.open_table(def) {
        Ok(t) => Ok(t.len()?),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

fn copy<K: redb::Key + 'static, V: redb::Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<K, V>,
    done: &mut u64,
    total: u64,
    progress: Progress<'_>,
) -> Result<(), StoreError> {
    let mut to = dst.open_table(def)?;
    let from = match src.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for row in redb::ReadableTable::iter(&from)? {
        let (k, v) = row?;
        to.insert(k.value(), v.value())?;
        *done += 1;
        if (*done).is_multiple_of(4096) {
            progress(*done, total);
        }
    }
    Ok(())
}

/// Copies a consistent snapshot of `db` into `dest_dir/picket.redb`.
pub fn backup(
    db: &Database,
    dest_dir: &Path,
    progress: Progress<'_>,
) -> Result<BackupSummary, StoreError> {
    std::fs::create_dir_all(dest_dir).map_err(|e| io_error("cannot create", dest_dir, e))?;
    let dest = file_in(dest_dir);
    if dest.exists() {
        return Err(StoreError::Conflict(format!(
            "{} exists already; back up into an empty directory",
            dest.display()
        )));
    }
    let partial = dest.with_extension("redb.partial");
    let _ = std::fs::remove_file(&partial);
    let snapshot = db.begin_read()?;
    let (rows, events) = match unnamed_file(dest_dir) {
        Some(file) => {
            use std::os::fd::AsRawFd;
            let fd = file.as_raw_fd();
            let backend = redb::backends::FileBackend::new(file)
                .map_err(|e| io_error("cannot create", dest_dir, e))?;
            let out = Database::builder()
                .create_with_backend(backend)
                .map_err(|e| io_error("cannot create", dest_dir, e))?;
            let copied = write_copy(&snapshot, &out, progress)?;
            // The copy is committed (and synced): give it its name.
            link_unnamed(fd, &dest).map_err(|e| io_error("cannot name the backup", &dest, e))?;
            drop(out);
            copied
        }
        None => {
            let copied = Database::create(&partial)
                .map_err(|e| io_error("cannot create", &partial, e))
                .and_then(|out| write_copy(&snapshot, &out, progress));
            match copied {
                Ok(copied) => {
                    std::fs::rename(&partial, &dest)
                        .map_err(|e| io_error("cannot move the backup into", &dest, e))?;
                    copied
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
            }
        }
    };
    if let Ok(dir) = std::fs::File::open(dest_dir) {
        let _ = dir.sync_all();
    }
    let bytes = std::fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    Ok(BackupSummary {
        path: dest,
        rows,
        events,
        bytes,
    })
}

/// A file in `dir` with no name yet (`O_TMPFILE`), readable by its owner only; `None` where
/// the filesystem has no such files.
fn unnamed_file(dir: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .ok()
}

/// Gives an unnamed file (by its descriptor) the name `dest`.
fn link_unnamed(fd: std::os::fd::RawFd, dest: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(format!("/proc/self/fd/{fd}"))?;
    let to = std::ffi::CString::new(dest.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths for the duration of the call.
    let done = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn write_copy(
    snapshot: &ReadTransaction,
    out: &Database,
    progress: Progress<'_>,
) -> Result<(u64, u64), StoreError> {
    let mut total = 0;
    macro_rules! count {
        ($table:path) => {
            total += len(snapshot, $table)?;
        };
    }
    for_each_table!(count);
    let txn = out.begin_write()?;
    let mut done = 0;
    macro_rules! copy_table {
        ($table:path) => {
            copy(snapshot, &txn, $table, &mut done, total, progress)?;
        };
    }
    for_each_table!(copy_table);
    txn.commit()?;
    progress(done, total);
    Ok((done, len(snapshot, EVENTS)?))
}

/// What `check` found in a data file.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CheckReport {
    pub path: PathBuf,
    pub ok: bool,
    pub schema_version: Option<u64>,
    pub projects: u64,
    pub issues: u64,
    pub events: u64,
    pub bytes: u64,
    /// Batches in the write-ahead log past the last checkpoint: acknowledged, and applied to
    /// the data file when picket next opens it.
    #[serde(default)]
    pub log_batches: u64,
    /// Bytes of the log (`picket.wal`).
    #[serde(default)]
    pub log_bytes: u64,
    /// Bytes at the log's end that are a record cut short by a crash (never acknowledged;
    /// dropped when picket next opens the directory).
    #[serde(default)]
    pub log_torn_bytes: u64,
}

/// Verifies a data file (checksums of every page), which must not be open elsewhere.
pub fn check(data_dir: &Path) -> Result<CheckReport, StoreError> {
    let path = file_in(data_dir);
    if !path.exists() {
        return Err(StoreError::NotFound(format!(
            "no data file at {}",
            path.display()
        )));
    }
    // A damaged file may stop redb with a panic (debug builds always do): that is the answer.
    let checked = std::panic::catch_unwind(|| {
        let mut db = Database::open(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.clone() },
            redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
                StoreError::Damaged(detail)
            }
            other => StoreError::Db(format!("cannot open {}: {other}", path.display())),
        })?;
        let ok = db.check_integrity()?;
        Ok::<_, StoreError>((db, ok))
    })
    .unwrap_or_else(|panic| Err(StoreError::Damaged(super::panic_detail(panic.as_ref()))));
    let (db, ok) = checked?;
    let txn = db.begin_read()?;
    let (records, log_torn_bytes) = super::wal::pending(data_dir)?;
    let applied = super::wal::applied(&txn)?;
    Ok(CheckReport {
        log_batches: records.iter().filter(|r| r.seq > applied).count() as u64,
        log_bytes: std::fs::metadata(super::wal::file_in(data_dir)).map_or(0, |m| m.len()),
        log_torn_bytes,
        ok,
        schema_version: super::schema_version(&db)?,
        projects: len(&txn, PROJECTS)?,
        issues: len(&txn, ISSUES)?,
        events: len(&txn, EVENTS)?,
        bytes: std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
        path,
    })
}

/// Shrinks a data file by moving its pages down and truncating the free tail. The server must
/// be stopped. Returns the file size before and after.
pub fn compact(data_dir: &Path) -> Result<(u64, u64), StoreError> {
    let path = file_in(data_dir);
    if !path.exists() {
        return Err(StoreError::NotFound(format!(
            "no data file at {}",
            path.display()
        )));
    }
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let mut db = Database::open(&path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.clone() },
        other => StoreError::Db(format!("cannot open {}: {other}", path.display())),
    })?;
    while db.compact().map_err(|e| StoreError::Db(e.to_string()))? {}
    drop(db);
    Ok((before, size()))
}

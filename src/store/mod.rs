//! The store: one redb file holds all of picket's state. This module opens it, checks its
//! schema version, and names its tables; one file per concern holds the rows and the
//! functions that read and write them inside a transaction the caller owns.
//!
//! Values are bytes that picket encodes itself (MessagePack with named fields, so added
//! fields stay readable by older and newer binaries), never redb tuple types. Keys may be
//! tuples: they are an index, not a record. Counters are plain `u64`.

pub mod activity;
pub mod alerts;
pub mod artifacts;
pub mod attachments;
pub mod audit;
pub mod backend;
pub mod backup;
pub mod dictionary;
pub mod events;
pub mod feedback;
pub mod health;
pub mod issues;
pub mod key_cache;
pub mod monitors;
pub mod outbox;
pub mod outcomes;
pub mod projects;
pub mod releases;
pub mod sessions;
pub mod sketch;
pub mod slices;
pub mod tables;
pub mod tokens;
pub mod users;
pub mod wal;

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, TableDefinition};
use serde::{Serialize, de::DeserializeOwned};

/// The schema this binary writes. Bump it with a migration in [`upgrade`].
pub const SCHEMA_VERSION: u64 = 1;

/// Small facts about the file: `schema_version`, `event_seq`.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// META key of the last arrival sequence number handed out (how many events have arrived).
pub(crate) const EVENT_SEQ: &str = "event_seq";
/// META key of the bytes source-map uploads hold, which the disk budget leaves to them.
pub(crate) const ARTIFACT_BYTES: &str = "artifact_bytes";
/// META key of the bytes of uploaded chunks waiting to be assembled.
pub(crate) const CHUNK_BYTES: &str = "chunk_bytes";
/// Project id → Project.
pub(crate) const PROJECTS: TableDefinition<u64, &[u8]> = TableDefinition::new("projects");
/// Slug → project id.
pub(crate) const PROJECT_SLUGS: TableDefinition<&str, u64> = TableDefinition::new("project_slugs");
/// Public key → ProjectKey.
pub(crate) const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("keys");
/// (project, issue number) → Issue.
pub(crate) const ISSUES: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("issues");
/// (project, fingerprint hash) → issue number.
pub(crate) const ISSUE_HASHES: TableDefinition<(u64, &[u8]), u64> =
    TableDefinition::new("issue_hashes");
/// (project, event id) → stored event.
pub(crate) const EVENTS: TableDefinition<(u64, &[u8]), &[u8]> = TableDefinition::new("events");
/// (project, issue, arrival sequence) → event id: an issue's events in arrival order.
pub(crate) const ISSUE_EVENTS: TableDefinition<(u64, u64, u64), &[u8]> =
    TableDefinition::new("issue_events");
/// (project, issue, hour since epoch) → events in that hour.
pub(crate) const ISSUE_HOURS: TableDefinition<(u64, u64, u64), u64> =
    TableDefinition::new("issue_hours");
/// (project, issue, tag key, tag value) → events with that tag. At most
/// [`tables::MAX_TAG_KEYS`] keys and [`tables::MAX_TAG_VALUES`] values per key are kept per
/// issue; the rest are counted under [`tables::OTHER_TAG`].
pub(crate) const ISSUE_TAGS: TableDefinition<(u64, u64, &str, &str), u64> =
    TableDefinition::new("issue_tags");
/// (project, issue, tag key) → how many distinct values of that key the issue keeps.
pub(crate) const ISSUE_TAG_KEYS: TableDefinition<(u64, u64, &str), u64> =
    TableDefinition::new("issue_tag_keys");
/// Arrival sequence → `[project][issue][received secs][event id]` (40 bytes): every stored
/// event in arrival order, for expiry by age.
pub(crate) const ARRIVALS: TableDefinition<u64, &[u8]> = TableDefinition::new("arrivals");
/// (project, arrival sequence) → `[event id][queued at]`: events waiting to be forwarded
/// upstream, written in the transaction that stores the event.
pub(crate) const FORWARD_OUTBOX: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("forward_outbox");
/// (project, arrival sequence) → DeadLetter: events upstream refused for good.
pub(crate) const FORWARD_DEAD: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("forward_dead");
/// Project id → ForwardCounts.
pub(crate) const FORWARD_COUNTS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("forward_counts");
/// Alert sequence → Alert: alerts waiting to be mailed or posted.
pub(crate) const ALERT_OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("alert_outbox");
/// Log file path → tail position record: where the server's own `[[tail]]` workers are.
pub(crate) const TAIL_POSITIONS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("tail_positions");
/// Hash of a session token → Session (signed-in browsers).
pub(crate) const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
/// (project, hour since epoch) → events in that hour, for the projects page.
pub(crate) const PROJECT_HOURS: TableDefinition<(u64, u64), u64> =
    TableDefinition::new("project_hours");
/// Compression dictionaries of stored events, by id (see `dictionary`).
pub(crate) const DICTIONARIES: TableDefinition<u64, &[u8]> = TableDefinition::new("dictionaries");
/// Email → User (accounts of the web UI).
pub(crate) const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// API tokens by the hash of their secret.
pub(crate) const API_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_tokens");
/// Releases by version.
pub(crate) const RELEASES: TableDefinition<&str, &[u8]> = TableDefinition::new("releases");
/// Uploaded chunks by SHA-1 (8 bytes of upload time, then the data), until assembled.
pub(crate) const CHUNKS: TableDefinition<&str, &[u8]> = TableDefinition::new("chunks");
/// Artifact bundles by (project, id).
pub(crate) const ARTIFACT_BUNDLES: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("artifact_bundles");
/// Artifact files by (project, `{bundle}/{n}`).
pub(crate) const ARTIFACT_FILES: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("artifact_files");
/// Where to find an artifact file, by (project, `debug/…` or `url/…` key).
pub(crate) const ARTIFACT_INDEX: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("artifact_index");
/// What (project, version)'s events said about a release.
pub(crate) const RELEASE_STATS: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("release_stats");

/// Applies `$apply!(TABLE)` to every table of the file. The one list of tables: schema
/// creation and backups both go through it, so a new table cannot be left out of a backup.
macro_rules! for_each_table {
    ($apply:ident) => {
        $apply!($crate::store::META);
        $apply!($crate::store::PROJECTS);
        $apply!($crate::store::PROJECT_SLUGS);
        $apply!($crate::store::KEYS);
        $apply!($crate::store::ISSUES);
        $apply!($crate::store::ISSUE_HASHES);
        $apply!($crate::store::EVENTS);
        $apply!($crate::store::ISSUE_EVENTS);
        $apply!($crate::store::ISSUE_HOURS);
        $apply!($crate::store::ISSUE_TAGS);
        $apply!($crate::store::ISSUE_TAG_KEYS);
        $apply!($crate::store::ARRIVALS);
        $apply!($crate::store::USERS);
        $apply!($crate::store::FORWARD_OUTBOX);
        $apply!($crate::store::FORWARD_DEAD);
        $apply!($crate::store::FORWARD_COUNTS);
        $apply!($crate::store::ALERT_OUTBOX);
        $apply!($crate::store::TAIL_POSITIONS);
        $apply!($crate::store::SESSIONS);
        $apply!($crate::store::PROJECT_HOURS);
        $apply!($crate::store::DICTIONARIES);
        $apply!($crate::store::API_TOKENS);
        $apply!($crate::store::RELEASES);
        $apply!($crate::store::RELEASE_STATS);
        $apply!($crate::store::CHUNKS);
        $apply!($crate::store::ARTIFACT_BUNDLES);
        $apply!($crate::store::ARTIFACT_FILES);
        $apply!($crate::store::ARTIFACT_INDEX);
        $apply!($crate::store::feedback::FEEDBACK);
        $apply!($crate::store::feedback::FEEDBACK_IDS);
        $apply!($crate::store::feedback::FEEDBACK_PENDING);
        $apply!($crate::store::attachments::ATTACHMENTS);
        $apply!($crate::store::attachments::ATTACHMENT_DATA);
        $apply!($crate::store::outcomes::OUTCOMES);
        $apply!($crate::store::health::SESSION_HOURS);
        $apply!($crate::store::monitors::MONITORS);
        $apply!($crate::store::activity::ISSUE_ACTIVITY);
        $apply!($crate::store::slices::ISSUE_SLICES);
        $apply!($crate::store::slices::ISSUE_USERS);
        $apply!($crate::store::slices::SLICE_HOURS);
        $apply!($crate::store::slices::ISSUE_TERMS);
        $apply!($crate::store::audit::AUDIT);
    };
}
pub(crate) use for_each_table;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data file {path} is in use by another picket process (a running server?); \
         stop it, or run the command while it runs so it goes through its control socket"
    )]
    Locked { path: PathBuf },
    #[error(
        "the data file has schema version {found}, newer than this picket understands \
         ({supported}); run a newer picket"
    )]
    TooNew { found: u64, supported: u64 },
    #[error(
        "the data file has schema version {found}; run `picket upgrade` to migrate it to {supported}"
    )]
    NeedsUpgrade { found: u64, supported: u64 },
    #[error(
        "there is no data file at {} (is --data-dir or PICKET_DATA_DIR right? `picket start` \
         makes one)",
        .path.display()
    )]
    Missing { path: PathBuf },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Reading or writing a file other than the store (a backup's destination).
    #[error("{0}")]
    Io(String),
    #[error("corrupt record in table {table}: {cause}")]
    Corrupt { table: &'static str, cause: String },
    #[error("storage error: {0}")]
    Db(String),
    /// The file is not what redb wrote: a page fails its structure (a disk error, or a change
    /// made outside picket).
    #[error(
        "the data file is damaged ({0}): stop picket, run `picket check`, and restore the file \
         from a backup (README, \"Retention and backups\", restore procedure)"
    )]
    Damaged(String),
    #[error("the writer has stopped")]
    WriterGone,
}

macro_rules! db_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                match redb::Error::from(e) {
                    redb::Error::Corrupted(detail) => StoreError::Damaged(detail),
                    other => StoreError::Db(other.to_string()),
                }
            }
        }
    )*};
}
db_error!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::DatabaseError
);

/// Damage to the data file found while serving (the first report).
static DAMAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records that the data file is damaged; the server then stops with status 78 and `/health`
/// and intake say why.
pub fn report_damage(detail: &str) {
    if DAMAGE.set(detail.to_string()).is_ok() {
        tracing::error!("{}", StoreError::Damaged(detail.to_string()));
    }
}

/// The damage found in the data file, if any.
pub fn damage() -> Option<&'static str> {
    DAMAGE.get().map(String::as_str)
}

/// Rows [`scan`] reads in one snapshot.
const SCAN_CHUNK: u64 = 4096;

/// Reads every row of every table once, as a check that the file is what redb wrote: a page
/// that is not comes back as [`StoreError::Damaged`]. The rows read, or `None` when `pause`
/// said to stop. Reads [`SCAN_CHUNK`] rows per snapshot and calls `pause` between them: a
/// snapshot held for the whole file would keep redb from reusing the pages commits free
/// meanwhile (the file would grow under a flow of events), and the server, which runs it in the
/// background at start, waits there so that the scan takes a share of a core, not the writer's.
pub fn scan(db: &Database, mut pause: impl FnMut() -> bool) -> Result<Option<u64>, StoreError> {
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        db: &Database,
        def: TableDefinition<K, V>,
        pause: &mut dyn FnMut() -> bool,
    ) -> Result<Option<u64>, StoreError> {
        use std::ops::Bound;
        let (mut rows, mut after) = (0, None::<Vec<u8>>);
        loop {
            let txn = db.begin_read()?;
            let table = match txn.open_table(def) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Some(rows)),
                Err(e) => return Err(e.into()),
            };
            let chunk = match &after {
                None => table.range::<K::SelfType<'_>>(..)?,
                Some(key) => table.range::<K::SelfType<'_>>((
                    Bound::Excluded(K::from_bytes(key)),
                    Bound::Unbounded,
                ))?,
            };
            let mut read = 0;
            after = None;
            for row in chunk {
                let (k, v) = row?;
                let key = k.value();
                std::hint::black_box((&key, v.value()));
                read += 1;
                if read == SCAN_CHUNK {
                    after = Some(K::as_bytes(&key).as_ref().to_vec());
                    break;
                }
            }
            rows += read;
            if after.is_none() {
                return Ok(Some(rows));
            }
            drop(table);
            drop(txn);
            if !pause() {
                return Ok(None);
            }
        }
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut rows = 0;
        macro_rules! read {
            ($def:path) => {
                match table(db, $def, &mut pause)? {
                    Some(n) => rows += n,
                    None => return Ok(None),
                }
            };
        }
        for_each_table!(read);
        Ok(Some(rows))
    }))
    .unwrap_or_else(|panic| Err(StoreError::Damaged(panic_detail(panic.as_ref()))))
}

/// What a panic inside redb said, for a damage report.
pub fn panic_detail(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "redb stopped on a page it could not read".into())
}

/// Encodes a record as MessagePack with field names.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing picket's own structs to a Vec cannot fail: no maps with non-string keys,
    // no I/O. An empty record would surface as a decode error, never as silent data.
    rmp_serde::to_vec_named(value).unwrap_or_default()
}

pub(crate) fn decode<T: DeserializeOwned>(
    table: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    rmp_serde::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        cause: e.to_string(),
    })
}

/// The file inside a data directory.
/// The size of one region of the file (redb's). redb doubles a file smaller than that and then
/// grows it one region at a time.
const REGION_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// About how long the file would be after its next growth step (never less).
pub fn next_growth(len: u64) -> u64 {
    if len < REGION_BYTES {
        len.saturating_mul(2)
    } else {
        len.saturating_add(REGION_BYTES)
    }
}

/// redb's page cache for commands; the server takes `[pipeline] page_cache` (the same by
/// default). redb's default (1 GiB) lets the resident size grow with the file under a flood;
/// recent pages are what the writer and the UI read, and the OS page cache holds more.
const CACHE_BYTES: usize = crate::config::PAGE_CACHE as usize;

pub fn file_in(data_dir: &Path) -> PathBuf {
    data_dir.join("picket.redb")
}

/// Opens the data file, which must exist, and checks its schema version: what commands do,
/// which act on a store the server made rather than make a new one where they were pointed.
pub fn open_existing(data_dir: &Path) -> Result<Database, StoreError> {
    let path = file_in(data_dir);
    if !path.exists() {
        return Err(StoreError::Missing { path });
    }
    open(data_dir)
}

/// Opens (creating if needed) the data file and checks its schema version.
pub fn open(data_dir: &Path) -> Result<Database, StoreError> {
    open_cached(data_dir, CACHE_BYTES)
}

/// [`open`], with a page cache of `cache_bytes`.
pub fn open_cached(data_dir: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    let db = open_file(data_dir, cache_bytes)?;
    let found = schema_version(&db)?;
    match found {
        None => init_schema(&db)?,
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::TooNew {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        Some(v) if v < SCHEMA_VERSION => {
            return Err(StoreError::NeedsUpgrade {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        Some(_) => add_missing_tables(&db)?,
    }
    dictionary::register_all(&db)?;
    Ok(db)
}

/// Opens the file without looking at its schema (for `upgrade`). A new data directory is made
/// readable by its owner only (0700) and a new file likewise (0600); an existing file of 0
/// bytes is refused rather than silently made into a new, empty store.
pub fn open_unchecked(data_dir: &Path) -> Result<Database, StoreError> {
    open_file(data_dir, CACHE_BYTES)
}

fn open_file(data_dir: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|e| {
            StoreError::Db(format!(
                "cannot create data directory {}: {e}",
                data_dir.display()
            ))
        })?;
    let path = file_in(data_dir);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
        return Err(StoreError::Db(format!(
            "{} is empty (0 bytes), so it is not a picket data file: restore it from a backup \
             (see the README's \"Retention and backups\"), or remove it to start a new store",
            path.display()
        )));
    }
    let cannot =
        |e: &dyn std::fmt::Display| StoreError::Db(format!("cannot open {}: {e}", path.display()));
    let file = open_private(&path).map_err(|e| cannot(&e))?;
    let backend = backend::PatientFile::new(file).map_err(|e| cannot(&e))?;
    // redb may stop with a panic on a page that is not what it wrote (debug builds always do).
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_backend(backend)
    }))
    .map_err(|panic| StoreError::Damaged(panic_detail(panic.as_ref())))?;
    opened.map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked { path: path.clone() },
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::WouldBlock =>
        {
            StoreError::Locked { path: path.clone() }
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            StoreError::Damaged(detail)
        }
        other => cannot(&other),
    })
}

pub fn schema_version(db: &Database) -> Result<Option<u64>, StoreError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(table.get("schema_version")?.map(|v| v.value()))
}

/// Creates every table and stamps the schema version, in one transaction.
fn init_schema(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    create_tables(&txn)?;
    txn.open_table(META)?
        .insert("schema_version", SCHEMA_VERSION)?;
    txn.commit()?;
    Ok(())
}

/// Creates the tables a newer picket added within the same schema version (they start empty).
fn add_missing_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_read()?;
    let mut missing = false;
    macro_rules! check {
        ($table:path) => {
            if let Err(redb::TableError::TableDoesNotExist(_)) = txn.open_table($table) {
                missing = true;
            }
        };
    }
    for_each_table!(check);
    drop(txn);
    if missing {
        let txn = db.begin_write()?;
        create_tables(&txn)?;
        txn.commit()?;
    }
    Ok(())
}

fn create_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    macro_rules! create {
        ($table:path) => {
            txn.open_table($table)?;
        };
    }
    for_each_table!(create);
    Ok(())
}

/// Migrates the file to [`SCHEMA_VERSION`]. Returns the versions before and after.
pub fn upgrade(db: &Database) -> Result<(Option<u64>, u64), StoreError> {
    let before = schema_version(db)?;
    match before {
        Some(v) if v > SCHEMA_VERSION => Err(StoreError::TooNew {
            found: v,
            supported: SCHEMA_VERSION,
        }),
        Some(v) if v == SCHEMA_VERSION => Ok((before, v)),
        // Version 1 is the first schema: a file without one only lacks its tables.
        _ => {
            init_schema(db)?;
            Ok((before, SCHEMA_VERSION))
        }
    }
}

/// Opens (or makes) a file of the data directory for reading and writing, readable by
/// picket's user only (mode 0600): the data file and its log hold the events.
pub(crate) fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// Bytes as MessagePack `bin` (an array of small integers would be larger and slower):
/// `#[serde(with = "store::bytes")]`.
pub(crate) mod bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_newer_than_this_binary_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open(dir.path()).unwrap();
            assert_eq!(schema_version(&db).unwrap(), Some(SCHEMA_VERSION));
            let txn = db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("schema_version", SCHEMA_VERSION + 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains("newer"));
        let db = open_unchecked(dir.path()).unwrap();
        assert!(matches!(upgrade(&db), Err(StoreError::TooNew { .. })));
    }

    #[test]
    fn the_scan_reads_every_row_across_its_snapshots_and_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).unwrap();
        let rows = |db: &Database| scan(db, || true).unwrap().unwrap();
        let before = rows(&db);
        let n = 3 * SCAN_CHUNK + 7;
        let txn = db.begin_write().unwrap();
        {
            let mut arrivals = txn.open_table(ARRIVALS).unwrap();
            for seq in 0..n {
                arrivals.insert(seq, [7u8; 40].as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
        assert_eq!(rows(&db), before + n, "a row was skipped or read twice");
        // Between the snapshots the scan asks whether to go on: three chunk ends here.
        let mut pauses = 0;
        let stopped = scan(&db, || {
            pauses += 1;
            pauses < 2
        })
        .unwrap();
        assert_eq!((stopped, pauses), (None, 2));
    }

    #[test]
    fn a_second_opener_is_told_the_file_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _first = open(dir.path()).unwrap();
        let err = open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    }
}

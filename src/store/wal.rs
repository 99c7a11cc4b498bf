//! The write-ahead log beside the data file (`picket.wal`): the writer appends each batch it
//! is about to apply as one record and syncs it before anyone is told the batch is stored;
//! the data file itself is then written without waiting for the disk, and made durable at a
//! checkpoint every few seconds, after which the log starts over. Opening the data directory
//! reads the records a crash left behind so they can be applied again.
//!
//! A record is `length (u32) | CRC-32 of what follows (u32) | sequence number (u64) |
//! payload`, little-endian, and each write ends in an end mark (16 zero bytes) that the next
//! record overwrites. Starting over keeps the file and writes from its beginning again: a sync
//! of blocks the file already has writes only them (appending past the end makes the sync
//! write the file's size and block map too, half again as long here), and the file keeps the
//! size of the longest run between checkpoints. The log ends at an end mark, at the end of the
//! file, or at a record numbered no higher than the one before it (left from before the
//! start-over). Anything else there (a record cut short or failing its checksum: a crash in
//! the middle of a write) was never acknowledged, and is cut off.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::StoreError;

/// The META key of the sequence number of the last batch applied to the data file (stored
/// in the transaction that applies it).
pub const APPLIED: &str = "wal_seq";

/// The sequence number of the last batch the data file holds (0: none).
pub fn applied(txn: &redb::ReadTransaction) -> Result<u64, StoreError> {
    let meta = txn.open_table(super::META)?;
    Ok(redb::ReadableTable::get(&meta, APPLIED)?.map_or(0, |v| v.value()))
}

/// The log's file name in the data directory.
pub const FILE_NAME: &str = "picket.wal";
/// Bytes before a record's payload.
const HEADER: usize = 16;
/// The largest record read back (a batch is bounded far below this).
const MAX_RECORD: u32 = 1 << 30;
/// What follows the last record written: a header no record has (its checksum is wrong).
const END_MARK: [u8; HEADER] = [0; HEADER];

/// The path of the log in a data directory.
pub fn file_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// The open log, positioned at its end.
#[derive(Debug)]
pub struct Wal {
    file: File,
    path: PathBuf,
    /// Bytes of the records since the log started over: where the next one is written (the
    /// file may hold older records past it).
    len: u64,
    /// The highest sequence number written to the log since it was opened (or found in it).
    last_seq: u64,
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub payload: Vec<u8>,
}

fn io(path: &Path, what: &str) -> impl Fn(std::io::Error) -> StoreError {
    let path = path.display().to_string();
    let what = what.to_string();
    move |e| StoreError::Io(format!("{what} the log {path}: {e}"))
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Where the log in `bytes` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct End {
    /// Bytes of whole records (the offset of the next write).
    pub at: usize,
    /// Bytes from there to the end of the file when what follows the records is neither an
    /// end mark nor a whole older record left by a start-over: a write a crash cut short (0
    /// when the log ends cleanly).
    pub torn: usize,
}

/// The whole records at the start of `bytes`, and where they end.
pub fn parse(bytes: &[u8]) -> (Vec<Record>, End) {
    let mut records: Vec<Record> = Vec::new();
    let mut at = 0;
    let torn = loop {
        let rest = &bytes[at..];
        if rest.len() < HEADER {
            break rest.len();
        }
        if rest[..HEADER] == END_MARK {
            break 0;
        }
        let word = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&rest[i..i + 4]);
            u32::from_le_bytes(b)
        };
        let (len, crc) = (word(0), word(4));
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&rest[8..16]);
        let seq = u64::from_le_bytes(seq);
        if len > MAX_RECORD || HEADER + len as usize > rest.len() {
            break rest.len();
        }
        let payload = &rest[HEADER..HEADER + len as usize];
        if checksum(seq, payload) != crc {
            break rest.len();
        }
        if records.last().is_some_and(|last| seq <= last.seq) {
            // A whole record from before the log started over.
            break 0;
        }
        records.push(Record {
            seq,
            payload: payload.to_vec(),
        });
        at += HEADER + len as usize;
    };
    (records, End { at, torn })
}

impl Wal {
    /// Opens (or makes) the log of a data directory: the records it holds, and the log, its
    /// torn tail (if a crash left one) cut off.
    /// Its events are as private as the data file's: only picket's user reads it (mode 0600).
    pub fn open(data_dir: &Path) -> Result<(Wal, Vec<Record>), StoreError> {
        let path = file_in(data_dir);
        let mut file = super::open_private(&path).map_err(io(&path, "cannot open"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io(&path, "cannot read"))?;
        let (records, end) = parse(&bytes);
        if end.torn > 0 {
            tracing::warn!(
                "the log {} ends in {} bytes of a record cut short by a crash; they were \
                 never acknowledged and are dropped",
                path.display(),
                end.torn
            );
            file.set_len(end.at as u64)
                .map_err(io(&path, "cannot cut the torn end of"))?;
            file.sync_all().map_err(io(&path, "cannot sync"))?;
        }
        Ok((
            Wal {
                file,
                path,
                len: end.at as u64,
                last_seq: records.iter().map(|r| r.seq).max().unwrap_or(0),
            },
            records,
        ))
    }

    /// Appends a record and waits until it is on disk; returns where it starts (to cut it off
    /// again if it cannot be applied).
    pub fn append(&mut self, seq: u64, payload: &[u8]) -> Result<u64, StoreError> {
        let start = self.write(seq, payload)?;
        if let Err(e) = self.file.sync_data() {
            let _ = self.cut(start);
            return Err(io(&self.path, "cannot sync")(e));
        }
        Ok(start)
    }

    /// Writes a record at the end of the log without waiting for the disk; where it starts.
    fn write(&mut self, seq: u64, payload: &[u8]) -> Result<u64, StoreError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD)
            .ok_or_else(|| StoreError::Io(format!("a log record of {} bytes", payload.len())))?;
        let mut record = Vec::with_capacity(HEADER + payload.len());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&checksum(seq, payload).to_le_bytes());
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(payload);
        record.extend_from_slice(&END_MARK);
        let start = self.len;
        // At its place (so a retry after a full disk writes it whole again), waiting for room
        // like the data file's writes do.
        if let Err(e) = super::backend::patiently(|| self.file.write_all_at(&record, start)) {
            // Whatever part of it reached the file is cut off: it was not acknowledged.
            let _ = self.cut(start);
            return Err(io(&self.path, "cannot append to")(e));
        }
        // The end mark is overwritten by the next record.
        self.len += (record.len() - END_MARK.len()) as u64;
        self.last_seq = self.last_seq.max(seq);
        Ok(start)
    }

    /// Cuts the log back to `at` (a record that could not be applied is not replayed).
    pub fn cut(&mut self, at: u64) -> Result<(), StoreError> {
        self.file
            .set_len(at)
            .and_then(|()| self.file.sync_data())
            .map_err(io(&self.path, "cannot cut"))?;
        self.len = at;
        Ok(())
    }

    /// Starts the log over, after a checkpoint made everything in it durable in the data
    /// file: the next record is written at the start of the file, over the old ones. Old
    /// records a crash leaves readable are applied already, and skipped by their sequence
    /// numbers.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Empties the file as well (when picket stops, after its last checkpoint): what the log
    /// held is in the data file, and a data file restored from a backup later must not find
    /// records of this one's past beside it.
    pub fn truncate(&mut self) -> Result<(), StoreError> {
        self.file
            .set_len(0)
            .map_err(io(&self.path, "cannot empty"))?;
        self.len = 0;
        Ok(())
    }

    /// Bytes of the records since the log started over (not the file's size).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The highest sequence number written since the log was opened: a writer started again
    /// after a panic numbers its batches past it, so that no number is used twice.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The records a data directory's log holds, read without changing it (`picket check`).
pub fn pending(data_dir: &Path) -> Result<(Vec<Record>, u64), StoreError> {
    let path = file_in(data_dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(io(&path, "cannot read")(e)),
    };
    let (records, end) = parse(&bytes);
    Ok((records, end.torn as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, old) = Wal::open(dir.path()).unwrap();
        assert!(old.is_empty());
        let mode = std::fs::metadata(file_in(dir.path()))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        wal.append(1, b"first batch").unwrap();
        let second = wal.append(2, b"second batch").unwrap();
        let third = wal.len();
        drop(wal);
        // A crash in the middle of the third write: part of a header over the end mark.
        let file = OpenOptions::new()
            .write(true)
            .open(file_in(dir.path()))
            .unwrap();
        file.write_all_at(&[40, 0, 0, 0, 1, 2, 3, 4, 3, 0, 0], third)
            .unwrap();
        drop(file);
        assert_eq!(pending(dir.path()).unwrap().1, 16);
        let (mut wal, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(
            records,
            [
                Record {
                    seq: 1,
                    payload: b"first batch".to_vec()
                },
                Record {
                    seq: 2,
                    payload: b"second batch".to_vec()
                }
            ]
        );
        assert_eq!(pending(dir.path()).unwrap().1, 0, "the torn tail is gone");
        // A record that could not be applied is cut off again.
        wal.cut(second).unwrap();
        wal.append(3, b"third").unwrap();
        drop(wal);
        let (mut wal, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(wal.last_seq(), 3);
        wal.clear();
        // Started over, the log still remembers the numbers it used.
        assert_eq!(wal.last_seq(), 3);
        wal.append(4, b"fourth").unwrap();
        assert_eq!(wal.last_seq(), 4);
        assert_eq!(pending(dir.path()).unwrap().0[0].seq, 4);
        wal.truncate().unwrap();
        drop(wal);
        assert!(Wal::open(dir.path()).unwrap().1.is_empty());
    }

    fn record(seq: u64, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&checksum(seq, payload).to_le_bytes());
        bytes.extend_from_slice(&seq.to_le_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn a_log_started_over_reuses_its_file_and_reads_only_the_new_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        for seq in 1..=3 {
            wal.append(seq, &[seq as u8; 300]).unwrap();
        }
        let size = || std::fs::metadata(file_in(dir.path())).unwrap().len();
        let full = size();
        wal.clear();
        wal.append(4, b"after the checkpoint").unwrap();
        assert_eq!(size(), full, "the file keeps its blocks");
        let (records, torn) = pending(dir.path()).unwrap();
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [4]);
        assert_eq!(
            torn, 0,
            "what the start-over left behind is not a torn write"
        );
        drop(wal);
        let (wal, records) = Wal::open(dir.path()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(wal.len(), 16 + 20);
        assert_eq!(
            size(),
            full,
            "opening leaves the old records to be overwritten"
        );

        // A crash after a record but before its end mark: an old record follows it whole.
        let bytes = [record(9, b"new"), record(5, b"old")].concat();
        let (records, end) = parse(&bytes);
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [9]);
        assert_eq!(end, End { at: 19, torn: 0 });
    }

    #[test]
    fn a_damaged_record_ends_the_log() {
        let mut bytes = [record(1, b"aaaa"), record(2, b"bbbb"), record(3, b"cccc")].concat();
        bytes[16 + 4 + 16 + 1] ^= 1;
        let (records, end) = parse(&bytes);
        assert_eq!(records.len(), 1);
        assert_eq!(end, End { at: 20, torn: 40 });
        assert_eq!(parse(&[0xff; 40]).1, End { at: 0, torn: 40 });
        assert_eq!(parse(&[0; 40]).1, End { at: 0, torn: 0 }, "an end mark");
    }
}

//! Compression dictionaries for stored events. The events of one store look alike (the same
//! SDKs, context keys, modules and stack frames), so zstd primed with a dictionary trained on
//! the store's own events shrinks a typical event several times over what zstd alone does.
//! Dictionaries are trained off the hot path from a sample of recent events, kept in the file
//! (keyed by a hash of their bytes, and never deleted, since rows name the one that compressed
//! them), and registered process-wide so that any reader can decode any row. The [`Codec`]
//! holds the dictionary that new events are compressed with.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use md5::{Digest, Md5};
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

use super::{ARRIVALS, DICTIONARIES, EVENT_SEQ, EVENTS, META, StoreError};
use crate::event::Event;

/// Size of a trained dictionary: big enough for the shared structure of a platform's events,
/// small enough to load into a compression context quickly.
const DICTIONARY_BYTES: usize = 32 * 1024;
/// Most recent events sampled to train one, and most bytes of them: zstd wants about a hundred
/// times the dictionary's size, and training takes several times its input in memory.
const SAMPLE_EVENTS: usize = 2_000;
const SAMPLE_BYTES: usize = 4 << 20;
/// The first dictionary is trained once this many events arrived; each later one once ten
/// times as many arrived as when the last one was trained.
pub const FIRST_TRAINING: u64 = 1_000;
const RETRAIN_FACTOR: u64 = 10;
/// META key naming the dictionary new events are compressed with.
const CURRENT: &str = "dictionary";
/// META key holding the arrival count at the last training.
const TRAINED_AT: &str = "dictionary_trained_at";

/// Every dictionary seen by this process, by id. Ids are hashes of the bytes, so dictionaries
/// of different files never collide.
static KNOWN: LazyLock<RwLock<HashMap<u64, Arc<[u8]>>>> = LazyLock::new(Default::default);

/// The id of a dictionary: the first 8 bytes of its MD5.
pub fn id_of(bytes: &[u8]) -> u64 {
    let digest = Md5::digest(bytes);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(id)
}

fn register(id: u64, bytes: Arc<[u8]>) {
    KNOWN
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .entry(id)
        .or_insert(bytes);
}

/// A registered dictionary's bytes.
pub fn lookup(id: u64) -> Option<Arc<[u8]>> {
    KNOWN
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .cloned()
}

/// A dictionary that new events are compressed with.
#[derive(Clone)]
pub struct Dictionary {
    pub id: u64,
    pub bytes: Arc<[u8]>,
}

/// Compresses events for storage with the store's current dictionary (none until one is
/// trained). Shared by everything that queues events.
#[derive(Default)]
pub struct Codec {
    current: RwLock<Option<Dictionary>>,
}

/// Registers every dictionary of a file, so that its rows can be read. Opening the file does it.
pub(crate) fn register_all(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(DICTIONARIES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for row in table.iter()? {
        let (id, bytes) = row?;
        register(id.value(), Arc::from(bytes.value()));
    }
    Ok(())
}

impl Codec {
    /// Starts with the file's current dictionary (the file's dictionaries are registered when
    /// it is opened, by [`super::open`]).
    pub fn load(db: &Database) -> Result<Codec, StoreError> {
        let txn = db.begin_read()?;
        let current = txn
            .open_table(META)?
            .get(CURRENT)?
            .map(|v| v.value())
            .and_then(|id| lookup(id).map(|bytes| Dictionary { id, bytes }));
        Ok(Codec {
            current: RwLock::new(current),
        })
    }

    pub fn current(&self) -> Option<Dictionary> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Compresses new events with `dict` from now on. It must be committed to the file first.
    pub fn adopt(&self, dict: Dictionary) {
        register(dict.id, dict.bytes.clone());
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(dict);
    }

    /// Compresses an event for storage.
    pub fn encode(&self, event: &Event) -> super::events::EncodedEvent {
        super::events::encode_with(event, self.current().as_ref())
    }
}

thread_local! {
    /// One compression context per thread, primed with the dictionary it was made for: making
    /// one costs more than compressing an event.
    static COMPRESSOR: RefCell<Option<(Option<u64>, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    /// Decompression contexts by dictionary (0: none); there are only ever a few dictionaries.
    static DECOMPRESSORS: RefCell<HashMap<u64, zstd::bulk::Decompressor<'static>>> =
        RefCell::new(HashMap::new());
}

/// Compresses `data` at `level`, with `dict` when given. `None` only when zstd cannot allocate.
pub(crate) fn compress(data: &[u8], level: i32, dict: Option<&Dictionary>) -> Option<Vec<u8>> {
    let id = dict.map(|d| d.id);
    COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.as_ref().is_none_or(|(made_for, _)| *made_for != id) {
            let made = match dict {
                Some(d) => zstd::bulk::Compressor::with_dictionary(level, &d.bytes),
                None => zstd::bulk::Compressor::new(level),
            };
            *cell = Some((id, made.ok()?));
        }
        let (_, compressor) = cell.as_mut()?;
        compressor.compress(data).ok()
    })
}

/// Most bytes one stored event may decompress to.
const MAX_DECOMPRESSED: usize = 256 << 20;

/// Decompresses a stored payload compressed with dictionary `id` (0: none).
pub(crate) fn decompress(data: &[u8], id: u64) -> Result<Vec<u8>, String> {
    let size = match zstd::zstd_safe::get_frame_content_size(data) {
        Ok(Some(n)) if n as usize <= MAX_DECOMPRESSED => n as usize,
        Ok(Some(n)) => return Err(format!("a payload claims {n} bytes")),
        _ => return Err("a payload without its size".into()),
    };
    DECOMPRESSORS.with(|cell| {
        let mut map = cell.borrow_mut();
        let decompressor = match map.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let made = if id == 0 {
                    zstd::bulk::Decompressor::new()
                } else {
                    let bytes =
                        lookup(id).ok_or_else(|| format!("unknown dictionary {id:016x}"))?;
                    zstd::bulk::Decompressor::with_dictionary(&bytes)
                };
                slot.insert(made.map_err(|e| e.to_string())?)
            }
        };
        decompressor
            .decompress(data, size)
            .map_err(|e| e.to_string())
    })
}

/// The number of events that have arrived, when it calls for a new dictionary: the first at
/// [`FIRST_TRAINING`], each later one at ten times the count of the last training.
pub fn due(db: &Database) -> Result<Option<u64>, StoreError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let arrived = meta.get(EVENT_SEQ)?.map(|v| v.value()).unwrap_or(0);
    let due_at = match meta.get(TRAINED_AT)?.map(|v| v.value()) {
        Some(at) => at.max(FIRST_TRAINING).saturating_mul(RETRAIN_FACTOR),
        None => FIRST_TRAINING,
    };
    Ok((arrived >= due_at).then_some(arrived))
}

/// Trains a dictionary on the most recent stored events (their uncompressed form). `None`
/// when there are too few, or too uniform, for zstd to find anything to share.
///
/// The rows are copied out of the read snapshot as stored and decompressed only after it is
/// dropped: while a snapshot lives, redb cannot reuse the pages later commits free, so a
/// long-lived one makes the file grow under a steady flow.
pub fn train(db: &Database) -> Result<Option<Dictionary>, StoreError> {
    let mut rows: Vec<Vec<u8>> = Vec::new();
    {
        let txn = db.begin_read()?;
        let arrivals = txn.open_table(ARRIVALS)?;
        let events = txn.open_table(EVENTS)?;
        let mut bytes = 0;
        for row in arrivals.iter()?.rev() {
            if rows.len() >= SAMPLE_EVENTS || bytes >= SAMPLE_BYTES {
                break;
            }
            let (_, arrival) = row?;
            let Some(arrival) = super::tables::ArrivalRecord::decode(arrival.value()) else {
                continue;
            };
            if let Some(row) = events.get((arrival.project, arrival.id.0.as_slice()))? {
                bytes += row.value().len();
                rows.push(row.value().to_vec());
            }
        }
    }
    let mut samples: Vec<Vec<u8>> = Vec::new();
    let mut bytes = 0;
    for packed in rows
        .iter()
        .filter_map(|row| super::events::packed(row).ok())
    {
        if bytes >= SAMPLE_BYTES {
            break;
        }
        bytes += packed.len();
        samples.push(packed);
    }
    if samples.len() < 100 {
        return Ok(None);
    }
    match zstd::dict::from_samples(&samples, DICTIONARY_BYTES) {
        Ok(bytes) => Ok(Some(Dictionary {
            id: id_of(&bytes),
            bytes: Arc::from(bytes),
        })),
        Err(e) => {
            tracing::debug!(
                "no compression dictionary from {} events: {e}",
                samples.len()
            );
            Ok(None)
        }
    }
}

/// Stores a dictionary and makes it the current one, noting the arrival count it was trained
/// at (also when training found nothing, so the next try waits as long as a retraining would).
pub fn save(
    txn: &WriteTransaction,
    dict: Option<&Dictionary>,
    trained_at: u64,
) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    meta.insert(TRAINED_AT, trained_at)?;
    if let Some(dict) = dict {
        txn.open_table(DICTIONARIES)?
            .insert(dict.id, &*dict.bytes)?;
        meta.insert(CURRENT, dict.id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dictionary_round_trips_and_names_itself() {
        let samples: Vec<Vec<u8>> = (0..500)
            .map(|i| format!("{{\"event\":{i},\"platform\":\"python\",\"frames\":[\"app.views\",\"django.core.handlers\"],\"n\":{}}}", i * 7919).into_bytes())
            .collect();
        let bytes = zstd::dict::from_samples(&samples, 4096).unwrap();
        let dict = Dictionary {
            id: id_of(&bytes),
            bytes: Arc::from(bytes),
        };
        register(dict.id, dict.bytes.clone());
        let plain = compress(&samples[3], 3, None).unwrap();
        let primed = compress(&samples[3], 3, Some(&dict)).unwrap();
        assert!(
            primed.len() < plain.len(),
            "{} vs {}",
            primed.len(),
            plain.len()
        );
        assert_eq!(decompress(&primed, dict.id).unwrap(), samples[3]);
        assert_eq!(decompress(&plain, 0).unwrap(), samples[3]);
        assert!(
            decompress(&primed, 12345).is_err(),
            "an unknown dictionary is an error"
        );
    }
}

//! Stored events. A row is `[format][issue: u64 LE][seq: u64 LE]`, then for format 1
//! `zstd(MessagePack(Event))` and for format 2 `[dictionary: u64 LE]` and the same compressed
//! with that dictionary (see [`super::dictionary`]). The issue number and arrival sequence let
//! a row be traced back to its issue without decompressing it. Encoding is a pure function so
//! that intake can compress on the async workers before the writer sees the event.

use redb::ReadableTable;

use super::StoreError;
use super::dictionary::Dictionary;
use crate::event::Event;
use crate::ids::EventId;

const FORMAT_ZSTD_MSGPACK: u8 = 1;
const FORMAT_ZSTD_DICT_MSGPACK: u8 = 2;
const HEADER_LEN: usize = 17;
const ZSTD_LEVEL: i32 = 3;

/// An event compressed for storage, before the writer knows its issue.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct EncodedEvent {
    #[serde(with = "super::bytes")]
    pub payload: Vec<u8>,
    /// The dictionary the payload was compressed with.
    pub dictionary: Option<u64>,
    /// The event's receive time (Unix seconds), for retention.
    pub received: f64,
}

/// Compresses an event without a dictionary.
pub fn encode(event: &Event) -> EncodedEvent {
    encode_with(event, None)
}

/// Compresses an event, with `dict` when given.
pub fn encode_with(event: &Event, dict: Option<&Dictionary>) -> EncodedEvent {
    let packed = super::encode(event);
    match super::dictionary::compress(&packed, ZSTD_LEVEL, dict) {
        Some(payload) => EncodedEvent {
            payload,
            dictionary: dict.map(|d| d.id),
            received: event.received,
        },
        // zstd only fails to allocate; the event is then kept uncompressed, which a reader
        // tells by the missing zstd magic number.
        None => EncodedEvent {
            payload: packed,
            dictionary: None,
            received: event.received,
        },
    }
}

/// A stored event with the facts the row header carries.
#[derive(Debug)]
pub struct StoredEvent {
    pub issue: u64,
    pub seq: u64,
    pub event: Event,
}

pub(crate) fn row(issue: u64, seq: u64, encoded: &EncodedEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 8 + encoded.payload.len());
    match encoded.dictionary {
        None => out.push(FORMAT_ZSTD_MSGPACK),
        Some(_) => out.push(FORMAT_ZSTD_DICT_MSGPACK),
    }
    out.extend_from_slice(&issue.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    if let Some(id) = encoded.dictionary {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out.extend_from_slice(&encoded.payload);
    out
}

fn corrupt(cause: String) -> StoreError {
    StoreError::Corrupt {
        table: "events",
        cause,
    }
}

fn word(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// A stored row moved to another issue (its header rewritten, its event untouched).
pub(crate) fn with_issue(mut row: Vec<u8>, issue: u64) -> Option<Vec<u8>> {
    row.get_mut(1..9)?.copy_from_slice(&issue.to_le_bytes());
    Some(row)
}

/// The issue a stored row belongs to.
pub(crate) fn issue_of(row: &[u8]) -> Option<u64> {
    word(row, 1)
}

/// A row's event as MessagePack, decompressed.
pub(crate) fn packed(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let (dictionary, payload) = match bytes.first() {
        Some(&FORMAT_ZSTD_MSGPACK) if bytes.len() >= HEADER_LEN => (0, &bytes[HEADER_LEN..]),
        Some(&FORMAT_ZSTD_DICT_MSGPACK) if bytes.len() >= HEADER_LEN + 8 => (
            word(bytes, HEADER_LEN).unwrap_or_default(),
            &bytes[HEADER_LEN + 8..],
        ),
        _ => return Err(corrupt("unknown event row format".into())),
    };
    if !payload.starts_with(&zstd::zstd_safe::MAGICNUMBER.to_le_bytes()) {
        return Ok(payload.to_vec());
    }
    super::dictionary::decompress(payload, dictionary).map_err(corrupt)
}

fn parse_row(bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    stored(bytes, &packed(bytes)?)
}

/// A row's event, from the row and its decompressed MessagePack.
fn stored(row: &[u8], packed: &[u8]) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        issue: word(row, 1).unwrap_or_default(),
        seq: word(row, 9).unwrap_or_default(),
        event: super::decode("events", packed)?,
    })
}

pub fn get(
    table: &impl ReadableTable<(u64, &'static [u8]), &'static [u8]>,
    project: u64,
    id: &EventId,
) -> Result<Option<StoredEvent>, StoreError> {
    table
        .get((project, id.0.as_slice()))?
        .map(|v| parse_row(v.value()))
        .transpose()
}

/// A stored event, decoded only if its decompressed bytes pass `keep` (a cheap test that
/// spares decoding events a search cannot match).
pub fn get_if(
    table: &impl ReadableTable<(u64, &'static [u8]), &'static [u8]>,
    project: u64,
    id: &EventId,
    keep: impl Fn(&[u8]) -> bool,
) -> Result<Option<StoredEvent>, StoreError> {
    let Some(row) = table.get((project, id.0.as_slice()))? else {
        return Ok(None);
    };
    let packed = packed(row.value())?;
    if !keep(&packed) {
        return Ok(None);
    }
    stored(row.value(), &packed).map(Some)
}

/// An issue's event ids in arrival order.
pub fn of_issue(
    table: &impl ReadableTable<(u64, u64, u64), &'static [u8]>,
    project: u64,
    issue: u64,
) -> Result<Vec<EventId>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((project, issue, 0)..=(project, issue, u64::MAX))? {
        let (_, v) = row?;
        if let Some(id) = EventId::from_slice(v.value()) {
            out.push(id);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let ev = Event {
            event_id: EventId([0xab; 16]),
            platform: "python".into(),
            ..Default::default()
        };
        let bytes = row(7, 42, &encode(&ev));
        let back = parse_row(&bytes).unwrap();
        assert_eq!((back.issue, back.seq), (7, 42));
        assert_eq!(back.event, ev);
        assert!(parse_row(&bytes[..5]).is_err());
    }
}

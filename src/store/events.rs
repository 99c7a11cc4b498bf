//! Stored events. A row is `[format][issue: u64 LE][seq: u64 LE][zstd(MessagePack(Event))]`:
//! the format byte leaves room for other encodings, the issue number and arrival sequence let
//! a row be traced back to its issue without decompressing it. Encoding is a pure function so
//! that intake can compress on the async workers before the writer sees the event.

use redb::ReadableTable;

use super::StoreError;
use crate::event::Event;

const FORMAT_ZSTD_MSGPACK: u8 = 1;
const HEADER_LEN: usize = 17;
const ZSTD_LEVEL: i32 = 3;

/// An event compressed for storage, before the writer knows its issue.
#[derive(Clone)]
pub struct EncodedEvent {
    pub payload: Vec<u8>,
    /// The event's receive time (Unix seconds), for retention.
    pub received: f64,
}

thread_local! {
    /// One compression context per thread: making one costs more than compressing an event.
    static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

pub fn encode(event: &Event) -> EncodedEvent {
    let packed = super::encode(event);
    let compressed = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        cell.as_mut()?.compress(&packed).ok()
    });
    // zstd only fails on allocation failure or a bad level; keep the event uncompressed then.
    let payload = compressed.unwrap_or(packed);
    EncodedEvent {
        payload,
        received: event.received,
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
    let mut out = Vec::with_capacity(HEADER_LEN + encoded.payload.len());
    out.push(FORMAT_ZSTD_MSGPACK);
    out.extend_from_slice(&issue.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&encoded.payload);
    out
}

fn parse_row(bytes: &[u8]) -> Result<StoredEvent, StoreError> {
    let corrupt = |cause: String| StoreError::Corrupt {
        table: "events",
        cause,
    };
    if bytes.len() < HEADER_LEN || bytes[0] != FORMAT_ZSTD_MSGPACK {
        return Err(corrupt("unknown event row format".into()));
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let packed =
        zstd::stream::decode_all(&bytes[HEADER_LEN..]).map_err(|e| corrupt(e.to_string()))?;
    Ok(StoredEvent {
        issue: word(1),
        seq: word(9),
        event: super::decode("events", &packed)?,
    })
}

/// The 16 bytes of a 32-hex event id.
pub fn id_bytes(event_id: &str) -> Option<[u8; 16]> {
    if event_id.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(event_id.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

pub fn get(
    table: &impl ReadableTable<(u64, &'static [u8]), &'static [u8]>,
    project: u64,
    id: &[u8; 16],
) -> Result<Option<StoredEvent>, StoreError> {
    table
        .get((project, id.as_slice()))?
        .map(|v| parse_row(v.value()))
        .transpose()
}

/// An issue's event ids in arrival order.
pub fn of_issue(
    table: &impl ReadableTable<(u64, u64, u64), &'static [u8]>,
    project: u64,
    issue: u64,
) -> Result<Vec<[u8; 16]>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((project, issue, 0)..=(project, issue, u64::MAX))? {
        let (_, v) = row?;
        let mut id = [0u8; 16];
        if v.value().len() == 16 {
            id.copy_from_slice(v.value());
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
            event_id: "ab".repeat(16),
            platform: "python".into(),
            ..Default::default()
        };
        let bytes = row(7, 42, &encode(&ev));
        let back = parse_row(&bytes).unwrap();
        assert_eq!((back.issue, back.seq), (7, 42));
        assert_eq!(back.event, ev);
        assert!(parse_row(&bytes[..5]).is_err());
        assert_eq!(id_bytes(&"ab".repeat(16)), Some([0xab; 16]));
        assert_eq!(id_bytes("zz"), None);
    }
}

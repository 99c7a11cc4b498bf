//! Attachments stored with their event: log files, minidumps, view hierarchies, screenshots.
//! Each is kept under (project, event id, index) in two tables, its description (small, read
//! to list an event's attachments) and its bytes compressed with zstd (read only to download
//! it), so listing never decompresses anything. They are deleted with their event, and the
//! bytes they hold are kept in `meta` so the disk budget leaves them room as it does for
//! source maps. Compression is a pure function, run by intake before the writer sees them.

use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{META, StoreError, decode, encode};
use crate::ids::EventId;

/// (project, event id, index) → [`AttachmentMeta`].
pub(crate) const ATTACHMENTS: TableDefinition<(u64, &[u8], u32), &[u8]> =
    TableDefinition::new("attachments");
/// (project, event id, index) → the attachment's bytes, zstd-compressed.
pub(crate) const ATTACHMENT_DATA: TableDefinition<(u64, &[u8], u32), &[u8]> =
    TableDefinition::new("attachment_data");
/// META key of the compressed bytes attachments hold.
pub(crate) const ATTACHMENT_BYTES: &str = "attachment_bytes";

const ZSTD_LEVEL: i32 = 3;

/// What an attachment is, as its envelope item header said, and its sizes.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct AttachmentMeta {
    /// The file name the SDK gave (`filename`).
    pub name: String,
    /// The MIME type the SDK gave, if any; never used to serve it.
    pub content_type: Option<String>,
    /// `event.attachment`, `event.minidump`, `event.view_hierarchy`, …
    pub attachment_type: String,
    /// Bytes as sent.
    pub size: u64,
    /// Bytes as stored (compressed).
    pub stored: u64,
}

/// An attachment compressed for storage.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EncodedAttachment {
    pub meta: AttachmentMeta,
    #[serde(with = "super::bytes")]
    pub data: Vec<u8>,
}

/// Compresses an attachment's bytes (kept as they are when that does not make them smaller).
pub fn encode_attachment(
    name: &str,
    content_type: Option<&str>,
    attachment_type: &str,
    bytes: &[u8],
) -> EncodedAttachment {
    let data = match zstd::bulk::compress(bytes, ZSTD_LEVEL) {
        Ok(c) if c.len() < bytes.len() => c,
        _ => bytes.to_vec(),
    };
    EncodedAttachment {
        meta: AttachmentMeta {
            name: name.to_string(),
            content_type: content_type.map(str::to_string),
            attachment_type: attachment_type.to_string(),
            size: bytes.len() as u64,
            stored: data.len() as u64,
        },
        data,
    }
}

fn corrupt(cause: String) -> StoreError {
    StoreError::Corrupt {
        table: "attachment_data",
        cause,
    }
}

/// The bytes as sent, from their stored form: compressed bytes are always fewer than the
/// original, so bytes of the original length were kept as they are.
fn decode_data(meta: &AttachmentMeta, stored: &[u8]) -> Result<Vec<u8>, StoreError> {
    if stored.len() as u64 == meta.size {
        return Ok(stored.to_vec());
    }
    let capacity = usize::try_from(meta.size).map_err(|e| corrupt(e.to_string()))?;
    zstd::bulk::decompress(stored, capacity).map_err(|e| corrupt(e.to_string()))
}

/// The attachment tables inside a write transaction.
pub struct AttachmentRows<'t> {
    metas: Table<'t, (u64, &'static [u8], u32), &'static [u8]>,
    data: Table<'t, (u64, &'static [u8], u32), &'static [u8]>,
}

impl<'t> AttachmentRows<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<AttachmentRows<'t>, StoreError> {
        Ok(AttachmentRows {
            metas: txn.open_table(ATTACHMENTS)?,
            data: txn.open_table(ATTACHMENT_DATA)?,
        })
    }

    /// Stores an event's attachments after the ones it has; the bytes they hold.
    pub fn insert(
        &mut self,
        project: u64,
        event: &EventId,
        attachments: &[EncodedAttachment],
    ) -> Result<u64, StoreError> {
        let key = event.0.as_slice();
        let first = self
            .metas
            .range((project, key, 0)..=(project, key, u32::MAX))?
            .next_back()
            .transpose()?
            .map_or(0, |(k, _)| k.value().2 + 1);
        let mut bytes = 0;
        for (index, a) in (first..).zip(attachments) {
            self.metas
                .insert((project, key, index), encode(&a.meta).as_slice())?;
            self.data.insert((project, key, index), a.data.as_slice())?;
            bytes += a.meta.stored;
        }
        Ok(bytes)
    }

    /// Deletes an event's attachments; the bytes they held.
    pub fn delete(&mut self, project: u64, event: &EventId) -> Result<u64, StoreError> {
        let key = event.0.as_slice();
        let mut doomed = Vec::new();
        for row in self
            .metas
            .range((project, key, 0)..=(project, key, u32::MAX))?
        {
            let (k, v) = row?;
            let meta: AttachmentMeta = decode("attachments", v.value())?;
            doomed.push((k.value().2, meta.stored));
        }
        let mut bytes = 0;
        for (index, stored) in doomed {
            self.metas.remove((project, key, index))?;
            self.data.remove((project, key, index))?;
            bytes += stored;
        }
        Ok(bytes)
    }
}

/// Adds to (or takes from) the bytes attachments hold.
pub(crate) fn count_bytes(
    meta: &mut Table<'_, &'static str, u64>,
    added: u64,
    removed: u64,
) -> Result<(), StoreError> {
    if added == removed {
        return Ok(());
    }
    let now = meta.get(ATTACHMENT_BYTES)?.map_or(0, |v| v.value());
    meta.insert(ATTACHMENT_BYTES, (now + added).saturating_sub(removed))?;
    Ok(())
}

/// The bytes attachments hold.
pub fn bytes(txn: &redb::ReadTransaction) -> Result<u64, StoreError> {
    Ok(txn
        .open_table(META)?
        .get(ATTACHMENT_BYTES)?
        .map_or(0, |v| v.value()))
}

/// An event's attachments in the order they arrived, with their index.
pub fn list(
    txn: &redb::ReadTransaction,
    project: u64,
    event: &EventId,
) -> Result<Vec<(u32, AttachmentMeta)>, StoreError> {
    let table = txn.open_table(ATTACHMENTS)?;
    let key = event.0.as_slice();
    let mut out = Vec::new();
    for row in table.range((project, key, 0)..=(project, key, u32::MAX))? {
        let (k, v) = row?;
        out.push((k.value().2, decode("attachments", v.value())?));
    }
    Ok(out)
}

/// One attachment's description and bytes as sent.
pub fn read(
    txn: &redb::ReadTransaction,
    project: u64,
    event: &EventId,
    index: u32,
) -> Result<Option<(AttachmentMeta, Vec<u8>)>, StoreError> {
    let key = (project, event.0.as_slice(), index);
    let Some(meta) = txn.open_table(ATTACHMENTS)?.get(key)? else {
        return Ok(None);
    };
    let meta: AttachmentMeta = decode("attachments", meta.value())?;
    let Some(stored) = txn.open_table(ATTACHMENT_DATA)?.get(key)? else {
        return Err(corrupt(format!("no bytes for attachment {index}")));
    };
    let bytes = decode_data(&meta, stored.value())?;
    Ok(Some((meta, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_compressed_or_not() {
        let text = b"line\n".repeat(1000);
        let a = encode_attachment("app.log", Some("text/plain"), "event.attachment", &text);
        assert!(a.meta.stored < a.meta.size);
        assert_eq!(decode_data(&a.meta, &a.data).unwrap(), text);
        let random: Vec<u8> = (0..64u32).map(|i| (i * 97 % 251) as u8).collect();
        let b = encode_attachment("x.bin", None, "event.attachment", &random);
        assert_eq!(decode_data(&b.meta, &b.data).unwrap(), random);
        let empty = encode_attachment("e", None, "event.attachment", b"");
        assert_eq!(decode_data(&empty.meta, &empty.data).unwrap(), b"");
    }
}

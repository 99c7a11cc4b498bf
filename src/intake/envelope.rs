//! The envelope format: a JSON header line, then items, each a JSON header line and a payload
//! whose length comes from the header's `length` or runs to the next newline. Parsed exactly
//! as Relay parses it: a payload with an explicit length must be followed by `\n` or the end,
//! `\r` is never part of a newline, and a final newline is optional. Borrowing, no copies.

use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("invalid event envelope: missing envelope header")]
    MissingHeader,
    #[error("invalid event envelope: invalid envelope header: {0}")]
    InvalidHeader(String),
    #[error("invalid event envelope: invalid item header: {0}")]
    InvalidItemHeader(String),
    #[error("invalid event envelope: missing newline after header or payload")]
    MissingNewline,
    #[error(
        "invalid event envelope: unexpected end of file (item length {length} runs past the end)"
    )]
    UnexpectedEof { length: u64 },
}

/// The envelope header fields picket uses; the rest are kept in `other`.
#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct EnvelopeHeader {
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub dsn: Option<String>,
    #[serde(default)]
    pub sent_at: Option<String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Deserialize, PartialEq)]
pub struct ItemHeader {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub length: Option<u64>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, PartialEq)]
pub struct Item<'a> {
    pub header: ItemHeader,
    pub payload: &'a [u8],
}

#[derive(Debug, PartialEq)]
pub struct Envelope<'a> {
    pub header: EnvelopeHeader,
    pub items: Vec<Item<'a>>,
}

impl<'a> Envelope<'a> {
    /// The `event` item, if any (an envelope carries at most one).
    pub fn event(&self) -> Option<&Item<'a>> {
        self.items.iter().find(|i| i.header.ty == "event")
    }
}

/// Reads one JSON value at `pos`; returns it and the offset just after it.
fn read_json<T: for<'de> Deserialize<'de>>(
    buf: &[u8],
    pos: usize,
) -> Option<Result<(T, usize), serde_json::Error>> {
    let mut stream = serde_json::Deserializer::from_slice(&buf[pos..]).into_iter::<T>();
    match stream.next()? {
        Ok(v) => Some(Ok((v, pos + stream.byte_offset()))),
        Err(e) => Some(Err(e)),
    }
}

/// After a header or payload: `\n` (consumed) or the end of the buffer.
fn require_termination(buf: &[u8], pos: usize) -> Result<usize, EnvelopeError> {
    match buf.get(pos) {
        None => Ok(pos),
        Some(b'\n') => Ok(pos + 1),
        Some(_) => Err(EnvelopeError::MissingNewline),
    }
}

pub fn parse(buf: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    let (header, mut pos) = match read_json::<Value>(buf, 0) {
        None => return Err(EnvelopeError::MissingHeader),
        Some(Err(e)) if e.is_eof() && buf.iter().all(u8::is_ascii_whitespace) => {
            return Err(EnvelopeError::MissingHeader);
        }
        Some(Err(e)) => return Err(EnvelopeError::InvalidHeader(e.to_string())),
        Some(Ok(v)) => v,
    };
    if !header.is_object() {
        return Err(EnvelopeError::InvalidHeader("not a JSON object".into()));
    }
    let header: EnvelopeHeader =
        serde_json::from_value(header).map_err(|e| EnvelopeError::InvalidHeader(e.to_string()))?;
    pos = require_termination(buf, pos)?;

    let mut items = Vec::new();
    while pos < buf.len() {
        let (item_header, header_end) = match read_json::<Value>(buf, pos) {
            None => {
                return Err(EnvelopeError::InvalidItemHeader(
                    "unexpected end of file".into(),
                ));
            }
            Some(Err(e)) => return Err(EnvelopeError::InvalidItemHeader(e.to_string())),
            Some(Ok(v)) => v,
        };
        let item_header: ItemHeader = serde_json::from_value(item_header)
            .map_err(|e| EnvelopeError::InvalidItemHeader(e.to_string()))?;
        let payload_start = require_termination(buf, header_end)?;
        let (payload, next) = match item_header.length {
            Some(length) => {
                let end = usize::try_from(length)
                    .ok()
                    .and_then(|l| payload_start.checked_add(l))
                    .filter(|end| *end <= buf.len())
                    .ok_or(EnvelopeError::UnexpectedEof { length })?;
                (&buf[payload_start..end], require_termination(buf, end)?)
            }
            None => {
                let end = buf[payload_start..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(buf.len(), |i| payload_start + i);
                (&buf[payload_start..end], (end + 1).min(buf.len()))
            }
        };
        items.push(Item {
            header: item_header,
            payload,
        });
        pos = next;
    }
    Ok(Envelope { header, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &[u8] = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"dsn\":\"https://e12d836b15bb49d7bbf99e64295d995b:@sentry.io/42\"}\n{\"type\":\"attachment\",\"length\":10,\"content_type\":\"text/plain\",\"filename\":\"hello.txt\"}\n\xef\xbb\xbfHello\r\n\n{\"type\":\"event\",\"length\":41,\"content_type\":\"application/json\",\"filename\":\"application.log\"}\n{\"message\":\"hello world\",\"level\":\"error\"}\n";

    #[test]
    fn spec_example_with_explicit_lengths() {
        let env = parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(
            env.header.event_id.as_deref(),
            Some("9ec79c33ec9942ab8353589fcb2e04dc")
        );
        assert_eq!(env.items.len(), 2);
        assert_eq!(env.items[0].payload, b"\xef\xbb\xbfHello\r\n");
        assert_eq!(
            env.event().unwrap().payload,
            br#"{"message":"hello world","level":"error"}"#
        );
        // The final newline is optional.
        let env = parse(&SPEC_EXAMPLE[..SPEC_EXAMPLE.len() - 1]).unwrap();
        assert_eq!(env.items.len(), 2);
    }

    #[test]
    fn implicit_lengths_and_empty_items() {
        let env = parse(b"{}\n{\"type\":\"session\"}\n{\"started\":1}").unwrap();
        assert_eq!(env.items[0].payload, b"{\"started\":1}");
        let env = parse(b"{}\n{\"type\":\"attachment\",\"length\":0}\n\n{\"type\":\"attachment\"}")
            .unwrap();
        assert_eq!(env.items.len(), 2);
        assert!(env.items.iter().all(|i| i.payload.is_empty()));
        assert!(parse(b"{}").unwrap().items.is_empty());
        assert!(parse(b"{}\n").unwrap().items.is_empty());
    }

    #[test]
    fn malformed_envelopes_are_named() {
        assert_eq!(parse(b""), Err(EnvelopeError::MissingHeader));
        assert!(matches!(
            parse(b"[1]\n"),
            Err(EnvelopeError::InvalidHeader(_))
        ));
        assert!(matches!(
            parse(b"{nope"),
            Err(EnvelopeError::InvalidHeader(_))
        ));
        assert_eq!(parse(b"{} x"), Err(EnvelopeError::MissingNewline));
        assert_eq!(
            parse(b"{}\n{\"type\":\"event\",\"length\":50}\n{}"),
            Err(EnvelopeError::UnexpectedEof { length: 50 })
        );
        assert_eq!(
            parse(b"{}\n{\"type\":\"event\",\"length\":2}\n{}\r\n"),
            Err(EnvelopeError::MissingNewline)
        );
        assert!(matches!(
            parse(b"{}\n{\"length\":2}\n{}\n"),
            Err(EnvelopeError::InvalidItemHeader(_))
        ));
        assert!(matches!(
            parse(b"{}\n{\"type\":\"event\"}\n{}\n  "),
            Err(EnvelopeError::InvalidItemHeader(_))
        ));
        assert!(matches!(
            parse(b"{}\n{\"type\":\"event\",\"length\":18446744073709551615}\n"),
            Err(EnvelopeError::UnexpectedEof { .. })
        ));
    }
}

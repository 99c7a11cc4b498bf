//! The envelope format: a JSON header line, then items, each a JSON header line and a payload
//! whose length comes from the header's `length` or runs to the next newline. Parsed exactly
//! as Relay parses it: a payload with an explicit length must be followed by `\n` or the end,
//! `\r` is never part of a newline, and a final newline is optional. Borrowing, no copies.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::event::Key;

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

/// The envelope header fields picket reads; other keys are skipped unread.
#[derive(Debug, Default, PartialEq)]
pub struct EnvelopeHeader {
    pub event_id: Option<String>,
    pub dsn: Option<String>,
    pub sent_at: Option<String>,
}

/// An item header's fields picket reads: its type and length, and the names an attachment
/// gives itself (kept only when they are strings: anything else there says nothing).
#[derive(Debug, Default, PartialEq)]
pub struct ItemHeader {
    pub ty: String,
    pub length: Option<u64>,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub attachment_type: Option<String>,
}

/// A header object read key by key straight from the bytes: keys picket does not read are
/// skipped unread, and a repeated key counts once, with its last value (as an object read
/// whole has it).
trait Header: Sized {
    /// What is filled while reading.
    type Fields: Default;
    /// What the header is, for errors ("an envelope header object").
    const WHAT: &'static str;
    /// Reads the value of `key` into `fields` if it is one; skips it otherwise.
    fn field<'de, A: MapAccess<'de>>(
        fields: &mut Self::Fields,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error>;
    fn finish<E: de::Error>(fields: Self::Fields) -> Result<Self, E>;
}

/// A string value, or nothing when the value is anything else.
fn text_or_nothing<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<String>, A::Error> {
    Ok(match map.next_value::<Value>()? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

impl Header for EnvelopeHeader {
    type Fields = EnvelopeHeader;
    const WHAT: &'static str = "an envelope header object";
    fn field<'de, A: MapAccess<'de>>(
        header: &mut EnvelopeHeader,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "event_id" => header.event_id = map.next_value()?,
            "dsn" => header.dsn = map.next_value()?,
            "sent_at" => header.sent_at = map.next_value()?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    fn finish<E: de::Error>(header: EnvelopeHeader) -> Result<Self, E> {
        Ok(header)
    }
}

impl Header for ItemHeader {
    /// The type apart, since it must be there.
    type Fields = (Option<String>, ItemHeader);
    const WHAT: &'static str = "an item header object";
    fn field<'de, A: MapAccess<'de>>(
        (ty, header): &mut Self::Fields,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "type" => *ty = Some(map.next_value()?),
            "length" => header.length = map.next_value()?,
            "filename" => header.filename = text_or_nothing(map)?,
            "content_type" => header.content_type = text_or_nothing(map)?,
            "attachment_type" => header.attachment_type = text_or_nothing(map)?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
    fn finish<E: de::Error>((ty, header): Self::Fields) -> Result<Self, E> {
        let ty = ty.ok_or_else(|| E::missing_field("type"))?;
        Ok(ItemHeader { ty, ..header })
    }
}

/// Deserializes a [`Header`] (only from a JSON object).
struct Read<T>(T);

impl<'de, T: Header> Deserialize<'de> for Read<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HeaderVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Header> Visitor<'de> for HeaderVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(T::WHAT)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
                let mut fields = T::Fields::default();
                while let Some(Key(key)) = map.next_key()? {
                    T::field(&mut fields, &key, &mut map)?;
                }
                T::finish(fields)
            }
        }
        d.deserialize_map(HeaderVisitor(std::marker::PhantomData))
            .map(Read)
    }
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
fn read_json<'a, T: Deserialize<'a>>(
    buf: &'a [u8],
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
    let (Read(header), mut pos) = match read_json::<Read<EnvelopeHeader>>(buf, 0) {
        None => return Err(EnvelopeError::MissingHeader),
        Some(Err(e)) if e.is_eof() && buf.iter().all(u8::is_ascii_whitespace) => {
            return Err(EnvelopeError::MissingHeader);
        }
        Some(Err(e)) => return Err(EnvelopeError::InvalidHeader(e.to_string())),
        Some(Ok(v)) => v,
    };
    pos = require_termination(buf, pos)?;

    let mut items = Vec::new();
    while pos < buf.len() {
        let (Read(item_header), header_end) = match read_json::<Read<ItemHeader>>(buf, pos) {
            None => {
                return Err(EnvelopeError::InvalidItemHeader(
                    "unexpected end of file".into(),
                ));
            }
            Some(Err(e)) => return Err(EnvelopeError::InvalidItemHeader(e.to_string())),
            Some(Ok(v)) => v,
        };
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
    fn headers_keep_what_picket_reads_and_skip_the_rest() {
        let env = parse(
            b"{\"event_id\":\"a\",\"trace\":{\"trace_id\":\"x\",\"sampled\":[1,{}]},\"sdk\":null,\"event_id\":\"b\"}\n\
              {\"type\":\"attachment\",\"length\":2,\"filename\":7,\"content_type\":\"text/plain\",\"x\":[[]]}\nhi\n",
        )
        .unwrap();
        // A repeated key counts once, with its last value.
        assert_eq!(env.header.event_id.as_deref(), Some("b"));
        let header = &env.items[0].header;
        assert_eq!(header.ty, "attachment");
        assert_eq!(header.length, Some(2));
        assert_eq!(header.filename, None);
        assert_eq!(header.content_type.as_deref(), Some("text/plain"));
        assert_eq!(env.items[0].payload, b"hi");
        // Escaped keys are read too.
        let env = parse(b"{\"ev\\u0065nt_id\":\"c\"}\n").unwrap();
        assert_eq!(env.header.event_id.as_deref(), Some("c"));
    }

    #[test]
    fn malformed_envelopes_are_named() {
        assert_eq!(parse(b""), Err(EnvelopeError::MissingHeader));
        assert!(matches!(
            parse(b"[1]\n"),
            Err(EnvelopeError::InvalidHeader(_))
        ));
        // A header is an object, never its fields in a list.
        assert!(matches!(
            parse(b"[]\n"),
            Err(EnvelopeError::InvalidHeader(_))
        ));
        assert!(matches!(
            parse(b"{}\n[\"event\",2]\n{}\n"),
            Err(EnvelopeError::InvalidItemHeader(_))
        ));
        assert!(matches!(
            parse(b"{\"event_id\":5}\n"),
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

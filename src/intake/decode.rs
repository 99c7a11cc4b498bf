//! Request bodies: undoing `Content-Encoding` (gzip, deflate zlib-wrapped or raw, br, zstd)
//! and the legacy raven `/store/` wrappings (base64(JSON), base64(zlib(JSON)), bare zlib).
//!
//! Every decoder streams into a buffer that refuses to grow past a cap, so a small bomb costs
//! no more memory than the cap allows. Pure functions over bytes.

use std::io::{self, Read};

use base64::Engine;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("unsupported content encoding '{0}'")]
    UnknownEncoding(String),
    #[error("invalid request body: failed to decode {encoding} payload: {cause}")]
    Corrupt {
        encoding: &'static str,
        cause: String,
    },
    #[error("request body exceeds the decompressed size limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("invalid request body: not JSON, base64 or zlib")]
    NotBase64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
        }
    }
}

/// The encodings of a `Content-Encoding` value, in the order they were applied. Empty,
/// `identity` and `UTF-8` (sent by some SDKs by mistake) mean none.
pub fn parse_content_encoding(value: &str) -> Result<Vec<Encoding>, DecodeError> {
    let mut out = Vec::new();
    for token in value.split(',') {
        let token = token.trim().to_ascii_lowercase();
        match token.as_str() {
            "" | "identity" | "utf-8" | "utf8" => {}
            "gzip" | "x-gzip" => out.push(Encoding::Gzip),
            "deflate" => out.push(Encoding::Deflate),
            "br" => out.push(Encoding::Brotli),
            "zstd" => out.push(Encoding::Zstd),
            _ => return Err(DecodeError::UnknownEncoding(token)),
        }
    }
    Ok(out)
}

/// Undoes the content encodings (last applied first), never producing more than `cap` bytes.
pub fn decode_content(
    body: Vec<u8>,
    encodings: &[Encoding],
    cap: usize,
) -> Result<Vec<u8>, DecodeError> {
    let mut data = body;
    for &enc in encodings.iter().rev() {
        data = decode_one(&data, enc, cap)?;
    }
    if data.len() > cap {
        return Err(DecodeError::TooLarge { limit: cap });
    }
    Ok(data)
}

fn decode_one(data: &[u8], enc: Encoding, cap: usize) -> Result<Vec<u8>, DecodeError> {
    match enc {
        Encoding::Gzip => read_capped(flate2::read::MultiGzDecoder::new(data), enc, cap),
        Encoding::Deflate => {
            // RFC says zlib-wrapped; some clients send raw deflate. A zlib stream starts with a
            // header whose first two bytes are a multiple of 31.
            if is_zlib_header(data) {
                read_capped(flate2::read::ZlibDecoder::new(data), enc, cap)
            } else {
                read_capped(flate2::read::DeflateDecoder::new(data), enc, cap)
            }
        }
        Encoding::Brotli => read_capped(brotli::Decompressor::new(data, 4096), enc, cap),
        Encoding::Zstd => {
            let mut decoder =
                zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(enc, &e))?;
            // A frame may ask for a window of up to 2 GiB, allocated before a byte comes out;
            // 8 MiB is what zstd's own levels use up to 19.
            decoder
                .window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| corrupt(enc, &e))?;
            read_capped(decoder, enc, cap)
        }
    }
}

/// Largest zstd window accepted: 2^23 bytes (8 MiB).
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

fn is_zlib_header(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0,
        _ => false,
    }
}

fn corrupt(enc: Encoding, e: &io::Error) -> DecodeError {
    DecodeError::Corrupt {
        encoding: enc.name(),
        cause: e.to_string(),
    }
}

/// Reads a decoder to the end, failing as soon as output would pass `cap`.
fn read_capped(reader: impl Read, enc: Encoding, cap: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(enc, &e))?;
    if out.len() > cap {
        return Err(DecodeError::TooLarge { limit: cap });
    }
    Ok(out)
}

/// The legacy `/store/` body: JSON as is; otherwise base64 (whitespace ignored, standard or
/// URL-safe alphabet, padding optional) of JSON or of zlib(JSON); or bare zlib.
pub fn decode_store_body(body: Vec<u8>, cap: usize) -> Result<Vec<u8>, DecodeError> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Ok(body);
    };
    if body[start] == b'{' {
        return Ok(body);
    }
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace() && *b != 0)
        .collect();
    let decoded = decode_base64(&compact);
    let inner = match decoded {
        Some(bytes) => bytes,
        None if is_zlib_header(&body[start..]) => body[start..].to_vec(),
        None => return Err(DecodeError::NotBase64),
    };
    if inner.first() == Some(&b'{') {
        return Ok(inner);
    }
    let enc = if inner.starts_with(&[0x1f, 0x8b]) {
        Encoding::Gzip
    } else {
        Encoding::Deflate
    };
    decode_one(&inner, enc, cap)
}

fn decode_base64(data: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(data).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const JSON: &[u8] = br#"{"message":"hello"}"#;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn b64(data: &[u8]) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .encode(data)
            .into_bytes()
    }

    #[test]
    fn every_content_encoding() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(JSON).unwrap();
        let gz = gz.finish().unwrap();
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(JSON).unwrap();
        let raw = raw.finish().unwrap();
        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 5, 22)
            .write_all(JSON)
            .unwrap();
        let zst = zstd::encode_all(JSON, 3).unwrap();
        for (header, body) in [
            ("gzip", gz),
            ("deflate", zlib(JSON)),
            ("deflate", raw),
            ("br", br),
            ("zstd", zst),
            ("", JSON.to_vec()),
            ("UTF-8", JSON.to_vec()),
        ] {
            let encs = parse_content_encoding(header).unwrap();
            assert_eq!(decode_content(body, &encs, 1024).unwrap(), JSON, "{header}");
        }
        assert_eq!(
            parse_content_encoding("compress"),
            Err(DecodeError::UnknownEncoding("compress".into()))
        );
    }

    #[test]
    fn bombs_stop_at_the_cap() {
        let bomb = zlib(&vec![b' '; 10 << 20]);
        assert!(bomb.len() < 20_000);
        let encs = parse_content_encoding("deflate").unwrap();
        assert_eq!(
            decode_content(bomb, &encs, 1 << 20),
            Err(DecodeError::TooLarge { limit: 1 << 20 })
        );
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
        // Level 22 with long-distance matching over 64 MiB asks for a 128 MiB window.
        let mut encoder = zstd::stream::Encoder::new(Vec::new(), 22).unwrap();
        encoder.window_log(27).unwrap();
        encoder.long_distance_matching(true).unwrap();
        encoder.write_all(&vec![b'x'; 64 << 10]).unwrap();
        let frame = encoder.finish().unwrap();
        let encs = parse_content_encoding("zstd").unwrap();
        match decode_content(frame, &encs, 100 << 20) {
            Err(DecodeError::Corrupt { encoding, .. }) => assert_eq!(encoding, "zstd"),
            other => panic!("a 128 MiB window was accepted: {other:?}"),
        }
        // A normal frame (level 19: an 8 MiB window) still decodes.
        let normal = zstd::encode_all(&vec![b'y'; 1 << 20][..], 19).unwrap();
        assert_eq!(
            decode_content(normal, &encs, 2 << 20).unwrap().len(),
            1 << 20
        );
    }

    #[test]
    fn corrupt_streams_are_named() {
        let encs = parse_content_encoding("gzip").unwrap();
        let err = decode_content(b"not gzip".to_vec(), &encs, 1024).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Corrupt {
                    encoding: "gzip",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn legacy_store_bodies() {
        assert_eq!(decode_store_body(JSON.to_vec(), 1024).unwrap(), JSON);
        assert_eq!(decode_store_body(b64(JSON), 1024).unwrap(), JSON);
        assert_eq!(decode_store_body(b64(&zlib(JSON)), 1024).unwrap(), JSON);
        let mut wrapped = b64(&zlib(JSON));
        wrapped.insert(10, b'\n');
        assert_eq!(decode_store_body(wrapped, 1024).unwrap(), JSON);
        assert_eq!(decode_store_body(zlib(JSON), 1024).unwrap(), JSON);
        assert_eq!(
            decode_store_body(b"%%%".to_vec(), 1024),
            Err(DecodeError::NotBase64)
        );
    }
}

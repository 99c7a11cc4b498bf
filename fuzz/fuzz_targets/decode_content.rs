//! Content decoding on arbitrary bytes with every encoding: never panics and never returns
//! more than the cap.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::intake::decode::{decode_content, parse_content_encoding};

const CAP: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let header =
        ["gzip", "deflate", "br", "zstd", "gzip, br", "identity"][usize::from(selector) % 6];
    let encodings = parse_content_encoding(header).expect("known encodings");
    if let Ok(out) = decode_content(body.to_vec(), &encodings, CAP) {
        assert!(out.len() <= CAP);
    }
});

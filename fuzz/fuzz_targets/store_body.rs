//! The legacy `/store/` path: base64/zlib unwrapping, then normalization and grouping of
//! whatever JSON comes out.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::event::{grouping, normalize};

fuzz_target!(|data: &[u8]| {
    if let Ok(json) = picket::intake::decode::decode_store_body(data.to_vec(), 1 << 20) {
        assert!(json.len() <= 1 << 20 || json.first() == Some(&b'{') || json == data);
        let ctx = normalize::Context {
            received: 1.7e9,
            ..Default::default()
        };
        if let Ok(event) = normalize::normalize(&json, &ctx) {
            let _ = grouping::group(&event);
        }
    }
});

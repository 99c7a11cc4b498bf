//! A raven UDP datagram: split into credentials and body, then the body decoded and
//! normalized as the server would.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::event::normalize;

fuzz_target!(|data: &[u8]| {
    if let Ok((creds, body)) = picket::intake::udp::parse_datagram(data) {
        assert!(!creds.public_key.is_empty() && !body.is_empty());
        if let Ok(json) = picket::intake::decode::decode_store_body(body.to_vec(), 1 << 20) {
            let ctx = normalize::Context {
                received: 1.7e9,
                ..Default::default()
            };
            let _ = normalize::normalize(&json, &ctx);
        }
    }
});

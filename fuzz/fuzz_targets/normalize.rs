//! Normalization and grouping of arbitrary JSON: never panics, always yields a 32-hex event id,
//! and the stored form round-trips.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::event::{grouping, normalize};

fuzz_target!(|data: &[u8]| {
    let ctx = normalize::Context {
        received: 1.7e9,
        ..Default::default()
    };
    if let Ok(event) = normalize::normalize(data, &ctx) {
        assert_eq!(event.event_id.to_string().len(), 32);
        let _ = grouping::group(&event);
        let _ = (event.title(), event.culprit());
        let encoded = picket::store::events::encode(&event);
        assert!(!encoded.payload.is_empty());
    }
});

//! Normalization and grouping of arbitrary JSON: never panics, always yields a 32-hex event id,
//! the stored form round-trips, and the typed parse of the common shape makes exactly the event
//! the lenient `Value` path makes of the same bytes.
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
    // With the default limits, and with limits small enough that frames and breadcrumbs are cut.
    let tiny = picket::event::EventLimits {
        max_frames: 2,
        max_breadcrumbs: 1,
        max_tags: 2,
        max_string_length: 8,
        ..Default::default()
    };
    for limits in [picket::event::EventLimits::default(), tiny] {
        let fixed = normalize::Context {
            event_id: picket::ids::EventId::parse("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            limits,
            ..ctx.clone()
        };
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data)
            && let Ok(event) = normalize::normalize(data, &fixed)
        {
            let lenient = normalize::normalize_value(value, &fixed);
            assert_eq!(Ok(event), lenient, "the typed and the Value paths disagree");
        }
    }
});

//! Scrubbing and inbound filters on arbitrary payloads: whatever parses as an event, the
//! filters decide on it without panicking, and after the default scrubbing no value under a
//! sensitive key is left (SDK metadata, `sdk` and `modules`, and picket's own `_meta` aside).
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::event::filters::{self, InboundFilters};
use picket::event::normalize::{Context, normalize};
use picket::event::scrub::{self, FILTERED, Privacy};
use serde_json::Value;

fn clean(v: &Value) -> bool {
    match v {
        Value::Object(map) => map.iter().all(|(k, v)| {
            if scrub::sensitive_by_default(k) {
                v.is_null() || v.as_str() == Some(FILTERED)
            } else {
                clean(v)
            }
        }),
        Value::Array(items) => items.iter().all(|item| match item.as_array() {
            Some(pair) if pair.len() == 2 && pair[0].as_str().is_some_and(scrub::sensitive_by_default) => {
                pair[1].is_null() || pair[1].as_str() == Some(FILTERED)
            }
            _ => clean(item),
        }),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let ctx = Context {
        received: 1.7e9,
        ..Default::default()
    };
    let Ok(mut event) = normalize(data, &ctx) else {
        return;
    };
    let all = InboundFilters {
        browser_extensions: true,
        localhost: true,
        web_crawlers: true,
        legacy_browsers: true,
        error_messages: vec!["*a*".into()],
        releases: vec!["*-dev".into()],
        sample_rate: Some(0.5),
    };
    let _ = filters::check(&event, &all);
    scrub::scrub(&mut event, &Privacy::default());
    let Ok(Value::Object(mut out)) = serde_json::to_value(&event) else {
        return;
    };
    for skip in ["_meta", "sdk", "modules"] {
        out.remove(skip);
    }
    assert!(clean(&Value::Object(out)), "a sensitive value survived scrubbing");
});

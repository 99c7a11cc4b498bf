//! The Web API's query parameters on arbitrary text: issue searches, periods, sorts, cursors
//! and limits must parse or be refused with a message, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::api::query;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(search) = query::search(&text) {
        // Free text is what is left after the keys: absent, or words.
        assert!(search.text.as_deref().is_none_or(|t| !t.trim().is_empty()));
    }
    let _ = query::period(&text);
    let _ = query::sort(&text);
    let _ = query::cursor(&text);
    if let Ok(n) = query::limit(Some(&*text), 25, 100) {
        assert!((1..=100).contains(&n));
    }
});

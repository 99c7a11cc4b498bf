//! The Web API's query parameters on arbitrary text: issue searches (the grammar the list,
//! the CLI and the API share), periods, sorts, cursors
//! and limits must parse or be refused with a message, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::api::query;
use picket::manage::search::{Query, Test};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(mut search) = Query::parse(&text, 1_800_000_000.0) {
        // Free text is never blank, and a scope names only exact values.
        for c in &search.conditions {
            if let Test::Text(t) = &c.test {
                assert!(!t.trim().is_empty());
            }
        }
        search.with_latest("shop@1.0");
        let scope = search.scope();
        assert!(scope.releases.iter().all(|r| !r.contains('*')));
        let _ = search.for_events();
        let _ = search.verbatim();
    }
    let _ = query::period(&text);
    let _ = query::sort(&text);
    let _ = query::cursor(&text);
    if let Ok(n) = query::limit(Some(&*text), 25, 100) {
        assert!((1..=100).contains(&n));
    }
});

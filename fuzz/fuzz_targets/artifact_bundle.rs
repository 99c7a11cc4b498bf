//! Artifact bundles on arbitrary bytes: reading the ZIP and its manifest must refuse or
//! succeed within the caps, never panic, and never hold more than the caps allow.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::artifacts::bundle::{self, BundleLimits};

fuzz_target!(|data: &[u8]| {
    let limits = BundleLimits {
        max_entries: 64,
        max_file: 1 << 20,
        max_total: 4 << 20,
        max_ratio: 50,
    };
    if let Ok(b) = bundle::read(data, &limits) {
        let total: usize = b.files.iter().map(|f| f.content.len()).sum();
        assert!(total as u64 <= limits.max_total);
        assert!(b.files.len() <= limits.max_entries);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = bundle::normalize_debug_id(text);
    }
});

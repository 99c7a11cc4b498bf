//! PHP and php-fpm error-log parsing on arbitrary bytes: splitting into entries and turning
//! each into an event must never panic, and the entries must cover what was consumed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::config::LogFormat;
use picket::tail::parse;

fuzz_target!(|data: &[u8]| {
    for eof_complete in [false, true] {
        let (entries, used) = parse::split(data, eof_complete);
        assert!(used <= data.len());
        let mut last = 0;
        for (start, end) in entries {
            assert!(start >= last && start < end && end <= used);
            last = end;
            let text = String::from_utf8_lossy(&data[start..end]);
            for format in [LogFormat::Auto, LogFormat::Php, LogFormat::PhpFpm] {
                let parsed = parse::parse(&text, format);
                let _ = parse::to_event(&parsed);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse::parse_time(text);
        let _ = parse::mask(text);
    }
});

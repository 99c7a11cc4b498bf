//! An upstream server's rate-limit answer (`X-Sentry-Rate-Limits`, `Retry-After`) on arbitrary
//! text: the forwarder pauses on what it says, so it must never panic and never pause forever.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::outbound::rate_limit_of;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (limits, retry_after) = text.split_once('\n').unwrap_or((text, ""));
    for status in [200, 429] {
        if let Some(pause) = rate_limit_of(status, limits.split('|'), Some(retry_after), "error") {
            assert!(pause.as_secs() <= 1_000_000_000);
        }
    }
});

//! The envelope parser on arbitrary bytes: never panics, and every item it returns lies inside
//! the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = picket::intake::envelope::parse(data) {
        for item in &env.items {
            assert!(item.payload.len() <= data.len());
        }
        let _ = env.event();
    }
});

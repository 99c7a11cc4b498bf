//! The write-ahead log as a crash, a bad disk or a stray write may leave it: reading it back
//! takes the whole records at its start and stops at the first torn or damaged one, never
//! panicking and never reading past the end.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::store::wal;

fuzz_target!(|data: &[u8]| {
    let (records, whole) = wal::parse(data);
    assert!(whole <= data.len());
    let held: usize = records.iter().map(|r| 16 + r.payload.len()).sum();
    assert_eq!(held, whole, "the records are exactly the whole part");
});

//! The write-ahead log as a crash, a bad disk or a stray write may leave it: reading it back
//! takes the whole records at its start, in rising sequence, and stops at an end mark, an
//! older record or the first torn or damaged one, never panicking and never reading past the
//! end.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picket::store::wal;

fuzz_target!(|data: &[u8]| {
    let (records, end) = wal::parse(data);
    assert!(end.at + end.torn <= data.len());
    let held: usize = records.iter().map(|r| 16 + r.payload.len()).sum();
    assert_eq!(held, end.at, "the records are exactly the whole part");
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
});

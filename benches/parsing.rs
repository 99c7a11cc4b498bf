//! Micro-benchmarks of the intake path, one function each, on a captured sentry-sdk event:
//! envelope parsing, body decoding, normalization (the typed parse, and beside it the lenient
//! `Value` path older shapes take), fingerprinting, storage encoding, and a writer batch
//! committed to disk. Each reports its allocations per iteration. Run:
//! `cargo bench --bench parsing`.

use std::io::Write;
use std::sync::Arc;

use picket::event::normalize::{Context, normalize};
use picket::event::{Event, grouping};
use picket::intake::{decode, envelope};
use picket::pipeline::{self, Arrival, Writer, WriterConfig};
use picket::store::{self, events, projects};

const EVENT: &[u8] = include_bytes!("data/python_event.json");

fn envelope_bytes() -> Vec<u8> {
    let mut out = format!(
        "{{\"event_id\":\"0123456789abcdef0123456789abcdef\",\"sent_at\":\"2026-11-25T12:00:00Z\"}}\n{{\"type\":\"event\",\"length\":{}}}\n",
        EVENT.len()
    )
    .into_bytes();
    out.extend_from_slice(EVENT);
    out.push(b'\n');
    out
}

fn sample() -> Event {
    normalize(
        EVENT,
        &Context {
            received: 1.8e9,
            ..Default::default()
        },
    )
    .expect("sample event")
}

#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

#[divan::bench]
fn parse_envelope(bencher: divan::Bencher) {
    let body = envelope_bytes();
    bencher.bench(|| envelope::parse(divan::black_box(&body)).map(|e| e.items.len()));
}

#[divan::bench]
fn decode_gzip(bencher: divan::Bencher) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&envelope_bytes()).unwrap();
    let body = gz.finish().unwrap();
    let encodings = decode::parse_content_encoding("gzip").unwrap();
    bencher.bench(|| decode::decode_content(divan::black_box(body.clone()), &encodings, 1 << 20));
}

#[divan::bench]
fn normalize_event(bencher: divan::Bencher) {
    let ctx = Context {
        received: 1.8e9,
        ..Default::default()
    };
    bencher.bench(|| normalize(divan::black_box(EVENT), &ctx).map(|e| e.exception.len()));
}

/// The nesting check every payload passes before it is parsed (part of `normalize_event`).
#[divan::bench]
fn check_nesting(bencher: divan::Bencher) {
    bencher.bench(|| picket::event::limits::check_depth(divan::black_box(EVENT), 64));
}

/// The same event through the lenient path (a `serde_json::Value` tree first), which payloads
/// in older shapes take: what every payload took before the typed parse.
#[divan::bench]
fn normalize_event_through_value(bencher: divan::Bencher) {
    let ctx = Context {
        received: 1.8e9,
        ..Default::default()
    };
    bencher.bench(|| {
        let value: serde_json::Value = serde_json::from_slice(divan::black_box(EVENT)).unwrap();
        picket::event::normalize::normalize_value(value, &ctx).map(|e| e.exception.len())
    });
}

/// The default scrubbing a project applies on intake (its cost beside `normalize_event`,
/// `fingerprint` and `encode_for_storage` is what it adds per event; target under 10%).
#[divan::bench]
fn scrub_defaults(bencher: divan::Bencher) {
    let event = sample();
    let privacy = picket::event::scrub::Privacy::default();
    bencher.bench(|| {
        let mut e = divan::black_box(&event).clone();
        picket::event::scrub::scrub(&mut e, &privacy)
    });
}

/// Cloning the sample: what `scrub_defaults` spends besides scrubbing.
#[divan::bench]
fn clone_event(bencher: divan::Bencher) {
    let event = sample();
    bencher.bench(|| divan::black_box(&event).clone().exception.len());
}

/// The inbound filters with every one of them on.
#[divan::bench]
fn inbound_filters_all_on(bencher: divan::Bencher) {
    let event = sample();
    let filters = picket::event::filters::InboundFilters {
        browser_extensions: true,
        localhost: true,
        web_crawlers: true,
        legacy_browsers: true,
        error_messages: vec!["*ResizeObserver loop*".into()],
        releases: vec!["*-dev".into()],
        sample_rate: None,
    };
    bencher.bench(|| picket::event::filters::check(divan::black_box(&event), &filters));
}

#[divan::bench]
fn fingerprint(bencher: divan::Bencher) {
    let event = sample();
    bencher.bench(|| grouping::group(divan::black_box(&event)));
}

#[divan::bench]
fn encode_for_storage(bencher: divan::Bencher) {
    let event = sample();
    bencher.bench(|| events::encode(divan::black_box(&event)).payload.len());
}

/// The same with a dictionary trained on other events of the same kind, as the store trains one
/// on its own events.
#[divan::bench]
fn encode_for_storage_with_dictionary(bencher: divan::Bencher) {
    let event = sample();
    let samples: Vec<Vec<u8>> = (0..1_000u64)
        .map(|i| {
            let mut other = event.clone();
            other.event_id = picket::ids::EventId(
                u128::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_be_bytes(),
            );
            other.received += i as f64;
            rmp_serde::to_vec_named(&other).unwrap()
        })
        .collect();
    let bytes = zstd::dict::from_samples(&samples, 32 * 1024).unwrap();
    let codec = picket::store::dictionary::Codec::default();
    codec.adopt(picket::store::dictionary::Dictionary {
        id: picket::store::dictionary::id_of(&bytes),
        bytes: bytes.into(),
    });
    bencher.bench(|| codec.encode(divan::black_box(&event)).payload.len());
}

/// One writer batch of 256 events, committed with an fsync, per iteration.
#[divan::bench(sample_count = 10)]
fn writer_batch_of_256(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(store::open(dir.path()).unwrap());
    let project = {
        let txn = db.begin_write().unwrap();
        let (p, _) = projects::create(&txn, "bench", 1.8e9).unwrap();
        txn.commit().unwrap();
        p.id
    };
    let (queue, jobs) = pipeline::queue(1024);
    let config = WriterConfig {
        batch_max: 256,
        issue_cache: 1000,
        quick_repair: true,
        ..Default::default()
    };
    let writer = Writer::new(db, jobs, queue.shared_stats(), config);
    let handle = std::thread::spawn(move || writer.run());
    let template = sample();
    let codec = picket::store::dictionary::Codec::default();
    let mut next = 0u128;
    bencher
        .with_inputs(|| {
            // Compression and grouping happen on intake's workers: made outside the timing.
            (0..256)
                .map(|_| {
                    next += 1;
                    let mut event = template.clone();
                    event.event_id = picket::ids::EventId(next.to_be_bytes());
                    Arrival::new(project, event, &codec)
                })
                .collect::<Vec<_>>()
        })
        .bench_local_values(|arrivals| {
            let done: Vec<_> = arrivals
                .into_iter()
                .map(|arrival| queue.submit(arrival).expect("room in the queue"))
                .collect();
            for d in done {
                d.blocking_recv().unwrap().unwrap();
            }
        });
    drop(queue);
    handle.join().unwrap();
}

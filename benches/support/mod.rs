//! Shared by the benchmarks: settings from the environment, whether this is a real run or
//! `cargo test`'s smoke run, the captured sample event, and filling a store through the real
//! writer with the queue kept full but never overflowing.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use picket::event::Event;
use picket::event::normalize::{Context, normalize};
use picket::pipeline::{self, Ack, Arrival, Queue, Writer, WriterConfig};
use picket::store::StoreError;
use picket::store::dictionary::Codec;
use tokio::sync::oneshot;

const SAMPLE: &str = include_str!("../data/python_event.json");

/// A memory figure of a process from `/proc/PID/status` (`VmRSS`, `VmHWM`…), in KiB; 0 when
/// the process is gone.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `Some(true)` under `cargo bench`, `Some(false)` under `cargo test --all-targets` (a small
/// smoke run), `None` when only asked for the list of benchmarks.
pub fn benching() -> Option<bool> {
    let mut args = std::env::args();
    if args.any(|a| a == "--list") {
        return None;
    }
    Some(std::env::args().any(|a| a == "--bench"))
}

/// The captured sentry-sdk event, normalized as intake would.
pub fn sample_event() -> Event {
    normalize(
        SAMPLE.as_bytes(),
        &Context {
            received: picket::time::now(),
            ..Default::default()
        },
    )
    .expect("the sample event normalizes")
}

/// An event ready for the queue, as intake makes it (compressed without a dictionary).
pub fn arrival(project: u64, event: Event) -> Arrival {
    Arrival::new(project, event, &Codec::default())
}

/// A writer thread on a fresh queue.
pub fn writer(
    db: Arc<redb::Database>,
    config: WriterConfig,
) -> (Queue, std::thread::JoinHandle<()>) {
    let (queue, jobs) = pipeline::queue(8192);
    let writer = Writer::new(db, jobs, queue.shared_stats(), config);
    (queue, std::thread::spawn(move || writer.run()))
}

/// Queues `n` events made by `make(i)` and waits until all are durable, never holding more
/// than `in_flight` unanswered. Reports progress every `report_every` events (0: never).
pub fn fill(
    queue: &Queue,
    n: u64,
    in_flight: usize,
    report_every: u64,
    make: impl Fn(u64) -> Arrival,
) {
    let started = Instant::now();
    let mut pending: VecDeque<oneshot::Receiver<Result<Ack, StoreError>>> = VecDeque::new();
    let wait = |done: oneshot::Receiver<Result<Ack, StoreError>>| {
        done.blocking_recv()
            .expect("the writer answers")
            .expect("stored");
    };
    for i in 0..n {
        pending.push_back(queue.submit(make(i)).expect("room in the queue"));
        while pending.len() > in_flight {
            wait(pending.pop_front().expect("pending"));
        }
        if report_every > 0 && i > 0 && i % report_every == 0 {
            eprintln!(
                "  {i} events written ({:.0}/s)",
                i as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    for done in pending {
        wait(done);
    }
}

/// A `picket serve` started for a benchmark on a fresh data directory.
pub struct Picket {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Picket {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Picket {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `picket serve` (this build's binary) on a fresh data directory and an ephemeral
/// port, with extra environment.
pub fn start_picket(env: &[(&str, &str)]) -> Picket {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_picket"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--http-addr", "127.0.0.1:0", "--udp-addr", ""])
        .env("PICKET_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(url) = line.strip_prefix("picket: listening on http://") {
            break url.parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Picket { child, addr, dir }
}

/// Runs a CLI command with `--json` on a data directory and parses what it prints.
pub fn cli(data_dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_picket"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

//! Recovery after SIGKILL with a large data file. Fills a fresh data directory with stored
//! events (1,000,000 by default), starts `picket serve` on it, kills it with SIGKILL while it is
//! writing, starts it again and measures the time to the first 200 on `/health` and on an
//! event, and its resident memory once idle. Then it loads the filled store and a fresh one
//! alike (16 keep-alive connections storing events) and compares their rates: what storing
//! costs once the file is large, both right after a start (while the server reads the whole
//! file through in the background, as it does after every start) and once that is done.
//! Run: `cargo bench --bench recovery` (PICKET_BENCH_EVENTS, PICKET_BENCH_QUICK_REPAIR,
//! PICKET_BENCH_RUNS, PICKET_BENCH_LOAD_SECONDS and PICKET_BENCH_PAGE_CACHE, the server's
//! `page_cache`, change the defaults). Filling 10 million events takes minutes: with
//! PICKET_BENCH_DATA_DIR the filled directory is kept there, and a later run with the same
//! variable measures it again without filling (the runs' own events then add to it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use picket::pipeline::{Arrival, WriterConfig};
use picket::store::dictionary::{self, Codec};
use picket::store::{self, projects};
use support::env_or;

mod support;

/// Writes `n` events into the data directory through the real writer.
fn fill(data_dir: &std::path::Path, n: u64, quick_repair: bool) -> (u64, String) {
    let db = Arc::new(store::open(data_dir).expect("open"));
    let (project, key) = {
        let txn = db.begin_write().unwrap();
        let created = projects::create(&txn, "bench", picket::time::now()).unwrap();
        txn.commit().unwrap();
        created
    };
    let config = WriterConfig {
        batch_max: 512,
        issue_cache: 10_000,
        quick_repair,
        // No caps or disk budget: the benchmark wants every event it writes kept.
        ..Default::default()
    };
    let (queue, writer) = support::writer(db.clone(), config);
    let template = support::sample_event();
    let codec = Codec::default();
    let make = |i: u64| {
        let mut event = template.clone();
        event.event_id = picket::ids::EventId(((u128::from(i) << 64) | 0xbe4c).to_be_bytes());
        // A few hundred issues, as a real project would have.
        if let Some(ex) = event.exception.last_mut() {
            ex.ty = Some(format!("BenchError{}", i % 300));
        }
        Arrival::new(project.id, event, &codec)
    };
    let started = Instant::now();
    // As the server does: the first events without a dictionary, then one trained on them.
    let first = n.min(dictionary::FIRST_TRAINING * 2);
    support::fill(&queue, first, 8000, 0, make);
    if let Some(dict) = dictionary::train(&db).expect("train") {
        let saved = dict.clone();
        queue
            .write(move |txn| dictionary::save(txn, Some(&saved), first))
            .expect("save the dictionary");
        codec.adopt(dict);
    }
    support::fill(&queue, n - first, 8000, 200_000, |i| make(first + i));
    drop(queue);
    writer.join().unwrap();
    eprintln!(
        "  {n} events written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    (project.id, key.public_key)
}

fn start(data_dir: &std::path::Path, config: &std::path::Path, port: u16) -> Child {
    serve(data_dir, config, port, Stdio::null())
}

/// [`start`], with the server's log (at `info`) on `stderr`.
fn serve(data_dir: &std::path::Path, config: &std::path::Path, port: u16, stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_picket"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .args([
            "serve",
            "--http-addr",
            &format!("127.0.0.1:{port}"),
            "--udp-addr",
            "",
        ])
        .env("PICKET_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn picket")
}

/// Resident memory of the serving process: the watchdog's child, or the process itself.
fn server_rss_kb(watchdog: u32) -> u64 {
    let children = std::fs::read_to_string(format!("/proc/{watchdog}/task/{watchdog}/children"))
        .unwrap_or_default();
    let pid = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(watchdog);
    support::status_kb(pid, "VmRSS")
}

fn http(port: u16, request: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn store_request(project: u64, key: &str) -> String {
    let body = r#"{"message":"recovery probe"}"#;
    format!(
        "POST /api/{project}/store/?sentry_key={key} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Events per second the server at `port` answers 200 over `connections` keep-alive
/// connections for `seconds`.
fn store_rate(port: u16, project: u64, key: &str, connections: usize, seconds: f64) -> f64 {
    let body = r#"{"message":"load probe","level":"error"}"#;
    let request = format!(
        "POST /api/{project}/store/?sentry_key={key} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let threads: Vec<_> = (0..connections)
        .map(|_| {
            let request = request.clone();
            std::thread::spawn(move || {
                let mut stored = 0u64;
                let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
                    return 0;
                };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                while Instant::now() < until {
                    if stream.write_all(request.as_bytes()).is_err() {
                        break;
                    }
                    let (mut status, mut length) = (String::new(), 0usize);
                    if reader.read_line(&mut status).unwrap_or(0) == 0 {
                        break;
                    }
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut answer = vec![0u8; length];
                    if reader.read_exact(&mut answer).is_err() {
                        break;
                    }
                    stored += u64::from(status.contains(" 200 "));
                }
                stored
            })
        })
        .collect();
    let stored: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    stored as f64 / seconds
}

/// When the store's rate is measured: at once after the server starts, while it reads the
/// whole file through in the background (a check for damage, after every start), or once it
/// has.
#[derive(Clone, Copy, PartialEq)]
enum After {
    Start,
    ReadThrough,
}

/// The store rate of a server started on `data_dir`.
fn rate_of(
    data_dir: &std::path::Path,
    config: &std::path::Path,
    to: (u64, &str),
    seconds: f64,
    after: After,
) -> f64 {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = serve(data_dir, config, port, Stdio::piped());
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    lines.find(|l| l.as_ref().is_ok_and(|l| l.contains("listening on")));
    // The log is read to its end (so the server never waits on a full pipe); the line that
    // says the read-through is done is passed on.
    let (read_through, done) = std::sync::mpsc::channel();
    let log = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            if line.contains("data file read through") {
                let _ = read_through.send(());
            }
        }
    });
    if after == After::ReadThrough {
        done.recv_timeout(Duration::from_secs(1800))
            .expect("the server reads its file through within 30 minutes");
    }
    let rate = store_rate(port, to.0, to.1, 16, seconds);
    child.kill().unwrap();
    child.wait().unwrap();
    rate
}

fn main() {
    // `cargo test --all-targets` runs this too (without --bench): then a small smoke run.
    let Some(benching) = support::benching() else {
        return;
    };
    let n: u64 = env_or(
        "PICKET_BENCH_EVENTS",
        if benching { 1_000_000 } else { 2_000 },
    );
    let quick_repair: bool = env_or("PICKET_BENCH_QUICK_REPAIR", true);
    let runs: usize = env_or("PICKET_BENCH_RUNS", if benching { 3 } else { 1 });
    let page_cache = std::env::var("PICKET_BENCH_PAGE_CACHE")
        .map(|size| format!("page_cache = \"{size}\"\n"))
        .unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    let kept = std::env::var_os("PICKET_BENCH_DATA_DIR").map(std::path::PathBuf::from);
    let data_dir = kept.clone().unwrap_or_else(|| dir.path().join("data"));
    let config = dir.path().join("picket.toml");
    std::fs::write(
        &config,
        // No caps: the restart must find every event it was killed with.
        format!(
            "[pipeline]\nquick_repair = {quick_repair}\n{page_cache}\n[retention]\nmax_events_per_project = 0\nmax_events_per_issue = 0\n"
        ),
    )
    .unwrap();
    // The project of a kept directory, written beside it when it was filled.
    let filled_for = kept.map(|d| d.with_extension("project"));
    let (project, key) = match filled_for
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
    {
        Some(saved) => {
            let (project, key) = saved.trim().split_once(' ').expect("project file");
            eprintln!("measuring the kept {}", data_dir.display());
            (project.parse().expect("project id"), key.to_string())
        }
        None => {
            eprintln!(
                "filling {} with {n} events (quick_repair = {quick_repair})",
                data_dir.display()
            );
            let (project, key) = fill(&data_dir, n, quick_repair);
            if let Some(f) = &filled_for {
                std::fs::write(f, format!("{project} {key}\n")).unwrap();
            }
            (project, key)
        }
    };
    let size = std::fs::metadata(store::file_in(&data_dir)).unwrap().len();
    eprintln!(
        "  file size {:.1} MB ({} bytes per event)",
        size as f64 / 1e6,
        size / n.max(1)
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut health_ms = Vec::new();
    let mut event_ms = Vec::new();
    let mut idle_rss_mb = Vec::new();
    for run in 0..runs {
        let mut child = start(&data_dir, &config, port);
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        lines.find(|l| l.as_ref().is_ok_and(|l| l.contains("listening on")));
        // Load while it is killed, so that the kill lands mid-commit.
        let writer = std::thread::spawn({
            let request = store_request(project, &key);
            move || {
                let until = Instant::now() + Duration::from_millis(700);
                while Instant::now() < until {
                    let _ = http(port, &request);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        child.kill().unwrap();
        child.wait().unwrap();
        writer.join().unwrap();

        let restarted = Instant::now();
        let mut child = start(&data_dir, &config, port);
        while http(
            port,
            "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        ) != Some(200)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        health_ms.push(restarted.elapsed().as_secs_f64() * 1000.0);
        while http(port, &store_request(project, &key)) != Some(200) {
            std::thread::sleep(Duration::from_millis(2));
        }
        event_ms.push(restarted.elapsed().as_secs_f64() * 1000.0);
        // Resident memory once it has served an event and sat idle for a moment.
        std::thread::sleep(Duration::from_secs(2));
        idle_rss_mb.push(server_rss_kb(child.id()) as f64 / 1024.0);
        eprintln!(
            "  run {run}: /health 200 after {:.0} ms, first event 200 after {:.0} ms, idle RSS {:.1} MB",
            health_ms[run], event_ms[run], idle_rss_mb[run]
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "recovery after SIGKILL with {n} events (quick_repair = {quick_repair}): median {:.0} ms to /health 200, {:.0} ms to the first stored event; idle RSS {:.1} MB",
        median(&mut health_ms),
        median(&mut event_ms),
        median(&mut idle_rss_mb)
    );

    // Storing into the filled file against a fresh one, alternated.
    let seconds: f64 = env_or(
        "PICKET_BENCH_LOAD_SECONDS",
        if benching { 10.0 } else { 1.0 },
    );
    let fresh_dir = dir.path().join("fresh");
    let (fresh_project, fresh_key) = fill(&fresh_dir, 0, quick_repair);
    for after in [After::Start, After::ReadThrough] {
        let (mut filled, mut fresh) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            filled.push(rate_of(&data_dir, &config, (project, &key), seconds, after));
            let to = (fresh_project, fresh_key.as_str());
            fresh.push(rate_of(&fresh_dir, &config, to, seconds, after));
            eprintln!(
                "  storing: {:.0} events/s into the filled file, {:.0} into a fresh one",
                filled.last().unwrap(),
                fresh.last().unwrap()
            );
        }
        let (filled, fresh) = (median(&mut filled), median(&mut fresh));
        let when = match after {
            After::Start => "right after a start (the read-through of the file under way)",
            After::ReadThrough => "once the read-through after the start is done",
        };
        println!(
            "storing over 16 connections {when}: {filled:.0} events/s into the file of {n} events, {fresh:.0} into a fresh one ({:.0}%)",
            100.0 * filled / fresh.max(1.0)
        );
    }
}

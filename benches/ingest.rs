//! The load harness: durable ingest throughput against the machine's own ceiling.
//!
//! 1. Captures real envelopes: sentry-sdk (Python) and @sentry/node each report an exception
//!    to a small capture server started here (the test clients `scripts/test` installs).
//! 2. Starts `picket serve` on a fresh data directory and replays those envelopes over many
//!    keep-alive connections for a while, each request with a fresh `event_id` (the body is
//!    pre-split around the id, so the load generator stays cheap).
//! 3. Counts what is durable and grouped from the store afterwards, and reports requests/s
//!    answered 200, events/s stored, p50/p99 latency, the server's peak RSS and bytes on disk
//!    per stored event.
//! 4. Runs the same load against a minimal hyper server (below) that only reads each body and
//!    answers 200: the ceiling of this machine with this load generator, and prints picket's
//!    durable throughput as a fraction of it.
//!
//! Run: `cargo bench --bench ingest`. PICKET_LOAD_SECONDS (10), PICKET_LOAD_CONNECTIONS (32),
//! PICKET_LOAD_RUNS (3) change the defaults; PICKET_LOAD_CAPS=default runs picket with the
//! default retention caps instead of none (a store at its caps evicts with every batch); with
//! PICKET_LOAD_TARGET=URL and PICKET_LOAD_DSN=DSN it loads that server instead (see
//! benches/bugsink.sh) and prints only the requests it answered.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

mod support;
use support::env_or;

/// A captured envelope, split around its event id: pieces[0] + id + pieces[1] + id + ….
#[derive(Clone)]
struct Template {
    pieces: Vec<Vec<u8>>,
    source: &'static str,
}

impl Template {
    fn body(&self, id: &str) -> Bytes {
        let mut out = Vec::with_capacity(self.pieces.iter().map(Vec::len).sum::<usize>() + 64);
        for (i, piece) in self.pieces.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(id.as_bytes());
            }
            out.extend_from_slice(piece);
        }
        Bytes::from(out)
    }
}

/// Runs an SDK client against a one-shot capture server and returns the envelopes it sent
/// (decompressed).
fn capture(program: &str, args: &[&str], cwd: &std::path::Path) -> Vec<Vec<u8>> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let store = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let (mut length, mut gzip, mut chunked) = (0usize, false, false);
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if lower.starts_with("content-encoding:") && lower.contains("gzip") {
                            gzip = true;
                        }
                        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                            chunked = true;
                        }
                    }
                    let mut body = vec![0; length];
                    if chunked {
                        body.clear();
                        loop {
                            let mut size = String::new();
                            if reader.read_line(&mut size).unwrap_or(0) == 0 {
                                return;
                            }
                            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                            let mut chunk = vec![0; n + 2];
                            if reader.read_exact(&mut chunk).is_err() {
                                return;
                            }
                            if n == 0 {
                                break;
                            }
                            body.extend_from_slice(&chunk[..n]);
                        }
                    } else if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if gzip {
                        let mut plain = Vec::new();
                        flate2::read::GzDecoder::new(&body[..])
                            .read_to_end(&mut plain)
                            .unwrap();
                        body = plain;
                    }
                    store.lock().unwrap().push(body);
                    let _ = reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
                }
            });
        }
    });
    let dsn = format!("http://0123456789abcdef0123456789abcdef@127.0.0.1:{port}/1");
    let status = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("SENTRY_DSN", dsn)
        .stdout(Stdio::null())
        .status()
        .expect("run an SDK client (installed by ./scripts/test)");
    assert!(status.success(), "{program} {args:?} failed");
    std::thread::sleep(Duration::from_millis(200));
    bodies.lock().unwrap().clone()
}

/// The captured envelopes that carry an event, split around their event id.
fn templates() -> Vec<Template> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let clients = root.join("tests/clients");
    let python = root.join(".test-env/venv/bin/python");
    let py = r#"
import os, sentry_sdk
sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], send_client_reports=False, environment="production", release="shop@1.4.2")
sentry_sdk.set_user({"id": "42", "email": "jane@example.com"})
sentry_sdk.set_tag("region", "eu-west")
def load_cart(user):
    items = {"sku-1": 2, "sku-2": 1}
    return items[user]
def checkout(user):
    total = 0
    sentry_sdk.add_breadcrumb(category="cart", message="checkout started")
    return load_cart(user) + total
try:
    checkout("missing-user")
except Exception:
    sentry_sdk.capture_exception()
sentry_sdk.flush(5)
"#;
    let node = r#"
const Sentry = require("@sentry/node");
Sentry.init({ dsn: process.env.SENTRY_DSN, sendClientReports: false, environment: "production", release: "web@3.1.0" });
function parseOrder(raw) { return JSON.parse(raw).items.length; }
function handle(req) { Sentry.addBreadcrumb({ category: "http", message: "POST /orders" }); return parseOrder(req.body); }
try { handle({ body: "{\"id\": 7}" }); } catch (e) { Sentry.captureException(e); }
Sentry.flush(5000);
"#;
    let mut out = Vec::new();
    let captured = [
        (
            capture(python.to_str().unwrap(), &["-c", py], &clients),
            "sentry-sdk",
        ),
        (capture("node", &["-e", node], &clients), "@sentry/node"),
    ];
    for (bodies, source) in captured {
        for body in bodies {
            let text = String::from_utf8_lossy(&body);
            if !text.contains("\"type\":\"event\"") {
                continue;
            }
            let header: serde_json::Value =
                serde_json::from_str(text.lines().next().unwrap()).unwrap();
            let id = header["event_id"].as_str().unwrap().to_string();
            let pieces = split_around(&body, id.as_bytes());
            assert!(pieces.len() >= 3, "the id is in the header and the event");
            out.push(Template { pieces, source });
        }
    }
    assert!(out.len() >= 2, "captured {} events", out.len());
    out
}

fn split_around(body: &[u8], id: &[u8]) -> Vec<Vec<u8>> {
    let mut pieces = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.windows(id.len()).position(|w| w == id) {
        pieces.push(rest[..at].to_vec());
        rest = &rest[at + id.len()..];
    }
    pieces.push(rest.to_vec());
    pieces
}

/// What one load run measured.
struct Load {
    ok: u64,
    other: u64,
    seconds: f64,
    latencies: Vec<u32>,
}

impl Load {
    /// The latencies are sorted when the run ends.
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        f64::from(self.latencies[((self.latencies.len() - 1) as f64 * p) as usize]) / 1000.0
    }
}

/// Replays the templates over `connections` keep-alive connections for `seconds`.
fn load(
    addr: SocketAddr,
    path: &str,
    auth: &str,
    templates: &[Template],
    connections: usize,
    seconds: f64,
) -> Load {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..connections {
            let (templates, path, auth) = (templates.to_vec(), path.to_string(), auth.to_string());
            tasks.push(tokio::spawn(async move {
                // Servers that close connections (gunicorn's sync workers) get new ones.
                async fn connect(
                    addr: SocketAddr,
                ) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
                    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
                    stream.set_nodelay(true).ok()?;
                    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .ok()?;
                    tokio::spawn(conn);
                    Some(send)
                }
                let (mut ok, mut other, mut latencies) = (0u64, 0u64, Vec::new());
                let mut n: u64 = 0;
                let mut conn = None;
                while Instant::now() < deadline {
                    let send = match &mut conn {
                        Some(send) => send,
                        None => match connect(addr).await {
                            Some(send) => conn.insert(send),
                            None => {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                        },
                    };
                    n += 1;
                    let id = format!("{:016x}{:016x}", c as u64 + 1, n);
                    let template = &templates[(n as usize) % templates.len()];
                    let req = Request::post(path.as_str())
                        .header("host", "127.0.0.1")
                        .header("content-type", "application/x-sentry-envelope")
                        .header("x-sentry-auth", auth.as_str())
                        .body(Full::new(template.body(&id)))
                        .unwrap();
                    let t = Instant::now();
                    let Ok(resp) = send.send_request(req).await else {
                        conn = None;
                        continue;
                    };
                    let status = resp.status();
                    let closing = resp
                        .headers()
                        .get("connection")
                        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                    let body = resp.into_body().collect().await;
                    latencies.push(t.elapsed().as_micros() as u32);
                    if status == 200 {
                        ok += 1
                    } else {
                        if other == 0 && c == 0 {
                            let text = body.map(|b| b.to_bytes()).unwrap_or_default();
                            eprintln!(
                                "first refusal: {status} {}",
                                String::from_utf8_lossy(&text[..text.len().min(300)])
                            );
                        }
                        other += 1
                    }
                    if closing {
                        conn = None;
                    }
                }
                (ok, other, latencies)
            }));
        }
        let mut total = Load {
            ok: 0,
            other: 0,
            seconds: 0.0,
            latencies: Vec::new(),
        };
        for t in tasks {
            let (ok, other, lat) = t.await.unwrap();
            total.ok += ok;
            total.other += other;
            total.latencies.extend(lat);
        }
        total.seconds = started.elapsed().as_secs_f64();
        total.latencies.sort_unstable();
        total
    })
}

/// The ceiling: a minimal hyper server that reads each body and answers 200.
fn ceiling_server() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                stream.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        |req: Request<hyper::body::Incoming>| async move {
                            let _ = req.into_body().collect().await;
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"{}"),
                            )))
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    addr
}

fn main() {
    // `cargo test --all-targets` runs this too (without --bench): then a short smoke run.
    let Some(benching) = support::benching() else {
        return;
    };
    let benching = benching || std::env::var_os("PICKET_LOAD_TARGET").is_some();
    let seconds: f64 = env_or("PICKET_LOAD_SECONDS", if benching { 10.0 } else { 2.0 });
    let connections: usize = env_or("PICKET_LOAD_CONNECTIONS", 32);
    let runs: usize = env_or("PICKET_LOAD_RUNS", if benching { 3 } else { 1 });
    let templates = templates();
    let sizes: Vec<String> = templates
        .iter()
        .map(|t| format!("{} {} B", t.source, t.body(&"0".repeat(32)).len()))
        .collect();
    println!(
        "replaying {} captured envelopes ({}), {connections} connections, {seconds} s per run",
        templates.len(),
        sizes.join(", ")
    );

    if let Ok(target) = std::env::var("PICKET_LOAD_TARGET") {
        let dsn =
            picket::ids::Dsn::parse(&std::env::var("PICKET_LOAD_DSN").expect("PICKET_LOAD_DSN"))
                .unwrap();
        let addr: SocketAddr = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap();
        let path = format!("{}/api/{}/envelope/", dsn.path, dsn.project_id);
        let run = load(
            addr,
            &path,
            &dsn.auth_header("picket-load/1"),
            &templates,
            connections,
            seconds,
        );
        println!(
            "target {target}: {} answered 200, {} otherwise, {:.0} requests/s (200), p50 {:.1} ms, p99 {:.1} ms",
            run.ok,
            run.other,
            run.ok as f64 / run.seconds,
            run.percentile(0.5),
            run.percentile(0.99)
        );
        return;
    }

    // With the default caps a run soon reaches the per-issue cap (one issue per template):
    // then every batch also evicts as many events as it stores, as in a store in use.
    let at_caps = match std::env::var("PICKET_LOAD_CAPS").as_deref() {
        Ok("default") => true,
        Ok("none") | Err(_) => false,
        Ok(other) => panic!("PICKET_LOAD_CAPS is `none` or `default`, not {other:?}"),
    };
    println!(
        "retention caps: {}",
        if at_caps { "the defaults" } else { "none" }
    );
    let ceiling = ceiling_server();
    let mut rows = Vec::new();
    for r in 0..runs {
        let picket = support::start_picket(if at_caps {
            &[]
        } else {
            &[
                ("PICKET_RETENTION_MAX_EVENTS_PER_PROJECT", "0"),
                ("PICKET_RETENTION_MAX_EVENTS_PER_ISSUE", "0"),
            ]
        });
        let project = support::cli(&picket.data(), &["project", "list"])[0].clone();
        let dsn = picket::ids::Dsn::parse(project["dsn"].as_str().unwrap()).unwrap();
        let path = format!("/api/{}/envelope/", dsn.project_id);
        let auth = dsn.auth_header("picket-load/1");
        let run = load(picket.addr, &path, &auth, &templates, connections, seconds);
        // Everything answered 200 is durable already; count what the store holds.
        let data = picket.dir.path().join("data");
        let issues = support::cli(&data, &["issues", "default", "--status", "all"]);
        let stored: u64 = issues
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["count"].as_u64().unwrap())
            .sum();
        let rss = support::status_kb(picket.child.id(), "VmHWM");
        // The data file and whatever its write-ahead log holds (when there is one).
        let disk = ["picket.redb", "picket.wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(data.join(f)).ok())
            .map(|m| m.len())
            .sum::<u64>();
        drop(picket);
        let ceiling_run = load(
            ceiling,
            "/api/1/envelope/",
            &auth,
            &templates,
            connections,
            seconds,
        );
        let durable = stored as f64 / run.seconds;
        let ceiling_rate = ceiling_run.ok as f64 / ceiling_run.seconds;
        println!(
            "run {}: picket {:.0} requests/s answered 200, {:.0} events/s durable and grouped ({} stored in {} issues, {} refused), p50 {:.2} ms, p99 {:.2} ms, peak RSS {:.1} MB, {:.0} B on disk per event | ceiling {:.0} requests/s (p50 {:.2} ms) | picket = {:.1}% of the ceiling",
            r + 1,
            run.ok as f64 / run.seconds,
            durable,
            stored,
            issues.as_array().unwrap().len(),
            run.other,
            run.percentile(0.5),
            run.percentile(0.99),
            rss as f64 / 1024.0,
            disk as f64 / stored.max(1) as f64,
            ceiling_rate,
            ceiling_run.percentile(0.5),
            durable / ceiling_rate * 100.0
        );
        rows.push((
            durable,
            ceiling_rate,
            run.percentile(0.99),
            rss,
            disk as f64 / stored.max(1) as f64,
        ));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median of {runs}: {:.0} events/s durable, ceiling {:.0} requests/s, ratio {:.1}%, p99 {:.2} ms, peak RSS {:.1} MB, {:.0} B per event",
        median(rows.iter().map(|r| r.0).collect()),
        median(rows.iter().map(|r| r.1).collect()),
        median(rows.iter().map(|r| r.0 / r.1 * 100.0).collect()),
        median(rows.iter().map(|r| r.2).collect()),
        median(rows.iter().map(|r| r.3 as f64 / 1024.0).collect()),
        median(rows.iter().map(|r| r.4).collect()),
    );
}

//! Hostile input against a running server: compression bombs, absurd nesting, broken bodies,
//! giant headers, lying lengths, slowloris (silent, trickling, 1,200 at once), a full server.
//! Each gets its documented status, the server keeps answering a normal event right after,
//! and its memory stays bounded. Also: the real sentry-sdk obeys picket's rate limits.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[limits]
max_envelope_size = "8MiB"
max_event_size = "1MiB"
max_header_size = "64KiB"
header_read_timeout = "2s"
"#;

/// Resident memory of the server process (the watchdog's child), in MiB.
fn rss_mib(server: &Server) -> u64 {
    let pid = server.status()["pid"].as_u64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024
}

/// One raw HTTP/1.1 exchange; returns the status (0 when the server closed without one).
fn raw(server: &Server, request: &[u8], close_write: bool) -> u16 {
    let addr = server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let _ = stream.write_all(request);
    if close_write {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    std::str::from_utf8(response.get(9..12).unwrap_or(b"000"))
        .unwrap_or("000")
        .parse()
        .unwrap_or(0)
}

struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(server: &Server, project: &Value) -> Client {
        let agent = common::agent();
        let key = project["public_key"].as_str().unwrap();
        Client {
            agent,
            base: format!(
                "{}/api/{}/{{route}}/?sentry_key={key}",
                server.url, project["id"]
            ),
        }
    }

    fn post(&self, route: &str, encoding: Option<&str>, body: &[u8]) -> (u16, String) {
        let url = self.base.replace("{route}", route);
        let mut req = self.agent.post(&url);
        if let Some(e) = encoding {
            req = req.header("Content-Encoding", e);
        }
        let mut resp = req.send(body).expect("request");
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    /// A normal event still gets through.
    fn healthy(&self) {
        let (status, body) = self.post("store", None, br#"{"message":"still alive"}"#);
        assert_eq!(status, 200, "a normal event after hostile input: {body}");
    }
}

/// `len` zero bytes compressed with `encoding`, written in chunks so the input never exists whole.
fn bomb(encoding: &str, len: usize) -> Vec<u8> {
    let chunk = vec![0u8; 1 << 20];
    let mut sink = Vec::new();
    {
        let mut w: Box<dyn Write + '_> = match encoding {
            "gzip" => Box::new(flate2::write::GzEncoder::new(
                &mut sink,
                flate2::Compression::best(),
            )),
            "deflate" => Box::new(flate2::write::ZlibEncoder::new(
                &mut sink,
                flate2::Compression::best(),
            )),
            "br" => Box::new(brotli::CompressorWriter::new(&mut sink, 1 << 16, 5, 22)),
            "zstd" => Box::new(
                zstd::stream::write::Encoder::new(&mut sink, 19)
                    .unwrap()
                    .auto_finish(),
            ),
            other => panic!("unknown encoding {other}"),
        };
        for _ in 0..len / chunk.len() {
            w.write_all(&chunk).unwrap();
        }
    }
    sink
}

#[test]
fn hostile_bodies_get_their_status_and_change_nothing() {
    let server = Server::start_with_config(CONFIG, &[]);
    let project = server.json(&["project", "list"])[0].clone();
    let c = Client::new(&server, &project);
    c.healthy();
    let baseline = rss_mib(&server);

    // Compression bombs: a few KB that expand to a gigabyte stop at the decompressed cap.
    for encoding in ["gzip", "deflate", "br", "zstd"] {
        let body = bomb(encoding, 1 << 30);
        assert!(
            body.len() < 2 << 20,
            "{encoding} bomb is {} bytes",
            body.len()
        );
        let (status, detail) = c.post("envelope", Some(encoding), &body);
        assert_eq!(status, 413, "{encoding} bomb: {detail}");
        assert!(detail.contains("max_envelope_size"), "{detail}");
        c.healthy();
    }

    // A store body far over its limit (1MiB) is refused before it is read; the client still
    // sends it whole and then reads the 413, instead of losing it to a reset connection.
    for times in [3, 5, 9] {
        let big = vec![b' '; times << 20];
        let (status, detail) = c.post("store", None, &big);
        assert_eq!(status, 413, "{times} MiB: {detail}");
        assert!(detail.contains("max_store_body_size"), "{detail}");
    }
    c.healthy();

    // 100,000-deep nesting.
    let deep = format!(
        "{{\"extra\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, detail) = c.post("store", None, deep.as_bytes());
    assert_eq!(status, 413, "{detail}");
    assert!(detail.contains("max_json_depth"), "{detail}");
    c.healthy();

    // Invalid UTF-8, huge numbers, NaN.
    assert_eq!(c.post("store", None, b"{\"message\":\"\xff\xfe\"}").0, 400);
    assert_eq!(
        c.post(
            "store",
            None,
            br#"{"message":"big","extra":{"n":1e999999}}"#
        )
        .0,
        400
    );
    let (status, body) = c.post(
        "store",
        None,
        br#"{"message":"nan","extra":{"n":NaN,"m":-Infinity,"k":123456789012345678901234567890}}"#,
    );
    assert_eq!(status, 200, "{body}");

    // 10,000 tags and 100,000 frames are cut to the limits, and the event says so.
    let tags: serde_json::Map<String, Value> =
        (0..10_000).map(|i| (format!("t{i}"), json!("v"))).collect();
    let (status, body) = c.post(
        "store",
        None,
        json!({"message": "tags", "tags": tags})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let id: Value = serde_json::from_str(&body).unwrap();
    let ev = server.json(&["event", "default", id["id"].as_str().unwrap()]);
    assert_eq!(ev["tags"].as_array().unwrap().len(), 200);
    assert!(ev["truncated"].as_array().unwrap().contains(&json!("tags")));
    let frames = vec![json!({}); 100_000];
    let body = json!({"exception": {"type": "Deep", "stacktrace": {"frames": frames}}}).to_string();
    let (status, answer) = c.post("store", None, body.as_bytes());
    assert_eq!(status, 200, "{answer}");
    let id: Value = serde_json::from_str(&answer).unwrap();
    let ev = server.json(&["event", "default", id["id"].as_str().unwrap()]);
    assert_eq!(
        ev["exception"]["values"][0]["stacktrace"]["frames"]
            .as_array()
            .unwrap()
            .len(),
        250
    );

    // A 10 MB header, a lying Content-Length, a truncated chunked body.
    let mut huge_header = b"POST /api/1/store/ HTTP/1.1\r\nHost: x\r\nX-Junk: ".to_vec();
    huge_header.extend(std::iter::repeat_n(b'a', 10 << 20));
    huge_header.extend_from_slice(b"\r\n\r\n");
    assert_eq!(raw(&server, &huge_header, false), 431);
    let key = project["public_key"].as_str().unwrap();
    let lying = format!(
        "POST /api/1/store/?sentry_key={key} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{\"message\":1}}"
    );
    assert_eq!(raw(&server, lying.as_bytes(), true), 400);
    let chunked = format!(
        "POST /api/1/store/?sentry_key={key} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{{\"mes\r\n"
    );
    assert_eq!(raw(&server, chunked.as_bytes(), true), 400);
    let past_end = "{}\n{\"type\":\"event\",\"length\":99999}\n{}\n";
    assert_eq!(c.post("envelope", None, past_end.as_bytes()).0, 400);
    c.healthy();

    let after = rss_mib(&server);
    assert!(
        after < baseline + 120,
        "RSS grew from {baseline} MiB to {after} MiB"
    );
    // Nothing hostile was stored: only the healthy events, the NaN one, tags and frames.
    let issues = server.json(&["issues", "default", "--status", "all"]);
    let total = common::sum(issues.as_array().unwrap(), "count");
    assert_eq!(total, 1 + 4 + 1 + 1 + 1 + 1 + 1 + 1);
}

#[test]
fn slowloris_connections_are_cut_and_others_served() {
    let server = Server::start_with_config(CONFIG, &[]);
    let project = server.json(&["project", "list"])[0].clone();
    let c = Client::new(&server, &project);
    let addr = server.url.trim_start_matches("http://").to_string();
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"POST /api/1/store/ HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    let started = Instant::now();
    c.healthy();
    // Trickle one header byte a second: the header read timeout (2 s) still closes them.
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    std::thread::sleep(Duration::from_secs(1));
    for s in &mut slow {
        let _ = s.write_all(b"X");
    }
    for s in &mut slow {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "slow connections held for {took:?}"
    );
    c.healthy();

    // A connection that sends nothing is closed once the header timeout has passed.
    let started = Instant::now();
    let mut silent = TcpStream::connect(&addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = silent.read_to_end(&mut buf);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "a silent connection held for {took:?}"
    );

    // A body trickled a byte a second is answered 408 once past the grace (2 s here).
    let key = project["public_key"].as_str().unwrap();
    let mut trickle = TcpStream::connect(&addr).unwrap();
    trickle
        .write_all(
            format!(
                "POST /api/1/store/?sentry_key={key} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    trickle
        .set_read_timeout(Some(Duration::from_millis(900)))
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        if trickle.write_all(b" ").is_err() {
            break;
        }
        let mut chunk = [0u8; 512];
        match trickle.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
        if !answer.is_empty() {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("min_body_rate"), "{answer}");
    c.healthy();
}

#[test]
fn stalled_uploads_cannot_pin_unbounded_memory() {
    let server = Server::start_with_config("[limits]\nmax_body_bytes_in_flight = \"32MiB\"\n", &[]);
    let project = server.json(&["project", "list"])[0].clone();
    let c = Client::new(&server, &project);
    c.healthy();
    let baseline = rss_mib(&server);
    let key = project["public_key"].as_str().unwrap();
    let addr = server.url.trim_start_matches("http://").to_string();
    // 40 uploads each declare 15 MiB, send 4 MiB at once, then stall.
    let chunk = vec![b' '; 4 << 20];
    let mut stalled: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(
                format!(
                    "POST /api/1/envelope/?sentry_key={key} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                    15 << 20
                )
                .as_bytes(),
            )
            .unwrap();
            s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(&chunk);
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let grown = rss_mib(&server).saturating_sub(baseline);
    assert!(
        grown < 100,
        "40 stalled uploads grew the server by {grown} MiB"
    );
    // Those past the budget were told to come back later, and others are still served.
    let mut busy = 0;
    for s in &mut stalled {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut head = [0u8; 12];
        if s.read_exact(&mut head).is_ok() && &head[9..12] == b"503" {
            busy += 1;
        }
    }
    assert!(busy >= 20, "only {busy} uploads were answered 503");
    c.healthy();
    drop(stalled);

    // The same over one HTTP/2 connection: 64 streams each send 4 MiB and stall.
    std::thread::sleep(Duration::from_secs(1));
    let baseline = rss_mib(&server);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("{}/api/1/envelope/?sentry_key={key}", server.url);
    let (answers, held) = runtime.block_on(stall_http2_streams(&addr, &url, 64));
    std::thread::sleep(Duration::from_secs(1));
    let grown = rss_mib(&server).saturating_sub(baseline);
    assert!(
        grown < 100,
        "64 stalled HTTP/2 streams grew the server by {grown} MiB"
    );
    let busy = runtime.block_on(async {
        let mut busy = 0;
        for answer in answers {
            if let Ok(Ok(Ok(status))) =
                tokio::time::timeout(Duration::from_millis(500), answer).await
                && status == 503
            {
                busy += 1;
            }
        }
        busy
    });
    assert!(busy >= 20, "only {busy} HTTP/2 uploads were answered 503");
    c.healthy();
    drop(held);
}

type StalledBody = http_body_util::StreamBody<
    std::pin::Pin<
        Box<
            dyn futures_util::Stream<
                    Item = Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
                > + Send,
        >,
    >,
>;

/// Opens one HTTP/2 connection (prior knowledge) and starts `n` uploads on it that send
/// 4 MiB each and then stall. The status each is answered with (when it is), and what keeps
/// the uploads open.
async fn stall_http2_streams(
    addr: &str,
    url: &str,
    n: usize,
) -> (
    Vec<tokio::task::JoinHandle<Result<u16, hyper::Error>>>,
    Vec<tokio::sync::mpsc::Sender<bytes::Bytes>>,
) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let (mut answers, mut held) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(2);
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            let data = rx.recv().await?;
            Some((Ok(hyper::body::Frame::data(data)), rx))
        });
        let body: StalledBody = http_body_util::StreamBody::new(Box::pin(frames));
        let request = hyper::Request::post(url)
            .header("content-type", "application/x-sentry-envelope")
            .body(body)
            .unwrap();
        let mut sender = sender.clone();
        answers.push(tokio::spawn(async move {
            sender.ready().await?;
            Ok(sender.send_request(request).await?.status().as_u16())
        }));
        tx.send(bytes::Bytes::from(vec![b' '; 4 << 20]))
            .await
            .unwrap();
        held.push(tx);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    (answers, held)
}

#[test]
fn the_real_sdk_stops_sending_when_rate_limited() {
    let server = Server::start_with_config(
        "[rate_limits]\nper_key_per_minute = 6\nper_key_burst = 2\n",
        &[],
    );
    let project = server.json(&["project", "list"])[0].clone();
    let script = r#"
import os, time, sentry_sdk
sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], send_client_reports=False, default_integrations=False)
for n in range(25):
    sentry_sdk.capture_message("tick %d" % n)
    time.sleep(0.2)
sentry_sdk.flush(timeout=5)
"#;
    common::run_python(script, project["dsn"].as_str().unwrap());
    // Five seconds of sending at 5 events/s: two fit the burst, the third is refused with a
    // 10 s limit, and the SDK sends nothing more during it.
    let status = server.status();
    assert_eq!(status["events"]["accepted"], 2, "{status}");
    assert_eq!(
        status["rejected"]["rate_limited"], 1,
        "the SDK kept sending after the 429: {status}"
    );
}

#[test]
fn rate_limit_headers_follow_the_protocol_grammar() {
    let server = Server::start_with_config(
        "[rate_limits]\nserver_per_minute = 60\nserver_burst = 1\n",
        &[],
    );
    let project = server.json(&["project", "list"])[0].clone();
    let key = project["public_key"].as_str().unwrap();
    let one = || {
        let agent = common::agent();
        let mut resp = agent
            .post(&format!("{}/api/1/store/?sentry_key={key}", server.url))
            .send(&br#"{"message":"x"}"#[..])
            .unwrap();
        let h = |n: &str| {
            resp.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let out = (
            resp.status().as_u16(),
            h("retry-after"),
            h("x-sentry-rate-limits"),
        );
        let _ = resp.body_mut().read_to_string();
        out
    };
    assert_eq!(one().0, 200);
    let (status, retry_after, limits) = one();
    assert_eq!(status, 429);
    let retry_after: u64 = retry_after.unwrap().parse().expect("integer Retry-After");
    assert!((1..=2).contains(&retry_after));
    assert_eq!(limits.unwrap(), format!("{retry_after}::organization"));

    // A key's own limit, set from the CLI, applies at once.
    let out = server.cli(&[
        "key",
        "rate-limit",
        key,
        "--per-minute",
        "1",
        "--burst",
        "1",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(one().0, 200);
    let (status, retry_after, limits) = one();
    assert_eq!(status, 429);
    assert!(limits.unwrap().ends_with("::key"), "per-key scope");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 50);
}

#[test]
fn a_full_server_closes_an_idle_connection_for_a_new_one_and_else_makes_it_wait() {
    let server =
        Server::start_with_config("[limits]\nmax_connections = 2\nmin_body_rate = 0\n", &[]);
    let project = server.json(&["project", "list"])[0].clone();
    let key = project["public_key"].as_str().unwrap().to_string();
    let addr = server.url.trim_start_matches("http://").to_string();
    let body = r#"{"message":"hi"}"#;
    let request = format!(
        "POST /api/1/store/?sentry_key={key} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let closing = request.replace("HTTP/1.1\r\n", "HTTP/1.1\r\nConnection: close\r\n");
    // Two kept-alive connections, idle after a request each, take both slots: a third is
    // served at once and the one idle longest is closed for it.
    let mut idle: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(request.as_bytes()).unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).unwrap();
            assert_eq!(&head[9..12], b"200");
            s
        })
        .collect();
    let started = Instant::now();
    assert_eq!(raw(&server, closing.as_bytes(), false), 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    idle[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    assert!(
        match idle[0].read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        },
        "the oldest idle connection was closed"
    );
    drop(idle);

    // Two connections in the middle of sending a body (any pace is allowed here) are not
    // closed: a third waits until one of them is done, then is served.
    let head = format!(
        "POST /api/1/store/?sentry_key={key} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut busy: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&body.as_bytes()[..4]).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let third = {
        let closing = closing.clone();
        let addr = addr.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(closing.as_bytes()).unwrap();
            let mut head = [0u8; 12];
            s.read_exact(&mut head).unwrap();
            (
                String::from_utf8_lossy(&head[9..12]).into_owned(),
                started.elapsed(),
            )
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !third.is_finished(),
        "the third connection was served while both were busy"
    );
    busy[0].write_all(&body.as_bytes()[4..]).unwrap();
    let (status, waited) = third.join().unwrap();
    assert_eq!(status, "200");
    assert!(waited >= Duration::from_millis(1500), "waited {waited:?}");
    let mut head = [0u8; 12];
    busy[0].read_exact(&mut head).unwrap();
    assert_eq!(
        &head[9..12],
        b"200",
        "the busy request was completed, not cut"
    );
}

#[test]
fn twelve_hundred_silent_and_trickling_connections_do_not_stall_the_server() {
    // Defaults: 1,024 slots and 10 s to send headers.
    let server = Server::start();
    let project = server.json(&["project", "list"])[0].clone();
    let c = Client::new(&server, &project);
    let key = project["public_key"].as_str().unwrap();
    let addr = server.url.trim_start_matches("http://").to_string();
    // Half connect and send nothing; half send a request's headers and one byte of its body.
    let trickle = format!(
        "POST /api/1/store/?sentry_key={key} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{"
    );
    let held: Vec<TcpStream> = (0..1200)
        .map(|i| {
            let mut s = TcpStream::connect(&addr).unwrap();
            if i % 2 == 1 {
                let _ = s.write_all(trickle.as_bytes());
            }
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // A real client is answered promptly, and so is the health check.
    let started = Instant::now();
    c.healthy();
    let health = common::agent()
        .get(&format!("{}/health", server.url))
        .call()
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "served after {took:?}");
    drop(held);
}

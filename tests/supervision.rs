//! Supervision and the process as an operator sees it: the watchdog bringing the server back
//! after SIGKILL with nothing acknowledged lost (events, and the attachments, feedback and
//! check-ins sent beside them), a graceful SIGTERM under load, a worker
//! restarted after a panic, raven UDP datagrams, SIGHUP reloads and `/metrics`.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{Server, signal};
use serde_json::{Value, json};

/// A transport for the real `sentry` SDK that sends each envelope synchronously and remembers
/// which event ids picket answered 200 for.
struct AckingTransport {
    agent: ureq::Agent,
    url: String,
    auth: String,
    acked: Mutex<Vec<String>>,
}

impl AckingTransport {
    fn new(server: &Server, project: &Value) -> Arc<AckingTransport> {
        let agent = common::agent();
        Arc::new(AckingTransport {
            agent,
            url: format!("{}/api/{}/envelope/", server.url, project["id"]),
            auth: format!(
                "Sentry sentry_key={}, sentry_version=7",
                project["public_key"].as_str().unwrap()
            ),
            acked: Mutex::new(Vec::new()),
        })
    }

    fn acked(&self) -> Vec<String> {
        self.acked.lock().unwrap().clone()
    }
}

impl sentry::Transport for AckingTransport {
    fn send_envelope(&self, envelope: sentry::Envelope) {
        let Some(id) = envelope.uuid().map(|u| u.simple().to_string()) else {
            return;
        };
        let mut body = Vec::new();
        envelope.to_writer(&mut body).unwrap();
        let sent = self
            .agent
            .post(&self.url)
            .header("X-Sentry-Auth", &self.auth)
            .send(&body[..]);
        if let Ok(resp) = sent
            && resp.status() == 200
        {
            self.acked.lock().unwrap().push(id);
        }
    }
}

/// Sends events with the real SDK from a thread until `stop`; returns the transport.
fn steady_sender(
    server: &Server,
    project: &Value,
    stop: Arc<AtomicBool>,
) -> (Arc<AckingTransport>, std::thread::JoinHandle<()>) {
    let transport = AckingTransport::new(server, project);
    let mut options = sentry::ClientOptions::default();
    options.dsn = Some(project["dsn"].as_str().unwrap().parse().unwrap());
    options.transport = Some(Arc::new(transport.clone()));
    let client = Arc::new(sentry::Client::from(options));
    let sender = std::thread::spawn(move || {
        let hub = sentry::Hub::new(Some(client), Arc::new(Default::default()));
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) && n < 100_000 {
            hub.capture_message(&format!("steady event {n} arrived"), sentry::Level::Error);
            n += 1;
        }
    });
    (transport, sender)
}

/// What the mixed sender was answered 200 for, by kind.
#[derive(Default)]
struct MixedAcks {
    /// Events sent with an attachment: (event id, n), the attachment `proof-n.txt`.
    attachments: Vec<(String, u64)>,
    /// Feedback messages.
    feedback: Vec<String>,
    /// Check-ins: (monitor slug, check-in id).
    check_ins: Vec<(String, String)>,
}

fn proof(n: u64) -> String {
    format!("attachment {n} of the mixed load\n").repeat(20)
}

/// Sends raw envelopes the SDKs send besides plain events, in turn, from a thread until
/// `stop`: an event with an attachment, feedback, a cron check-in that makes its monitor.
fn mixed_sender(
    server: &Server,
    project: &Value,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<MixedAcks>>, std::thread::JoinHandle<()>) {
    let url = format!(
        "{}/api/{}/envelope/?sentry_key={}",
        server.url,
        project["id"],
        project["public_key"].as_str().unwrap()
    );
    let acks = Arc::new(Mutex::new(MixedAcks::default()));
    let record = acks.clone();
    let sender = std::thread::spawn(move || {
        let agent = common::agent();
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) && n < 900 {
            let id = format!("{:032x}", 0xabc0_0000_u64 + n);
            let body = match n % 3 {
                0 => {
                    let proof = proof(n);
                    format!(
                        "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"mixed event {n}\"}}\n\
                         {{\"type\":\"attachment\",\"length\":{},\"filename\":\"proof-{n}.txt\"}}\n{proof}\n",
                        proof.len()
                    )
                }
                1 => format!(
                    "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"feedback\"}}\n\
                     {{\"contexts\":{{\"feedback\":{{\"message\":\"mixed feedback {n}\",\"contact_email\":\"u@example.com\"}}}}}}\n"
                ),
                _ => format!(
                    "{{}}\n{{\"type\":\"check_in\"}}\n\
                     {{\"check_in_id\":\"{id}\",\"monitor_slug\":\"job-{n}\",\"status\":\"ok\",\
                     \"monitor_config\":{{\"schedule\":{{\"type\":\"interval\",\"value\":1,\"unit\":\"day\"}}}}}}\n"
                ),
            };
            let acked = agent
                .post(&url)
                .send(body.as_bytes())
                .is_ok_and(|r| r.status() == 200);
            if acked {
                let mut acks = record.lock().unwrap();
                match n % 3 {
                    0 => acks.attachments.push((id, n)),
                    1 => acks.feedback.push(format!("mixed feedback {n}")),
                    _ => acks.check_ins.push((format!("job-{n}"), id)),
                }
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    (acks, sender)
}

/// Every attachment, feedback and check-in the mixed sender was answered 200 for is stored.
fn assert_mixed_stored(server: &Server, project: &str, acks: &MixedAcks) {
    assert!(
        acks.attachments.len() > 5 && acks.feedback.len() > 5 && acks.check_ins.len() > 5,
        "too little mixed load acknowledged to mean anything"
    );
    for (event_id, n) in &acks.attachments {
        let name = format!("proof-{n}.txt");
        let out = server.cli(&["attachment", project, event_id, &name]);
        assert!(
            out.status.success() && out.stdout == proof(*n).as_bytes(),
            "the acknowledged attachment {name} of {event_id} was lost: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let feedback = server.json(&["feedback", project]);
    let messages: BTreeSet<&str> = feedback
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["message"].as_str())
        .collect();
    for message in &acks.feedback {
        assert!(
            messages.contains(message.as_str()),
            "lost feedback {message:?}"
        );
    }
    let monitors = server.json(&["monitors", project]);
    let check_ins: BTreeSet<(String, String)> = monitors
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| {
            let slug = m["slug"].as_str().unwrap().to_string();
            m["checkins"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |c| (slug.clone(), c["id"].as_str().unwrap().to_string()))
        })
        .collect();
    for check_in in &acks.check_ins {
        assert!(check_ins.contains(check_in), "lost check-in {check_in:?}");
    }
}

/// Every event id stored for a project, over all its issues.
fn stored_ids(server: &Server, project: &str) -> BTreeSet<String> {
    let issues = server.json(&["issues", project, "--status", "all"]);
    let mut ids = BTreeSet::new();
    for issue in issues.as_array().unwrap() {
        for e in server
            .json(&["events", project, &issue["id"].to_string()])
            .as_array()
            .unwrap()
        {
            ids.insert(e["event_id"].as_str().unwrap().to_string());
        }
    }
    ids
}

fn assert_all_stored(acked: &[String], stored: &BTreeSet<String>) {
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events were lost: {lost:?}",
        lost.len(),
        acked.len()
    );
}

#[test]
fn sigkill_loses_no_acknowledged_event() {
    let server = Server::start();
    let project = server.project("steady");
    let stop = Arc::new(AtomicBool::new(false));
    let (transport, sender) = steady_sender(&server, &project, stop.clone());
    let (mixed, mixed_sender) = mixed_sender(&server, &project, stop.clone());

    let mut pids = vec![server.status()["pid"].as_u64().unwrap()];
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(800));
        let before = transport.acked().len();
        signal(*pids.last().unwrap() as u32, "KILL");
        // The watchdog brings a new server process up on the same socket.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pid = server.status()["pid"].as_u64().unwrap();
            if !pids.contains(&pid) {
                pids.push(pid);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the watchdog did not restart the server"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // And it serves again: acknowledgements resume.
        let deadline = Instant::now() + Duration::from_secs(30);
        while transport.acked().len() <= before + 5 {
            assert!(
                Instant::now() < deadline,
                "no events acknowledged after the restart"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    mixed_sender.join().unwrap();
    let acked = transport.acked();
    assert!(
        acked.len() > 50,
        "too few events acknowledged to mean anything: {}",
        acked.len()
    );
    assert_all_stored(&acked, &stored_ids(&server, "steady"));
    assert_mixed_stored(&server, "steady", &mixed.lock().unwrap());
    assert!(
        server.stderr().contains("was killed by signal 9"),
        "the watchdog logs each restart"
    );
}

#[test]
fn sigterm_under_load_exits_zero_and_keeps_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_in(&data, &[]);
    let project = server.project("graceful");
    let stop = Arc::new(AtomicBool::new(false));
    let (transport, sender) = steady_sender(&server, &project, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while transport.acked().len() < 50 {
        assert!(Instant::now() < deadline, "no load");
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let status = server.stop();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "stopping took {:?}",
        started.elapsed()
    );
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();

    let server = Server::start_in(&data, &[]);
    assert_all_stored(&transport.acked(), &stored_ids(&server, "graceful"));
}

#[test]
fn a_panicking_worker_is_restarted_and_shown_in_status() {
    let server = Server::start();
    let out = server.cli(&["debug-crash", "writer"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let writer = loop {
        let status = server.status();
        let writer = status["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["name"] == "writer")
            .cloned()
            .unwrap();
        if writer["restarts"] == 1 && writer["state"] == "running" {
            break writer;
        }
        assert!(Instant::now() < deadline, "writer not restarted: {status}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(writer["last_error"].as_str().unwrap().contains("panicked"));
    // The restarted writer stores events.
    let project = server.json(&["project", "list"])[0].clone();
    let (status, _) = post_store(&server, &project, br#"{"message":"after the crash"}"#);
    assert_eq!(status, 200);
    assert_eq!(server.json(&["issues", "default"])[0]["count"], 1);
    let text = String::from_utf8(server.cli(&["status"]).stdout).unwrap();
    assert!(
        text.contains("writer") && text.contains("panicked"),
        "{text}"
    );
}

fn post_store(server: &Server, project: &Value, body: &[u8]) -> (u16, String) {
    let agent = common::agent();
    let url = common::store_url(server, project);
    let mut resp = agent.post(&url).send(body).unwrap();
    (
        resp.status().as_u16(),
        resp.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[test]
fn raven_udp_datagrams_in_all_three_forms() {
    let server = Server::start_with_config("udp_addr = \"127.0.0.1:0\"\n", &[]);
    let project = server.project("udp");
    let keys = server.json(&["key", "list", "udp"]);
    let (public, secret) = (
        keys[0]["public_key"].as_str().unwrap(),
        keys[0]["secret_key"].as_str().unwrap(),
    );
    let udp_addr = server.status()["udp_addr"].as_str().unwrap().to_string();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let auth = format!(
        "Sentry sentry_timestamp=1328055286.51, sentry_client=raven-python/5.2.0, sentry_version=6, sentry_key={public}, sentry_secret={secret}"
    );
    let event = |n: u32| {
        json!({"message": format!("udp user {n} failed"), "level": "error", "platform": "python"})
            .to_string()
    };
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let zlib = |d: &[u8]| {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(d).unwrap();
        e.finish().unwrap()
    };
    let bodies = [
        event(1),
        b64(event(2).as_bytes()),
        b64(&zlib(event(3).as_bytes())),
    ];
    for body in &bodies {
        socket
            .send_to(format!("{auth}\n\n{body}").as_bytes(), &udp_addr)
            .unwrap();
    }
    // Refused datagrams, each counted by its reason.
    let bad: [Vec<u8>; 4] = [
        b"no separator here".to_vec(),
        format!(
            "Sentry sentry_key=0123456789abcdef0123456789abcdef\n\n{}",
            event(4)
        )
        .into_bytes(),
        format!("{auth}\n\n%%% not base64 %%%").into_bytes(),
        format!("{auth}\n\n{{\"message\": ").into_bytes(),
    ];
    for datagram in &bad {
        socket.send_to(datagram, &udp_addr).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let issues = server.json(&["issues", "udp"]);
        let status = server.status();
        let dropped = &status["dropped"];
        let dropped_total: u64 = dropped
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        if issues.as_array().unwrap().len() == 1 && issues[0]["count"] == 3 && dropped_total == 4 {
            assert_eq!(dropped["auth"], 1, "{dropped}");
            assert_eq!(dropped["rejected_key"], 1, "{dropped}");
            assert_eq!(dropped["bad_body"], 1, "{dropped}");
            assert_eq!(dropped["bad_event"], 1, "{dropped}");
            assert_eq!(issues[0]["title"], "udp user 3 failed");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "UDP events not grouped as expected: {issues} {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(project);
}

#[test]
fn sighup_applies_a_new_log_level_without_a_restart() {
    let server = Server::start_with_config("log = \"info\"\n", &[]);
    let project = server.json(&["project", "list"])[0].clone();
    let pid = server.status()["pid"].clone();
    let mut bad_key = project.clone();
    bad_key["public_key"] = json!("ffffffffffffffffffffffffffffffff");
    assert_eq!(post_store(&server, &bad_key, b"{}").0, 403);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !server.stderr().contains("refused /api/"),
        "debug lines before the reload"
    );

    std::fs::write(server.config_file(), "log = \"debug\"\n").unwrap();
    signal(server.pid(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr().contains("log filter is now 'debug'") {
        assert!(
            Instant::now() < deadline,
            "SIGHUP not applied: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(post_store(&server, &bad_key, b"{}").0, 403);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stderr().contains("refused /api/") {
        assert!(Instant::now() < deadline, "the debug level did not apply");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        server.status()["pid"],
        pid,
        "SIGHUP must not restart the server"
    );
}

#[test]
fn metrics_count_accepted_events() {
    let server = Server::start_with_config("[metrics]\nenabled = true\ntoken = \"s3cret\"\n", &[]);
    let project = server.json(&["project", "list"])[0].clone();
    for n in 0..7 {
        let (status, _) = post_store(
            &server,
            &project,
            json!({"message": format!("metric {n}")})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(status, 200);
    }
    assert_eq!(post_store(&server, &project, b"{not json").0, 400);
    let agent = common::agent();
    let url = format!("{}/metrics", server.url);
    assert_eq!(
        agent.get(&url).call().unwrap().status(),
        401,
        "metrics without the token"
    );
    let mut resp = agent
        .get(&url)
        .header("Authorization", "Bearer s3cret")
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.body_mut().read_to_string().unwrap();
    let value = |line_start: &str| {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap_or_else(|| panic!("{line_start} missing from:\n{text}"))
            .to_string()
    };
    assert_eq!(value("picket_events_accepted_total "), "7");
    assert_eq!(value("picket_events_stored_total "), "7");
    assert_eq!(
        value("picket_requests_rejected_total{reason=\"bad_event\"}"),
        "1"
    );
    assert!(text.contains("# TYPE picket_events_accepted_total counter"));
}

/// Stores `n` events through the store endpoint, each answered 200 before the next, with
/// fixed ids and four fingerprints; the ids.
fn store_acknowledged(server: &Server, project: &Value, n: u64) -> Vec<String> {
    let url = common::store_url(server, project);
    let agent = common::agent();
    (0..n)
        .map(|i| {
            let id = format!("{:032x}", 0xa11_0000 + i);
            let body = json!({
                "event_id": id,
                "message": format!("logged event {i}"),
                "fingerprint": [format!("group-{}", i % 4)],
                "level": "error",
            });
            let resp = agent.post(&url).send(body.to_string().as_bytes()).unwrap();
            assert_eq!(resp.status().as_u16(), 200, "event {i}");
            id
        })
        .collect()
}

/// The events counted over a project's issues, and the ids stored.
fn counted(server: &Server, project: &str) -> (u64, BTreeSet<String>) {
    let issues = server.json(&["issues", project, "--status", "all"]);
    let count = common::sum(issues.as_array().unwrap(), "count");
    (count, stored_ids(server, project))
}

#[test]
fn a_crash_between_the_log_and_the_checkpoint_loses_nothing_and_applies_nothing_twice() {
    // No checkpoint while the test runs: the batches are in the log and nowhere durable else.
    let toml = "[pipeline]\ncheckpoint_interval = \"1h\"\ncheckpoint_size = \"1GiB\"\n";
    let server = Server::start_with_config(toml, &[]);
    let project = server.project("logged");
    let config = server.config_file();
    let data_dir = server.data_dir.clone();
    let acked = store_acknowledged(&server, &project, 120);
    // Sent again: answered, not stored twice.
    let again = store_acknowledged(&server, &project, 10);
    assert_eq!(&again[..], &acked[..10]);
    let log = data_dir.join("picket.wal");
    let logged = std::fs::read(&log).unwrap();
    assert!(
        logged.len() > 10_000,
        "the batches are in the log: {} bytes",
        logged.len()
    );
    let _dir = server.crash();

    // A torn last record, as a crash in the middle of a write leaves it: the start of a
    // record where the end mark (16 zero bytes after the last record) was.
    assert!(logged.ends_with(&[0; 16]), "the log ends in its end mark");
    let torn = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    std::os::unix::fs::FileExt::write_all_at(
        &torn,
        &[200, 1, 0, 0, 9, 9, 9, 9, 1, 0, 0, 0, 0, 0, 0, 0, 7, 7],
        logged.len() as u64 - 16,
    )
    .unwrap();
    drop(torn);

    // `picket check` says what the log holds, without applying it.
    let check = common::cli_json(&data_dir, &["check"]);
    assert_eq!(check["log_batches"], 130, "{check}");
    assert_eq!(check["log_torn_bytes"], 18, "{check}");
    assert_eq!(
        check["events"], 0,
        "nothing but the log holds the events yet: {check}"
    );

    let config_arg = config.to_string_lossy().to_string();
    let args = ["--config", config_arg.as_str()];
    let started = Instant::now();
    let server = Server::start_in(&data_dir, &args);
    let restart = started.elapsed();
    let (count, stored) = counted(&server, "logged");
    assert_eq!(count, 120, "every acknowledged event counted once");
    assert_all_stored(&acked, &stored);
    assert_eq!(stored.len(), 120);
    assert!(
        server
            .stderr()
            .contains("applied 130 records from the write-ahead log"),
        "{}",
        server.stderr()
    );
    assert!(
        restart < Duration::from_secs(10),
        "restart took {restart:?}"
    );
    let _ = server.stop();
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        0,
        "a clean stop leaves the log empty (a backup restored later finds nothing in it)"
    );

    // The same records once more (a checkpoint whose emptying of the log was lost): their
    // sequence numbers say they are applied, and nothing changes.
    std::fs::write(&log, &logged).unwrap();
    let server = Server::start_in(&data_dir, &args);
    let (count, stored) = counted(&server, "logged");
    assert_eq!(count, 120, "nothing applied twice");
    assert_eq!(stored.len(), 120);
}

#[test]
fn a_command_run_after_a_crash_applies_the_log_without_its_own_caps() {
    // The server keeps every event; the batches are in the log only when it is killed.
    let toml = "[pipeline]\ncheckpoint_interval = \"1h\"\ncheckpoint_size = \"1GiB\"\n\
                [retention]\nmax_events_per_project = 0\nmax_events_per_issue = 0\n";
    let server = Server::start_with_config(toml, &[]);
    let project = server.project("uncapped");
    let data_dir = server.data_dir.clone();
    let config = server.config_file().to_string_lossy().to_string();
    let acked = store_acknowledged(&server, &project, 40);
    let _dir = server.crash();

    // A command run without the server's configuration, where the defaults (or these) cap
    // far lower, applies the log as it is.
    let listed = common::cli_json_with(
        &data_dir,
        &["issues", "uncapped", "--status", "all"],
        &[
            ("PICKET_RETENTION_MAX_EVENTS_PER_PROJECT", "5"),
            ("PICKET_RETENTION_MAX_EVENTS_PER_ISSUE", "2"),
        ],
    );
    let issues = listed.as_array().unwrap();
    assert_eq!(common::sum(issues, "count"), 40);
    assert_eq!(
        common::sum(issues, "stored"),
        40,
        "the command evicted events"
    );

    let server = Server::start_in(&data_dir, &["--config", config.as_str()]);
    let (count, stored) = counted(&server, "uncapped");
    assert_eq!(count, 40);
    assert_all_stored(&acked, &stored);
}

//! Store-and-forward: an edge picket fed by a real SDK forwards every acknowledged event to an
//! upstream exactly once, across an upstream outage and a SIGKILL of the edge, and honours
//! what upstream answers (rate limits, refusals).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::sink::Sink;
use common::{Server, stored_event};
use serde_json::Value;

/// Sends `n` messages through sentry-sdk and returns their event ids.
fn send_with_sdk(dsn: &str, n: usize, tag: &str) -> Vec<String> {
    let script = format!(
        r#"
import json, os, sentry_sdk
sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], send_client_reports=False, default_integrations=False)
ids = [sentry_sdk.capture_message("{tag} %d" % (n % 3)) for n in range({n})]
sentry_sdk.flush(timeout=10)
print(json.dumps(ids))
"#
    );
    let out = common::run_python(&script, dsn);
    serde_json::from_str(out.trim()).expect("event ids from the SDK")
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn forward_status(server: &Server) -> Value {
    server.status()["forward"]["default"].clone()
}

#[test]
fn an_edge_delivers_every_acknowledged_event_once_across_an_outage_and_a_sigkill() {
    // The central picket, on a port kept across its restart.
    let central_dir = tempfile::tempdir().unwrap();
    let central_data = central_dir.path().join("data");
    let addr = format!("127.0.0.1:{}", common::free_port());
    let central = Server::start_in(&central_data, &["--http-addr", &addr]);
    let central_dsn = central.dsn();
    assert!(central.stop().success());

    let edge = Server::start_with_config("[forward]\nmax_pending_age = \"1h\"\n", &[]);
    let set = edge.json(&["project", "forward", "default", &central_dsn]);
    assert_eq!(
        set["forward_to"].as_str(),
        Some(central_dsn.as_str()),
        "forward_to shows the DSN without a secret"
    );
    let listed = edge.json(&["project", "list"]);
    assert_eq!(listed[0]["forward_to"].as_str(), Some(central_dsn.as_str()));

    let edge_dsn = listed[0]["dsn"].as_str().unwrap().to_string();
    let ids = send_with_sdk(&edge_dsn, 30, "edge event");
    assert_eq!(ids.len(), 30);
    wait_until(
        Duration::from_secs(10),
        "an upstream error in status",
        || {
            let f = forward_status(&edge);
            f["pending"] == 30 && f["last_error"].is_string()
        },
    );
    let f = forward_status(&edge);
    assert!(
        f["last_error"].as_str().unwrap().contains("refused"),
        "the error says the upstream refused the connection: {f}"
    );
    let metrics_before = edge.status();
    assert_eq!(metrics_before["forward"]["default"]["delivered"], 0);

    // Kill the edge's server process while everything is pending; the watchdog restarts it.
    let pid = edge.status()["pid"].as_u64().unwrap();
    common::signal(pid as u32, "KILL");
    wait_until(Duration::from_secs(20), "the edge to restart", || {
        let out = edge.cli(&["status", "--json"]);
        out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout).unwrap()["pid"].as_u64() != Some(pid)
    });
    assert_eq!(forward_status(&edge)["pending"], 30, "the outbox survived");

    let central = Server::start_in(&central_data, &["--http-addr", &addr]);
    wait_until(Duration::from_secs(60), "every entry delivered", || {
        forward_status(&edge)["delivered"] == 30
    });
    let f = forward_status(&edge);
    assert_eq!(f["pending"], 0, "{f}");
    assert_eq!(f["dead_letter"], 0, "{f}");

    let issues = central.json(&["issues", "default", "--status", "all"]);
    let total = common::sum(issues.as_array().unwrap(), "count");
    assert_eq!(total, 30, "each event arrived exactly once: {issues}");
    for id in &ids {
        let upstream = stored_event(&central.data_dir, "default", id)
            .unwrap_or_else(|| panic!("event {id} is missing upstream"));
        let local = stored_event(&edge.data_dir, "default", id).unwrap();
        assert_eq!(upstream["event_id"], local["event_id"]);
        assert_eq!(
            upstream["timestamp"], local["timestamp"],
            "the event keeps its original timestamp"
        );
        assert_eq!(upstream["message"], local["message"]);
    }
}

/// What the test upstream saw: when each envelope came, its event id, and the answer.
#[derive(Debug, Clone)]
struct Seen {
    at: Instant,
    event_id: String,
    status: u16,
}

/// An upstream on loopback that answers each envelope with what `answer` says for it
/// (index, event id, body → status and extra headers).
struct Upstream {
    dsn: String,
    sink: Sink,
}

type Answer = dyn Fn(usize, &str, &str) -> (u16, Vec<(String, String)>) + Send + Sync;

impl Upstream {
    fn start(answer: Box<Answer>) -> Upstream {
        Upstream::start_with_tls(answer, None)
    }

    /// With `tls`, an https upstream named `localhost` with that server configuration.
    fn start_with_tls(answer: Box<Answer>, tls: Option<Arc<rustls::ServerConfig>>) -> Upstream {
        let https = tls.is_some();
        let sink = Sink::start_with_tls(
            Box::new(move |n, _head, body| answer(n, &envelope_id(body), body)),
            tls,
        );
        let dsn = if https {
            format!(
                "https://0123456789abcdef0123456789abcdef@localhost:{}/42",
                sink.port
            )
        } else {
            format!(
                "http://0123456789abcdef0123456789abcdef@127.0.0.1:{}/42",
                sink.port
            )
        };
        Upstream { dsn, sink }
    }

    /// Every envelope received, checked for what a Sentry server requires of it.
    fn seen(&self) -> Vec<Seen> {
        self.sink
            .requests()
            .into_iter()
            .map(|r| {
                assert!(r.head.starts_with("POST /api/42/envelope/ "), "{}", r.head);
                let auth = r.header("x-sentry-auth").unwrap_or_default();
                assert!(
                    auth.contains("sentry_key=0123456789abcdef0123456789abcdef"),
                    "{auth}"
                );
                let header: Value = serde_json::from_str(r.body.lines().next().unwrap()).unwrap();
                assert!(
                    header["dsn"]
                        .as_str()
                        .unwrap()
                        .contains("0123456789abcdef@")
                );
                assert!(
                    header["sent_at"].is_string(),
                    "sent_at is refreshed: {header}"
                );
                Seen {
                    at: r.at,
                    event_id: envelope_id(&r.body),
                    status: r.status,
                }
            })
            .collect()
    }

    fn accepted(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for s in self.seen().iter().filter(|s| s.status == 200) {
            *out.entry(s.event_id.clone()).or_default() += 1;
        }
        out
    }
}

/// The `event_id` in an envelope's header line.
fn envelope_id(body: &str) -> String {
    body.lines()
        .next()
        .and_then(|l| serde_json::from_str::<Value>(l).ok())
        .and_then(|h| h["event_id"].as_str().map(String::from))
        .unwrap_or_default()
}

/// An edge picket forwarding `default` to `upstream`, with `toml` in its config.
fn edge_for(upstream: &Upstream, toml: &str) -> (Server, String) {
    let edge = Server::start_with_config(toml, &[]);
    edge.json(&["project", "forward", "default", &upstream.dsn]);
    let dsn = edge.dsn();
    (edge, dsn)
}

#[test]
fn a_429_with_rate_limits_pauses_the_project_then_everything_is_delivered() {
    let upstream = Upstream::start(Box::new(|n, _, _| {
        if n == 0 {
            (
                429,
                vec![("X-Sentry-Rate-Limits".into(), "5::project".into())],
            )
        } else {
            (200, vec![])
        }
    }));
    let (edge, dsn) = edge_for(&upstream, "");
    let ids = send_with_sdk(&dsn, 10, "limited");
    let deadline = Instant::now() + Duration::from_secs(30);
    while upstream.accepted().len() < 10 {
        assert!(
            Instant::now() < deadline,
            "not everything was delivered: {:?}\n{}",
            upstream.seen(),
            edge.status()["forward"]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = upstream.seen();
    let limited = seen.iter().find(|s| s.status == 429).expect("a 429").at;
    // Requests already in flight beside the limited one land at once; after them, nothing
    // may come until the 5 s are over.
    let in_flight = limited + Duration::from_millis(200);
    let during: Vec<_> = seen
        .iter()
        .filter(|s| s.at > in_flight && s.at < limited + Duration::from_millis(4900))
        .collect();
    assert!(
        during.is_empty(),
        "the edge sent during a 5 s rate limit: {during:?}"
    );
    assert!(
        seen.iter()
            .any(|s| s.at >= limited + Duration::from_millis(4900)),
        "it resumed after the limit"
    );
    for id in &ids {
        assert_eq!(upstream.accepted().get(id), Some(&1), "{id} delivered once");
    }
    wait_until(Duration::from_secs(5), "status to catch up", || {
        forward_status(&edge)["delivered"] == 10
    });
}

#[test]
fn an_event_upstream_refuses_goes_to_the_dead_letters_and_the_rest_is_delivered() {
    let upstream = Upstream::start(Box::new(|_, _, body| {
        if body.contains("poison") {
            (400, vec![])
        } else {
            (200, vec![])
        }
    }));
    let (edge, dsn) = edge_for(&upstream, "");
    let good = send_with_sdk(&dsn, 8, "fine");
    let bad = send_with_sdk(&dsn, 1, "poison");
    wait_until(
        Duration::from_secs(30),
        "the refusal to be recorded",
        || {
            let f = forward_status(&edge);
            f["delivered"] == 8 && f["dead_letter"] == 1
        },
    );
    for id in &good {
        assert_eq!(upstream.accepted().get(id), Some(&1));
    }
    let dead = edge.json(&["forward", "dead-letter"]);
    let dead = dead.as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["event_id"].as_str(), Some(bad[0].as_str()));
    assert_eq!(dead[0]["status"], 400);

    // A retry sends it again; refused again, it is a dead letter again.
    let before = upstream.seen().len();
    let retried = edge.json(&["forward", "dead-letter", "--retry"]);
    assert_eq!(retried["retried"], 1);
    wait_until(Duration::from_secs(30), "the retry", || {
        upstream.seen().len() > before && forward_status(&edge)["dead_letter"] == 1
    });
}

#[test]
fn without_keep_local_the_edge_keeps_no_event_once_upstream_has_it() {
    let upstream = Upstream::start(Box::new(|_, _, _| (200, vec![])));
    let (edge, dsn) = edge_for(&upstream, "[forward]\nkeep_local = false\n");
    let ids = send_with_sdk(&dsn, 12, "lean");
    wait_until(Duration::from_secs(30), "every entry delivered", || {
        forward_status(&edge)["delivered"] == 12
    });
    assert_eq!(upstream.accepted().len(), 12);
    for id in &ids {
        assert!(
            stored_event(&edge.data_dir, "default", id).is_none(),
            "{id} is still stored at the edge"
        );
    }
    let issues = edge.json(&["issues", "default", "--status", "all"]);
    for issue in issues.as_array().unwrap() {
        assert_eq!(issue["stored"], 0, "{issue}");
    }
    let total = common::sum(issues.as_array().unwrap(), "count");
    assert_eq!(total, 12, "the edge still counts what it forwarded");
}

#[test]
fn a_bad_upstream_dsn_is_refused_and_forwarding_can_be_turned_off() {
    let server = Server::start();
    let out = server.cli(&["project", "forward", "default", "not a dsn"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad upstream DSN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.json(&[
        "project",
        "forward",
        "default",
        "https://k@sentry.example.com/1",
    ]);
    let off = server.json(&["project", "forward", "default", "--off"]);
    assert_eq!(off["forward_to"], Value::Null);
    assert_eq!(server.status()["forward"], serde_json::json!({}));
}

/// A private CA and a certificate it signed for `localhost`: (CA PEM, server config).
fn private_ca() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), Arc::new(config))
}

#[test]
fn an_https_upstream_with_a_private_ca_is_trusted_only_through_forward_ca_file() {
    let (ca_pem, tls) = private_ca();
    let upstream = Upstream::start_with_tls(Box::new(|_, _, _| (200, vec![])), Some(tls));

    let (untrusting, dsn) = edge_for(&upstream, "");
    send_with_sdk(&dsn, 1, "untrusted");
    wait_until(Duration::from_secs(20), "a certificate error", || {
        forward_status(&untrusting)["last_error"].is_string()
    });
    let f = forward_status(&untrusting);
    assert!(
        f["last_error"].as_str().unwrap().contains("certificate"),
        "the error names the certificate problem: {f}"
    );
    assert_eq!(f["pending"], 1, "nothing is lost meanwhile");
    assert!(upstream.seen().is_empty());
    drop(untrusting);

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let toml = format!("[forward]\nca_file = \"{}\"\n", ca_file.display());
    let (trusting, dsn) = edge_for(&upstream, &toml);
    let ids = send_with_sdk(&dsn, 3, "trusted");
    wait_until(Duration::from_secs(20), "delivery over TLS", || {
        forward_status(&trusting)["delivered"] == 3
    });
    for id in &ids {
        assert_eq!(upstream.accepted().get(id), Some(&1));
    }
}

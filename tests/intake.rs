//! Intake end to end: real SDKs (the `sentry` crate, Python sentry-sdk and raven, @sentry/node)
//! against a running picket, then what the CLI finds in the store; data surviving a restart;
//! and the protocol's edge cases over raw HTTP.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use base64::Engine;
use common::{Server, node_clients, python, root, run_client, stored_event};
use serde_json::{Value, json};

fn plain_id(id: &str) -> String {
    id.replace('-', "").to_ascii_lowercase()
}

fn ids(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("client report lacks {key}: {report}"))
        .iter()
        .map(|v| plain_id(v.as_str().expect("id string")))
        .collect()
}

/// The issue each reported event landed in; fails if any reported event is not stored
/// under the SDK's own id.
fn issues_of(server: &Server, project: &str, ids: &[String]) -> Vec<u64> {
    ids.iter()
        .map(|id| {
            let ev = stored_event(&server.data_dir, project, id)
                .unwrap_or_else(|| panic!("event {id} that the SDK reported is not stored"));
            assert_eq!(ev["event_id"], json!(id));
            ev["issue"].as_u64().expect("issue number")
        })
        .collect()
}

fn one_issue(issues: &[u64], what: &str) -> u64 {
    let distinct: BTreeSet<_> = issues.iter().collect();
    assert_eq!(
        distinct.len(),
        1,
        "{what} should form one issue, got issues {issues:?}"
    );
    issues[0]
}

/// What every SDK test checks of the grouping the client's events produced.
fn check_grouping(server: &Server, project: &str, report: &Value) {
    let same_site = one_issue(
        &issues_of(server, project, &ids(report, "same_site")),
        "errors from one code site",
    );
    let other_site = one_issue(
        &issues_of(server, project, &ids(report, "other_site")),
        "the other site",
    );
    assert_ne!(
        same_site, other_site,
        "different code sites must be different issues"
    );
    let messages = one_issue(
        &issues_of(server, project, &ids(report, "messages")),
        "messages differing only in numbers",
    );
    let custom = one_issue(
        &issues_of(server, project, &ids(report, "fingerprint")),
        "a custom fingerprint",
    );
    assert_ne!(custom, messages);

    let issues = server.json(&["issues", project, "--status", "all"]);
    let issue = |id: u64| {
        issues
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == json!(id))
            .cloned()
            .unwrap_or_else(|| panic!("issue {id} missing from `issues`: {issues}"))
    };
    assert_eq!(
        issue(same_site)["count"],
        json!(ids(report, "same_site").len())
    );
    assert_eq!(issue(same_site)["status"], "unresolved");
    assert_eq!(issue(same_site)["grouping"], "stacktrace");
    // Some SDKs attach a stack to messages, and Sentry then groups on the stack too.
    assert!(["message", "stacktrace"].contains(&issue(messages)["grouping"].as_str().unwrap()));
    assert_eq!(issue(custom)["grouping"], "fingerprint");
    for field in [
        "id",
        "title",
        "culprit",
        "level",
        "status",
        "count",
        "first_seen",
        "last_seen",
    ] {
        assert!(
            issue(same_site).get(field).is_some(),
            "issues --json lacks {field}"
        );
    }
    let events = server.json(&["events", project, &same_site.to_string()]);
    let listed: BTreeSet<String> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids(report, "same_site").into_iter().collect());
    for e in events.as_array().unwrap() {
        let id = e["event_id"].as_str().unwrap();
        assert!(
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(e["timestamp"].is_string());
    }
}

#[test]
fn python_sentry_sdk() {
    let server = Server::start();
    let project = server.project("python-app");
    let script = root().join("tests/clients/sentry_sdk_events.py");
    let report = run_client(&python(), &script, project["dsn"].as_str().unwrap());
    check_grouping(&server, "python-app", &report);
    let ev = stored_event(
        &server.data_dir,
        "python-app",
        &ids(&report, "same_site")[0],
    )
    .unwrap();
    assert_eq!(ev["platform"], "python");
    assert_eq!(ev["release"], "app@1.0.0");
    assert_eq!(ev["environment"], "test");
    assert_eq!(ev["exception"]["values"][0]["type"], "ValueError");
    let frames = ev["exception"]["values"][0]["stacktrace"]["frames"]
        .as_array()
        .unwrap();
    assert_eq!(frames.last().unwrap()["function"], "parse_quantity");
}

#[test]
fn python_raven_store_endpoint() {
    let server = Server::start();
    let project = server.project("raven-app");
    // raven 6 wants the legacy DSN form with the secret.
    let dsn = project["dsn"].as_str().unwrap().replacen(
        '@',
        &format!(":{}@", project["secret_key"].as_str().unwrap()),
        1,
    );
    let script = root().join("tests/clients/raven_events.py");
    let report = run_client(&python(), &script, &dsn);
    check_grouping(&server, "raven-app", &report);
    let ev = stored_event(&server.data_dir, "raven-app", &ids(&report, "messages")[0]).unwrap();
    assert_eq!(ev["logentry"]["formatted"], "user 17 not found");
}

#[test]
fn node_sentry_sdk() {
    let server = Server::start();
    let project = server.project("node-app");
    let dir = node_clients();
    let report = run_client(
        std::path::Path::new("node"),
        &dir.join("node_events.js"),
        project["dsn"].as_str().unwrap(),
    );
    check_grouping(&server, "node-app", &report);
    let ev = stored_event(&server.data_dir, "node-app", &ids(&report, "same_site")[0]).unwrap();
    assert_eq!(ev["exception"]["values"][0]["type"], "TypeError");
}

fn rust_site_a(input: &str) -> sentry::types::Uuid {
    match input.parse::<i64>() {
        Ok(_) => unreachable!("inputs are not numbers"),
        Err(e) => sentry::capture_error(&e),
    }
}

fn rust_site_b(input: &str) -> sentry::types::Uuid {
    match input.parse::<f64>() {
        Ok(_) => unreachable!("inputs are not numbers"),
        Err(e) => sentry::capture_error(&e),
    }
}

#[test]
fn rust_sentry_crate() {
    let server = Server::start();
    let project = server.project("rust-app");
    let mut options = sentry::ClientOptions::default();
    options.attach_stacktrace = true;
    options.release = Some("app@2".into());
    let guard = sentry::init((project["dsn"].as_str().unwrap(), options));
    let id = |u: sentry::types::Uuid| u.simple().to_string();
    let same_site: Vec<String> = ["x17", "y42", "zz"]
        .iter()
        .map(|s| id(rust_site_a(s)))
        .collect();
    let other_site = vec![id(rust_site_b("nope"))];
    let messages: Vec<String> = [17, 42]
        .iter()
        .map(|n| {
            id(sentry::capture_message(
                &format!("user {n} not found"),
                sentry::Level::Error,
            ))
        })
        .collect();
    let fingerprint: Vec<String> = ["first custom", "second custom"]
        .iter()
        .map(|text| {
            id(sentry::with_scope(
                |scope| scope.set_fingerprint(Some(&["my-custom-group"])),
                || sentry::capture_message(text, sentry::Level::Error),
            ))
        })
        .collect();
    let report = json!({
        "same_site": same_site,
        "other_site": other_site,
        "messages": messages,
        "fingerprint": fingerprint,
    });
    assert!(
        guard.flush(Some(Duration::from_secs(10))),
        "the sentry crate could not flush"
    );
    check_grouping(&server, "rust-app", &report);
}

#[test]
fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_in(&data, &[]);
    let project = server.project("keep");
    let dsn = project["dsn"].as_str().unwrap().to_string();
    let client = Raw::new(&server, &project);
    let mut sent = Vec::new();
    for n in 0..20 {
        let id = format!("{:032x}", 0xabc000 + n);
        let body = json!({"event_id": id, "message": format!("restart {n} failed")}).to_string();
        client.expect(200, "POST", "/store/", &[], body.as_bytes());
        sent.push(id);
    }
    let issues_before = server.json(&["issues", "keep"]);
    let status = server.stop();
    assert!(
        status.success(),
        "picket exited with {status} after SIGTERM"
    );

    let server = Server::start_in(&data, &[]);
    assert_eq!(server.json(&["issues", "keep"]), issues_before);
    for id in &sent {
        assert!(
            stored_event(&server.data_dir, "keep", id).is_some(),
            "event {id} lost in the restart"
        );
    }
    // The project's key still works after the restart.
    let client = Raw::new(&server, &project);
    client.expect(
        200,
        "POST",
        "/store/",
        &[],
        br#"{"message":"restart 99 failed"}"#,
    );
    let issues = server.json(&["issues", "keep"]);
    assert_eq!(issues[0]["count"], json!(21));
    drop(dsn);
}

#[test]
fn a_trained_dictionary_compresses_new_events_and_every_event_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_in(&data, &[]);
    let project = server.project("dict");
    let client = Raw::new(&server, &project);
    let template: Value =
        serde_json::from_str(include_str!("../benches/data/python_event.json")).unwrap();
    let send = |n: u64| {
        let id = format!("{:032x}", 0xd1c7_0000 + n);
        let mut event = template.clone();
        event["event_id"] = json!(id);
        event["exception"]["values"][0]["value"] = json!(format!("order {n} not found"));
        client.expect(200, "POST", "/store/", &[], event.to_string().as_bytes());
        id
    };
    let before: Vec<String> = (0..1_100).map(send).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let dictionary = loop {
        if let Some(d) = server.status()["events"]["dictionary"].as_str() {
            break d.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dictionary trained after 1,100 events"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(dictionary.len(), 16, "{dictionary}");
    let after: Vec<String> = (1_100..1_110).map(send).collect();

    let read = |server: &Server, id: &str| {
        common::stored_event(&server.data_dir, "dict", id)
            .unwrap_or_else(|| panic!("event {id} unreadable"))
    };
    let first = read(&server, &before[0]);
    let last = read(&server, &after[9]);
    assert_eq!(
        first["exception"]["values"][0]["value"],
        json!("order 0 not found")
    );
    assert_eq!(
        last["exception"]["values"][0]["value"],
        json!("order 1109 not found")
    );
    // A restart finds the dictionary in the file: old and new events read back the same.
    let server = server.restart();
    assert_eq!(read(&server, &before[0]), first);
    assert_eq!(read(&server, &after[9]), last);
    assert_eq!(
        server.status()["events"]["dictionary"].as_str(),
        Some(dictionary.as_str())
    );
    // With the server stopped, the CLI reads the file itself.
    assert!(server.stop().success());
    let offline = |id: &str| {
        let out = common::cli(&data, &["event", "dict", id, "--json"]);
        assert!(
            out.status.success(),
            "event {id} unreadable from the file: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(offline(&before[0]), first);
    assert_eq!(offline(&after[9]), last);
}

/// Raw HTTP against a project's ingest routes.
struct Raw {
    agent: ureq::Agent,
    url: String,
    project: u64,
    key: String,
}

impl Raw {
    fn new(server: &Server, project: &Value) -> Raw {
        let agent = common::agent();
        Raw {
            agent,
            url: server.url.clone(),
            project: project["id"].as_u64().unwrap(),
            key: project["public_key"].as_str().unwrap().to_string(),
        }
    }

    fn auth(&self) -> (&'static str, String) {
        (
            "X-Sentry-Auth",
            format!(
                "Sentry sentry_key={}, sentry_version=7, sentry_client=test/1",
                self.key
            ),
        )
    }

    /// Sends a request to `/api/{project}{route}` (or to `route` itself when it starts with
    /// `//`) with the project's auth header unless `headers` brings its own.
    fn send(
        &self,
        method: &str,
        route: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, String, Vec<(String, String)>) {
        let path = match route.strip_prefix("//") {
            Some(raw) => format!("/{raw}"),
            None => format!("/api/{}{route}", self.project),
        };
        let url = format!("{}{path}", self.url);
        let own_auth = headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("x-sentry-auth")
                || k.eq_ignore_ascii_case("authorization")
                || *k == "no-auth"
        }) || route.contains("sentry_key=");
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if !own_auth {
            let (k, v) = self.auth();
            req = req.header(k, v);
        }
        for (k, v) in headers.iter().filter(|(k, _)| *k != "no-auth") {
            req = req.header(*k, v);
        }
        let req = req.body(body.to_vec()).unwrap();
        let mut resp = self.agent.run(req).expect("request");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, text, headers)
    }

    fn expect(
        &self,
        status: u16,
        method: &str,
        route: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> Value {
        let (got, text, _) = self.send(method, route, headers, body);
        assert_eq!(got, status, "{method} {route}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Expects an error status whose `detail` mentions `needle`.
    fn refuse(
        &self,
        status: u16,
        route: &str,
        headers: &[(&str, String)],
        body: &[u8],
        needle: &str,
    ) {
        let answer = self.expect(status, "POST", route, headers, body);
        let detail = answer["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("no detail in {answer}"));
        assert!(
            detail.contains(needle),
            "detail {detail:?} should mention {needle:?}"
        );
    }
}

fn envelope(event_id: &str, event: &Value) -> Vec<u8> {
    let payload = event.to_string();
    format!(
        "{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"event\",\"length\":{}}}\n{payload}\n",
        payload.len()
    )
    .into_bytes()
}

fn compress(encoding: &str, data: &[u8]) -> Vec<u8> {
    match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "raw-deflate" => {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            brotli::CompressorWriter::new(&mut out, 4096, 5, 22)
                .write_all(data)
                .unwrap();
            out
        }
        "zstd" => zstd::encode_all(data, 3).unwrap(),
        other => panic!("unknown encoding {other}"),
    }
}

#[test]
fn protocol_edge_cases() {
    let server = Server::start();
    let project = server.project("edge");
    let other = server.project("other");
    let c = Raw::new(&server, &project);
    let b64 = |d: &[u8]| {
        base64::engine::general_purpose::STANDARD
            .encode(d)
            .into_bytes()
    };

    // Every content encoding, on the envelope route.
    for (i, enc) in ["gzip", "deflate", "raw-deflate", "br", "zstd"]
        .iter()
        .enumerate()
    {
        let id = format!("{:032x}", 0xe0 + i);
        let body = compress(
            enc,
            &envelope(&id, &json!({"message": format!("encoded {enc}")})),
        );
        let header = if *enc == "raw-deflate" {
            "deflate"
        } else {
            enc
        };
        let answer = c.expect(
            200,
            "POST",
            "/envelope/",
            &[("Content-Encoding", header.to_string())],
            &body,
        );
        assert_eq!(answer, json!({"id": id}));
        assert!(
            stored_event(&server.data_dir, "edge", &id).is_some(),
            "{enc} event not stored"
        );
    }
    // Legacy store bodies: base64(JSON), base64(zlib(JSON)), bare zlib, and NaN tokens.
    let json_body = br#"{"event_id":"00000000000000000000000000000b64","message":"legacy"}"#;
    c.expect(200, "POST", "/store/", &[], &b64(json_body));
    c.expect(
        200,
        "POST",
        "/store/",
        &[],
        &b64(&compress("deflate", br#"{"message":"legacy zlib"}"#)),
    );
    c.expect(
        200,
        "POST",
        "/store",
        &[],
        &compress("deflate", br#"{"message":"bare zlib"}"#),
    );
    c.expect(
        200,
        "POST",
        "//api/store/",
        &[],
        br#"{"message":"nan","extra":{"x":NaN}}"#,
    );
    assert!(stored_event(&server.data_dir, "edge", "00000000000000000000000000000b64").is_some());

    // Auth from the query string, Authorization: Sentry, and the envelope's own dsn.
    let q = format!("/store/?sentry_key={}&sentry_version=7", c.key);
    c.expect(200, "POST", &q, &[], br#"{"message":"query auth"}"#);
    let authz = [("Authorization", format!("Sentry sentry_key={}", c.key))];
    c.expect(
        200,
        "POST",
        "/store/",
        &authz,
        br#"{"message":"authorization header"}"#,
    );
    let dsn = project["dsn"].as_str().unwrap();
    let dsn_only =
        format!("{{\"dsn\":\"{dsn}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"dsn auth\"}}\n");
    let no_auth = [("no-auth", String::new())];
    assert!(c.expect(200, "POST", "/envelope/", &no_auth, dsn_only.as_bytes())["id"].is_string());

    // Envelopes without events answer {}; unknown item types are dropped, not refused.
    assert_eq!(c.expect(200, "POST", "/envelope/", &[], b"{}\n"), json!({}));
    let sessions = b"{}\n{\"type\":\"session\"}\n{\"started\":\"2020-02-07T14:16:00Z\"}\n{\"type\":\"brand_new_type\",\"length\":2}\nhi\n";
    assert_eq!(c.expect(200, "POST", "/envelope", &[], sessions), json!({}));

    // A transaction posted to /store/ is accepted and not kept.
    let tx = br#"{"event_id":"7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a","type":"transaction","transaction":"/x"}"#;
    assert_eq!(
        c.expect(200, "POST", "/store/", &[], tx)["id"],
        "7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a"
    );
    assert!(stored_event(&server.data_dir, "edge", "7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a").is_none());

    // A duplicate event id is answered 200 and stored once.
    let dup = envelope(
        "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0",
        &json!({"message": "duplicate me"}),
    );
    c.expect(200, "POST", "/envelope/", &[], &dup);
    c.expect(200, "POST", "/envelope/", &[], &dup);
    let ev = stored_event(&server.data_dir, "edge", "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0").unwrap();
    let issues = server.json(&["issues", "edge"]);
    let issue = issues
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == ev["issue"])
        .unwrap();
    assert_eq!(issue["count"], json!(1));

    // The envelope header's id wins over the payload's.
    let mixed = envelope(
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        &json!({"event_id": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "message": "m"}),
    );
    assert_eq!(
        c.expect(200, "POST", "/envelope/", &[], &mixed)["id"],
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    );

    // Refusals, each with its status and a message naming the problem.
    c.refuse(
        401,
        "/store/",
        &no_auth,
        br#"{"message":"x"}"#,
        "missing authorization",
    );
    c.refuse(
        401,
        "/envelope/",
        &no_auth,
        b"{}\n",
        "missing authorization",
    );
    let bad = |v: &str| [("X-Sentry-Auth", v.to_string())];
    c.refuse(
        403,
        "/store/",
        &bad("Sentry sentry_key=0123456789abcdef0123456789abcdef"),
        b"{}",
        "unknown public key",
    );
    c.refuse(401, "/store/", &bad("Bearer xyz"), b"{}", "non sentry auth");
    c.refuse(
        401,
        "/store/",
        &bad("Sentry sentry_version=7"),
        b"{}",
        "missing public key",
    );
    c.refuse(
        400,
        "/store/",
        &bad(&format!("Sentry sentry_key={}, sentry_version=9", c.key)),
        b"{}",
        "unsupported protocol version",
    );
    let both = [("X-Sentry-Auth", c.auth().1)];
    c.refuse(401, &q, &both, b"{}", "multiple authorization");
    let other_key = bad(&format!(
        "Sentry sentry_key={}",
        other["public_key"].as_str().unwrap()
    ));
    c.refuse(403, "/store/", &other_key, b"{}", "another project");
    c.refuse(400, "//api/abc/store/", &[], b"{}", "bad project path");
    c.refuse(400, "/store/", &[], b"", "empty request body");
    c.refuse(400, "/store/", &[], b"{\"message\": ", "invalid JSON");
    c.refuse(
        400,
        "/envelope/",
        &[],
        b"{}\n{\"type\":\"event\",\"length\":500}\n{}\n",
        "unexpected end of file",
    );
    c.refuse(400, "/envelope/", &[], b"{} trailing", "missing newline");
    c.refuse(
        400,
        "/store/",
        &[("Content-Encoding", "gzip".into())],
        b"not gzip at all",
        "gzip",
    );
    let wrong_project = format!("{{\"dsn\":\"{}\"}}\n", other["dsn"].as_str().unwrap());
    c.refuse(
        400,
        "/envelope/",
        &no_auth,
        wrong_project.as_bytes(),
        "mismatch",
    );
    let huge = json!({"message": "x".repeat(1_100_000)}).to_string();
    c.refuse(413, "/store/", &[], huge.as_bytes(), "max_store_body_size");
    let gz = [("Content-Encoding", "gzip".to_string())];
    c.refuse(
        413,
        "/store/",
        &gz,
        &compress("gzip", huge.as_bytes()),
        "max_event_size",
    );

    // A revoked key is refused from the next request on (the server reloads its keys).
    let key = server.json(&["key", "create", "edge"]);
    let new_key = bad(&format!(
        "Sentry sentry_key={}",
        key["public_key"].as_str().unwrap()
    ));
    c.expect(
        200,
        "POST",
        "/store/",
        &new_key,
        br#"{"message":"new key"}"#,
    );
    server.json(&["key", "revoke", key["public_key"].as_str().unwrap()]);
    c.refuse(
        403,
        "/store/",
        &new_key,
        br#"{"message":"old key"}"#,
        "revoked",
    );

    // CORS for browser SDKs, and health for load balancers.
    let (status, _, headers) = c.send("OPTIONS", "/envelope/", &no_auth, b"");
    assert_eq!(status, 200);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("access-control-allow-origin").as_deref(), Some("*"));
    assert!(
        header("access-control-allow-headers")
            .unwrap()
            .contains("x-sentry-auth")
    );
    let (_, _, headers) = c.send("POST", "/store/", &no_auth, b"{}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "x-sentry-error" && v.contains("missing"))
    );
    let (status, text, _) = c.send("GET", "//health", &[], b"");
    assert_eq!((status, text.trim()), (200, "ok"));
}

#[test]
fn issue_states_resolve_regress_ignore_and_come_back() {
    let server = Server::start();
    let project = server.project("states");
    let c = Raw::new(&server, &project);
    let send = || {
        c.expect(
            200,
            "POST",
            "/store/",
            &[],
            br#"{"message":"disk 93% full"}"#,
        )
    };
    let issue =
        |field: &str| server.json(&["issues", "states", "--status", "all"])[0][field].clone();
    let change = |args: &[&str]| {
        let mut full = vec!["issue"];
        full.extend_from_slice(args);
        server.json(&full)
    };
    send();
    assert_eq!(issue("status"), "unresolved");

    assert_eq!(change(&["resolve", "states", "1"])["status"], "resolved");
    assert_eq!(
        server.json(&["issues", "states"]),
        json!([]),
        "resolved issues leave the default list"
    );
    send();
    assert_eq!(
        issue("status"),
        "unresolved",
        "an event on a resolved issue is a regression"
    );
    assert_eq!(issue("regressions"), 1);

    change(&["ignore", "states", "1"]);
    send();
    assert_eq!(issue("status"), "ignored", "ignored for good stays ignored");

    change(&["ignore", "states", "1", "--until-count", "2"]);
    send();
    assert_eq!(issue("status"), "ignored");
    send();
    assert_eq!(issue("status"), "unresolved", "back after two more events");

    change(&["ignore", "states", "1", "--for", "1s"]);
    send();
    assert_eq!(issue("status"), "ignored");
    std::thread::sleep(Duration::from_millis(1100));
    send();
    assert_eq!(issue("status"), "unresolved", "back once the time ran out");

    change(&["resolve", "states", "1"]);
    assert_eq!(
        change(&["unresolve", "states", "1"])["status"],
        "unresolved"
    );
    let missing = server.cli(&["issue", "resolve", "states", "99"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no issue 99"));
    assert_eq!(issue("count"), 7);
}

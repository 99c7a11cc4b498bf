//! Everything the SDKs send besides errors, end to end with the real SDKs: user feedback
//! (@sentry/node's `captureFeedback` about an event sent before, after and not at all;
//! @sentry/browser in chromium sending feedback and opening the crash-report dialog, whose
//! script and form are also checked over HTTP), attachments (sentry-sdk's `add_attachment`,
//! read back byte for byte through the CLI and the UI's download; 1,000 in one envelope),
//! client reports and item types picket does not keep (counted per project), release health
//! from sentry-sdk's sessions, and a cron monitor going ok → missed → ok with its issue.

mod common;

use common::sink::Sink;

use std::path::Path;

use common::{Server, node_clients, run_client};
use serde_json::Value;

fn feedback(server: &Server) -> Vec<Value> {
    server
        .json(&["feedback", "default"])
        .as_array()
        .unwrap()
        .clone()
}

fn by_message<'a>(list: &'a [Value], message: &str) -> &'a Value {
    list.iter()
        .find(|f| f["message"] == message)
        .unwrap_or_else(|| panic!("no feedback {message:?} in {list:?}"))
}

#[test]
fn feedback_from_the_node_sdk_is_stored_and_linked_to_its_issue() {
    let server = Server::start();
    let dsn = server.dsn();
    let sent = run_client(
        Path::new("node"),
        &node_clients().join("feedback_node.js"),
        &dsn,
    );
    let list = feedback(&server);
    assert_eq!(list.len(), 3, "{list:?}");

    let pay = by_message(&list, "I clicked Pay and nothing happened");
    assert_eq!(pay["event_id"], sent["before"]);
    assert_eq!(pay["name"], "Ann Example");
    assert_eq!(pay["email"], "ann@example.com");
    assert_eq!(pay["url"], "https://shop.example/checkout");
    let issue = pay["issue_id"]
        .as_u64()
        .expect("linked to the event's issue");

    // Sent before its event: linked once the event is stored.
    let blank = by_message(&list, "The page went blank");
    assert_eq!(blank["event_id"], sent["after"]);
    let later_issue = blank["issue_id"]
        .as_u64()
        .expect("linked when the event came");
    assert_ne!(issue, later_issue);

    let alone = by_message(&list, "Please add dark mode");
    assert!(alone["issue_id"].is_null() && alone["event_id"].is_null());
    for f in &list {
        assert_eq!(f["release"], "shop@2.0.0");
        assert_eq!(f["id"].as_str().unwrap().len(), 32);
    }

    let only = server.json(&["feedback", "default", "--issue", &issue.to_string()]);
    assert_eq!(only.as_array().unwrap().len(), 1);
    assert_eq!(only[0]["message"], pay["message"]);
    // Nothing of it was dropped as an unknown item.
    let status = server.status();
    assert!(
        status.to_string().find("\"feedback\"").is_none(),
        "feedback counted as dropped: {status}"
    );
}

#[test]
fn the_crash_report_dialog_serves_its_form_and_stores_what_it_posts() {
    let server = Server::start();
    let project = server.json(&["project", "list"])[0].clone();
    let dsn = project["dsn"].as_str().unwrap();
    let event = common::agent()
        .post(&common::store_url(&server, &project))
        .send(br#"{"message":"crash"}"#.as_slice())
        .unwrap()
        .body_mut()
        .read_to_string()
        .map(|b| serde_json::from_str::<Value>(&b).unwrap())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("dsn", dsn)
        .append_pair("eventId", &event)
        .append_pair("title", "</script><b>Oops</b>")
        .finish();
    let url = format!("{}/api/embed/error-page/?{query}", server.url);
    let agent = common::agent();

    let mut script = agent.get(&url).call().unwrap();
    assert_eq!(script.status(), 200);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let js = script.body_mut().read_to_string().unwrap();
    assert!(js.contains("__sentry_reportdialog_closed__"));
    assert!(js.contains("What happened?"), "Sentry's default labels");
    assert!(
        !js.contains("</script>") && js.contains("\\u003c/script\\u003e"),
        "texts from the query cannot end the script"
    );

    let post = |body: &str| {
        let mut resp = agent
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .config()
            .http_status_as_error(false)
            .build()
            .send(body.as_bytes())
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };
    let (status, answer) = post("name=Dee&email=not-an-address&comments=");
    assert_eq!(status, 400);
    assert!(answer["errors"]["comments"].is_string() && answer["errors"]["email"].is_string());
    assert!(
        feedback(&server).is_empty(),
        "a refused form stores nothing"
    );

    let (status, _) = post("name=Dee&email=dee%40example.com&comments=It+crashed+on+save");
    assert_eq!(status, 200);
    let list = feedback(&server);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["message"], "It crashed on save");
    assert_eq!(list[0]["email"], "dee@example.com");
    assert_eq!(list[0]["source"], "crash_report_dialog");
    assert_eq!(list[0]["event_id"], event.as_str());
    assert!(list[0]["issue_id"].is_u64());

    // A wrong key or a missing event id is refused with a reason.
    let bad = format!(
        "{}/api/embed/error-page/?dsn=http%3A%2F%2F0000%40127.0.0.1%2F1&eventId={event}",
        server.url
    );
    let resp = agent
        .get(&bad)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = agent
        .get(&format!(
            "{}/api/embed/error-page/?dsn={}",
            server.url,
            project["dsn"]
                .as_str()
                .map(|d| form_urlencoded::byte_serialize(d.as_bytes()).collect::<String>())
                .unwrap()
        ))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// A signed-in browser session without a browser: the cookies of `/login`.
#[test]
fn the_browser_sdk_sends_feedback_and_the_report_dialog_works_in_chromium() {
    let server = Server::start();
    let dsn = server.dsn();
    common::create_admin(
        &server.data_dir,
        "admin@example.com",
        "a long enough password",
    );
    let work = tempfile::tempdir().unwrap();
    let sent = common::run_node(
        "feedback_browser.js",
        &[work.path().to_str().unwrap()],
        &[
            ("PICKET_URL", &server.url),
            ("SENTRY_DSN", &dsn),
            ("PICKET_EMAIL", "admin@example.com"),
            ("PICKET_PASSWORD", "a long enough password"),
        ],
    );
    let event_id = sent["event_id"].as_str().unwrap();
    let event = server.json(&["event", "default", event_id]);
    // The browser SDK asks for the sender's address (`sdk.settings.infer_ip: "auto"`).
    assert_eq!(
        event["user"]["ip_address"], "127.0.0.1",
        "{}",
        event["user"]
    );
    assert_eq!(event["user"]["id"], "u-42");

    let list = feedback(&server);
    assert_eq!(list.len(), 2, "{list:?}");
    let widget = by_message(&list, "The pay button did nothing");
    assert_eq!(widget["name"], "Browser User");
    assert_eq!(widget["email"], "browser@example.com");
    assert_eq!(widget["url"], "https://shop.example/pay");
    let dialog = by_message(&list, "I clicked pay twice and got a blank page");
    assert_eq!(dialog["name"], "Dialog User");
    assert_eq!(dialog["email"], "dialog@example.com");
    for f in [widget, dialog] {
        assert_eq!(f["event_id"], event_id);
        assert_eq!(
            f["issue_id"], event["issue"],
            "linked to the event's issue: {f}"
        );
    }
    // The issue page the browser reached from the feedback list shows both reports.
    let page = sent["issue_page"].as_str().unwrap();
    assert!(
        page.contains("The pay button did nothing")
            && page.contains("I clicked pay twice and got a blank page"),
        "{page}"
    );
}

/// The bytes sentry-sdk attaches in [`ATTACHMENTS_PY`]: 1 MiB of every byte value, then a tail.
fn state_bin() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    bytes.extend_from_slice(b"tail");
    bytes
}

const ATTACHMENTS_PY: &str = r#"
import json, os, sys
import sentry_sdk
sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], default_integrations=False, release="app@3.1.0")
state = bytes(range(256)) * 4096 + b"tail"
ids = {}
with sentry_sdk.new_scope() as scope:
    scope.add_attachment(bytes=state, filename="state.bin", content_type="application/octet-stream")
    scope.add_attachment(bytes=b"<script>alert(1)</script>", filename="report \"1\".html", content_type="text/html")
    ids["with"] = sentry_sdk.capture_message("crash with attachments")
with sentry_sdk.new_scope() as scope:
    scope.add_attachment(bytes=b"x" * (3 * 1024 * 1024), filename="huge.log")
    scope.add_attachment(bytes=b"small", filename="small.txt")
    ids["over"] = sentry_sdk.capture_message("one attachment over the limit")
sentry_sdk.flush(timeout=10)
json.dump(ids, sys.stdout)
"#;

#[test]
fn attachments_from_sentry_sdk_read_back_identical_through_the_cli_and_the_ui() {
    let server = Server::start_with_config("[limits]\nmax_attachment_size = \"2MiB\"\n", &[]);
    let dsn = server.dsn();
    let ids: Value = serde_json::from_str(&common::run_python(ATTACHMENTS_PY, &dsn)).unwrap();
    let with = ids["with"].as_str().unwrap();

    let event = server.json(&["event", "default", with]);
    let listed = event["attachments"].as_array().expect("attachments listed");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["name"], "state.bin");
    assert_eq!(listed[0]["size"], (1 << 20) + 4);
    assert_eq!(listed[0]["attachment_type"], "event.attachment");
    assert_eq!(listed[0]["content_type"], "application/octet-stream");
    assert_eq!(listed[1]["name"], "report \"1\".html");

    // The CLI writes the bytes as sent, to a file and to standard output.
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("state.bin");
    let written = server.cli(&[
        "attachment",
        "default",
        with,
        "state.bin",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    assert!(
        std::fs::read(&file).unwrap() == state_bin(),
        "the CLI's copy differs"
    );
    let html = server.cli(&["attachment", "default", with, "report \"1\".html"]);
    assert_eq!(html.stdout, b"<script>alert(1)</script>");
    let missing = server.cli(&["attachment", "default", with, "nope.txt"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.txt"));

    // The UI lists them on the event and serves them as downloads, never inline.
    let cookies = common::sign_in(&server, "admin@example.com", "a long enough password");
    let agent = common::agent();
    let issue = event["issue"].as_u64().unwrap();
    let page = agent
        .get(&format!(
            "{}/projects/default/issues/{issue}/?event={with}",
            server.url
        ))
        .header("cookie", &cookies)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        page.contains("state.bin") && page.contains("1.04 MB"),
        "{page}"
    );
    assert!(page.contains("report &#34;1&#34;.html") || page.contains("report &quot;1&quot;.html"));
    for (id, name, bytes) in [
        (0, "state.bin", state_bin()),
        (1, "html", b"<script>alert(1)</script>".to_vec()),
    ] {
        let mut resp = agent
            .get(&format!(
                "{}/projects/default/events/{with}/attachments/{id}",
                server.url
            ))
            .header("cookie", &cookies)
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let header = |h: &str| {
            resp.headers()
                .get(h)
                .map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(
            header("content-type").as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
        let disposition = header("content-disposition").unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\""),
            "{disposition}"
        );
        assert!(
            disposition.contains(name.split('.').next().unwrap()),
            "{disposition}"
        );
        let body = resp
            .body_mut()
            .with_config()
            .limit(10 << 20)
            .read_to_vec()
            .unwrap();
        assert!(body == bytes, "the UI's download of {name} differs");
    }
    // The Web API lists them as Sentry does and serves one as a download.
    let token = server.token(&["attachments-reader"]);
    let base = format!(
        "{}/api/0/projects/picket/default/events/{with}/attachments/",
        server.url
    );
    let get = |url: &str| {
        agent
            .get(url)
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
    };
    let listed: Value =
        serde_json::from_str(&get(&base).body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(listed[0]["id"], "0");
    assert_eq!(listed[0]["name"], "state.bin");
    assert_eq!(listed[0]["type"], "event.attachment");
    assert_eq!(listed[0]["mimetype"], "application/octet-stream");
    assert_eq!(listed[0]["size"], (1 << 20) + 4);
    assert_eq!(listed[0]["event_id"], with);
    assert_eq!(listed[1]["name"], "report \"1\".html");
    let mut download = get(&format!("{base}1/?download=1"));
    assert_eq!(
        download.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    assert!(
        download
            .headers()
            .get("content-disposition")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    assert_eq!(
        download.body_mut().read_to_vec().unwrap(),
        b"<script>alert(1)</script>"
    );
    let mut one = get(&format!("{base}9/"));
    assert_eq!(
        one.status().as_u16(),
        404,
        "{}",
        one.body_mut().read_to_string().unwrap()
    );

    // Without a session: no bytes.
    let anonymous = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent()
        .get(&format!(
            "{}/projects/default/events/{with}/attachments/0",
            server.url
        ))
        .call()
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 303, "not sent to sign in");

    // Over max_attachment_size: that attachment is refused and counted, the event and the
    // other attachment kept.
    let over = server.json(&["event", "default", ids["over"].as_str().unwrap()]);
    let names: Vec<&str> = over["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["small.txt"]);
    let dropped = wait_for_outcome(&server, "attachment", "too_large");
    assert_eq!(dropped, 1);
}

/// An envelope with an event and `n` small attachments.
fn many_attachments(event_id: &str, n: usize) -> Vec<u8> {
    let mut body = format!(
        "{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"with {n} attachments\"}}\n"
    )
    .into_bytes();
    for i in 0..n {
        let payload = format!("line {i}\n").repeat(8);
        body.extend_from_slice(
            format!(
                "{{\"type\":\"attachment\",\"length\":{},\"filename\":\"part-{i}.log\"}}\n{payload}\n",
                payload.len()
            )
            .as_bytes(),
        );
    }
    body
}

#[test]
fn a_thousand_attachments_in_one_envelope_are_answered_as_documented() {
    let server = Server::start();
    let project = server.json(&["project", "list"])[0].clone();
    let url = format!(
        "{}/api/{}/envelope/?sentry_key={}",
        server.url,
        project["id"],
        project["public_key"].as_str().unwrap()
    );
    let post = |body: Vec<u8>| {
        let mut resp = common::agent().post(&url).send(&body[..]).unwrap();
        let text = resp.body_mut().read_to_string().unwrap();
        (resp.status().as_u16(), text)
    };
    // An event and 1,000 attachments are 1,001 items: over `limits.max_envelope_items`, the
    // whole envelope is refused by name and nothing of it is stored.
    let refused = "0123456789abcdef0123456789abcdef";
    let (status, text) = post(many_attachments(refused, 1000));
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("max_envelope_items"), "{text}");
    assert!(common::stored_event(&server.data_dir, "default", refused).is_none());

    // Within the limit, every attachment is kept with its event.
    let kept = "fedcba9876543210fedcba9876543210";
    let (status, text) = post(many_attachments(kept, 999));
    assert_eq!(status, 200, "{text}");
    let event = server.json(&["event", "default", kept]);
    let listed = event["attachments"].as_array().unwrap();
    assert_eq!(listed.len(), 999);
    assert_eq!(listed[998]["name"], "part-998.log");
    let bytes = server.cli(&["attachment", "default", kept, "part-500.log"]);
    assert_eq!(bytes.stdout, "line 500\n".repeat(8).as_bytes());
    assert_eq!(
        server
            .json(&["issues", "default"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// The count a project's page and `picket status` show for (category, reason) once the
/// server has written it (it counts every few seconds).
fn wait_for_outcome(server: &Server, category: &str, reason: &str) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = server.status();
        let found = status["projects_dropped"]["default"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|o| o["category"] == category && o["reason"] == reason)
            .and_then(|o| o["quantity"].as_u64());
        if let Some(n) = found {
            return n;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {category}/{reason} in {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

const CLIENT_REPORTS_PY: &str = r#"
import os
import sentry_sdk

def before_send(event, hint):
    text = event.get("message") or (event.get("logentry") or {}).get("message") or ""
    return None if text.startswith("drop") else event

sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], default_integrations=False,
                before_send=before_send, traces_sample_rate=1.0)
for i in range(3):
    sentry_sdk.capture_message("drop me %d" % i)
sentry_sdk.capture_message("keep me")
with sentry_sdk.start_transaction(name="nightly-report", op="task"):
    pass
sentry_sdk.flush(timeout=10)
"#;

#[test]
fn what_the_sdk_discarded_and_what_picket_does_not_keep_are_counted() {
    let server = Server::start();
    let dsn = server.dsn();
    common::run_python(CLIENT_REPORTS_PY, &dsn);
    // sentry-sdk's client report says its before_send dropped three errors; the transaction
    // reached picket, which does not keep transactions, and says so.
    assert_eq!(wait_for_outcome(&server, "error", "before_send"), 3);
    assert_eq!(wait_for_outcome(&server, "transaction", "not_stored"), 1);
    let issues = server.json(&["issues", "default"]);
    let titles: Vec<&str> = issues
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["keep me"]);
    let text = String::from_utf8_lossy(&server.cli(&["status"]).stdout).into_owned();
    assert!(text.contains("before_send"), "{text}");
}

const SESSIONS_PY: &str = r#"
import os, sys
import sentry_sdk
from sentry_sdk.utils import event_from_exception
sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], default_integrations=False,
                release="desk@4.2.0", environment="production")
client = sentry_sdk.get_client()
for i in range(10):
    scope = sentry_sdk.get_isolation_scope()
    sentry_sdk.set_user({"id": "user-%d" % (i % 4)})
    scope.start_session()
    if i in (3, 7):
        try:
            1 / 0
        except ZeroDivisionError:
            event, hint = event_from_exception(sys.exc_info(), client_options=client.options,
                                               mechanism={"type": "excepthook", "handled": False})
            sentry_sdk.capture_event(event, hint=hint)
    elif i == 5:
        sentry_sdk.capture_exception(ValueError("handled"))
    scope.end_session()
sentry_sdk.flush(timeout=10)
"#;

#[test]
fn sessions_from_sentry_sdk_give_the_crash_free_rates() {
    let server = Server::start();
    let dsn = server.dsn();
    common::run_python(SESSIONS_PY, &dsn);
    let releases = server.json(&["releases", "default"]);
    let release = releases
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "desk@4.2.0")
        .unwrap_or_else(|| panic!("no release desk@4.2.0 in {releases}"));
    // Ten sessions of four users; two crashed, both of user-3; one more only errored.
    assert_eq!(release["sessions"], 10, "{release}");
    assert_eq!(release["crashed_sessions"], 2, "{release}");
    assert_eq!(release["errored_sessions"], 3, "{release}");
    assert_eq!(release["crash_free_sessions"], 80.0, "{release}");
    assert_eq!(release["users"], 4, "{release}");
    assert_eq!(release["crash_free_users"], 75.0, "{release}");
    assert_eq!(release["adoption"], 100.0, "{release}");
}

#[test]
fn a_session_with_a_huge_release_is_refused_by_name_and_nothing_else_changes() {
    let server = Server::start();
    let project = server.json(&["project", "list"])[0].clone();
    let url = format!(
        "{}/api/{}/envelope/?sentry_key={}",
        server.url,
        project["id"],
        project["public_key"].as_str().unwrap()
    );
    let session = |release: &str| {
        format!(
            "{{}}\n{{\"type\":\"session\"}}\n{{\"sid\":\"{}\",\"init\":true,\"status\":\"ok\",\"attrs\":{{\"release\":\"{release}\"}}}}\n",
            "a".repeat(32)
        )
    };
    let agent = common::agent();
    let ok = agent.post(&url).send(session("fine@1").as_bytes()).unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let mut bad = agent
        .post(&url)
        .send(session(&"r".repeat(10_000)).as_bytes())
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let body = bad.body_mut().read_to_string().unwrap();
    assert!(body.contains("attrs.release"), "{body}");
    let releases = server.json(&["releases", "default"]);
    let list = releases.as_array().unwrap();
    assert_eq!(list.len(), 1, "{releases}");
    assert_eq!(list[0]["version"], "fine@1");
    assert_eq!(list[0]["sessions"], 1);
}

const CHECKIN_PY: &str = r#"
import os, sys
import sentry_sdk
from sentry_sdk.crons import capture_checkin
sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], default_integrations=False, environment="production")
config = {"schedule": {"type": "interval", "value": 1, "unit": "minute"},
          "checkin_margin": 0, "max_runtime": 5, "timezone": "Europe/Vienna"}
started = capture_checkin(monitor_slug="nightly-backup", status="in_progress", monitor_config=config)
capture_checkin(monitor_slug="nightly-backup", check_in_id=started, status="ok", duration=1.5)
sentry_sdk.flush(timeout=10)
print(started)
"#;

fn monitor(server: &Server, slug: &str) -> Value {
    let list = server.json(&["monitors", "default"]);
    list.as_array()
        .unwrap()
        .iter()
        .find(|m| m["slug"] == slug)
        .unwrap_or_else(|| panic!("no monitor {slug} in {list}"))
        .clone()
}

fn wait_until(what: &str, limit: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(limit);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

#[test]
fn a_monitor_goes_ok_missed_and_ok_again_with_one_alert_and_its_issue_resolved() {
    let sink = Sink::start(Box::new(|_, _, _| (200, vec![])));
    let server = Server::start_with_config("[alerts]\nallow_private_webhooks = true\n", &[]);
    let hook = format!("http://127.0.0.1:{}/hooks/picket", sink.port);
    server.json(&["alerts", "webhook", "default", &hook]);
    let project = server.json(&["project", "list"])[0].clone();
    let dsn = project["dsn"].as_str().unwrap();

    // sentry-sdk: a run that starts and ends, with the monitor's config: the monitor is made.
    let started = common::run_python(CHECKIN_PY, dsn);
    let m = monitor(&server, "nightly-backup");
    assert_eq!(m["status"], "ok", "{m}");
    assert_eq!(m["schedule"], "every minute");
    assert_eq!(m["timezone"], "Europe/Vienna");
    let checkins = m["checkins"].as_array().unwrap();
    assert_eq!(checkins.len(), 1, "the start and end are one run: {m}");
    assert_eq!(checkins[0]["id"], started.trim().replace('-', ""));
    assert_eq!(checkins[0]["duration"], 1.5);
    let next = m["next_expected"]
        .as_str()
        .expect("a next expected check-in");
    let last = m["last_checkin"].as_str().unwrap();
    let gap = common::parse_time(next) - common::parse_time(last);
    assert!((gap - 60.0).abs() < 1.5, "next {next} after last {last}");

    // No check-in within the minute (margin 0): missed, and the monitor's issue opens once.
    wait_until("the monitor is missed", 100, || {
        monitor(&server, "nightly-backup")["status"] == "missed"
    });
    let title = "Cron failure: nightly-backup (missed check-in)";
    let issue = |server: &Server| {
        server
            .json(&["issues", "default", "--status", "all"])
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["title"] == title)
            .cloned()
    };
    wait_until("the monitor's issue is stored", 20, || {
        issue(&server).is_some()
    });
    assert_eq!(issue(&server).unwrap()["status"], "unresolved");
    wait_until("the webhook is called", 20, || !sink.requests().is_empty());

    // A shell script checks in over HTTP: the monitor is ok and its issue resolved.
    let url = format!(
        "{}/api/{}/cron/nightly-backup/{}/?status=ok",
        server.url,
        project["id"],
        project["public_key"].as_str().unwrap()
    );
    let out = std::process::Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", &url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("202"), "{text}");
    assert_eq!(monitor(&server, "nightly-backup")["status"], "ok");
    assert_eq!(issue(&server).unwrap()["status"], "resolved");
    let statuses: Vec<String> = monitor(&server, "nightly-backup")["checkins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, ["ok", "missed", "ok"]);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let posts = sink.requests();
    assert_eq!(posts.len(), 1, "one alert: {posts:?}");
    assert!(
        posts[0].body.contains("nightly-backup"),
        "{}",
        posts[0].body
    );

    // An unknown monitor over HTTP: 404 naming it; bad check-ins: 400 naming the field.
    let unknown = url.replace("nightly-backup", "no-such-job");
    let resp = common::agent().get(&unknown).call().unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let envelope = format!(
        "{}/api/{}/envelope/?sentry_key={}",
        server.url,
        project["id"],
        project["public_key"].as_str().unwrap()
    );
    for (config, field) in [
        (
            r#"{"schedule":{"type":"crontab","value":"61 * * * *"}}"#,
            "monitor_config.schedule",
        ),
        (
            r#"{"schedule":{"type":"crontab","value":"0 2 * * *"},"timezone":"Mars/Olympus"}"#,
            "monitor_config.timezone",
        ),
    ] {
        let body = format!(
            "{{}}\n{{\"type\":\"check_in\"}}\n{{\"monitor_slug\":\"other\",\"status\":\"ok\",\"monitor_config\":{config}}}\n"
        );
        let mut resp = common::agent()
            .post(&envelope)
            .send(body.as_bytes())
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let detail = resp.body_mut().read_to_string().unwrap();
        assert!(detail.contains(field), "{detail}");
    }
    assert_eq!(
        server
            .json(&["monitors", "default"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

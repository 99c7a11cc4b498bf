//! Alerts against a real SMTP server (aiosmtpd, started on loopback) and a local webhook
//! sink, with events from a real SDK: one mail per new issue, regressions, the frequency
//! threshold, delivery after an SMTP outage across a restart, webhooks with retries and the
//! private-address policy, and `picket sendtestemail`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Server;
use common::sink::Sink;
use common::smtp::Smtp;
use serde_json::Value;

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A server mailing through `smtp_port`, with an admin (who gets every project's alerts).
fn server_mailing_to(smtp_port: u16, extra_toml: &str) -> Server {
    let server = Server::start_with_config(
        &format!(
            "smtp_url = \"smtp://127.0.0.1:{smtp_port}\"\nmail_from = \"picket@example.com\"\n{extra_toml}"
        ),
        &[],
    );
    common::create_admin(
        &server.data_dir,
        "admin@example.com",
        "a long enough password",
    );
    server
}

/// Sends events through sentry-sdk: each `(message, times)` that many times.
fn send(server: &Server, events: &[(&str, usize)]) {
    let dsn = server.dsn();
    let calls: Vec<String> = events
        .iter()
        .map(|(m, n)| {
            format!("for _ in range({n}): sentry_sdk.capture_message({m:?}, level='error')")
        })
        .collect();
    let script = format!(
        "import os, sentry_sdk\nsentry_sdk.init(dsn=os.environ['SENTRY_DSN'], send_client_reports=False, default_integrations=False, environment='production', release='shop@1.2')\n{}\nsentry_sdk.flush(timeout=10)\n",
        calls.join("\n")
    );
    common::run_python(&script, &dsn);
}

fn issue_id(server: &Server, title: &str) -> String {
    let issues = server.json(&["issues", "default", "--status", "all"]);
    issues
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["title"].as_str().unwrap().contains(title))
        .unwrap_or_else(|| panic!("no issue {title}: {issues}"))["id"]
        .to_string()
}

fn subjects(smtp: &Smtp) -> Vec<String> {
    let mut out: Vec<String> = smtp
        .mails()
        .iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(String::from))
        })
        .collect();
    out.sort();
    out
}

/// Waits a little and checks that no further mail arrived.
fn assert_no_more_mail(smtp: &Smtp, expected: usize, why: &str) {
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(smtp.mails().len(), expected, "{why}: {:?}", subjects(smtp));
}

#[test]
fn one_mail_per_new_issue_one_per_regression_and_the_threshold_once_per_window() {
    let port = common::free_port();
    let smtp = Smtp::start(port);
    let server = server_mailing_to(port, "");

    send(&server, &[("checkout failed", 1)]);
    wait_until(Duration::from_secs(20), "the new-issue mail", || {
        smtp.mails().len() == 1
    });
    let mail = &smtp.mails()[0];
    assert!(
        mail.contains("Subject: [default] ERROR: checkout failed"),
        "{mail}"
    );
    assert!(mail.contains("X-RcptTo: admin@example.com"), "{mail}");
    assert!(mail.contains("a new issue"), "{mail}");
    assert!(
        mail.contains("production") && mail.contains("shop@1.2"),
        "{mail}"
    );
    assert!(mail.contains("text/html"), "an HTML part: {mail}");
    assert!(
        mail.contains("/projects/default/issues/1/"),
        "a link: {mail}"
    );

    send(&server, &[("checkout failed", 3)]);
    assert_no_more_mail(&smtp, 1, "further events of a known issue mail nobody");

    let id = issue_id(&server, "checkout failed");
    server.json(&["issue", "resolve", "default", &id]);
    send(&server, &[("checkout failed", 1)]);
    wait_until(Duration::from_secs(20), "the regression mail", || {
        smtp.mails().len() == 2
    });
    assert!(
        smtp.mails().iter().any(|m| m.contains("regression")),
        "{:?}",
        subjects(&smtp)
    );

    // More than 5 events in 2 minutes: the threshold fires once in its window.
    let set = server.json(&[
        "alerts",
        "set",
        "default",
        "--frequency",
        "5",
        "--minutes",
        "2",
    ]);
    assert_eq!(set["rules"]["frequency"]["events"], 5);
    send(&server, &[("checkout failed", 8)]);
    wait_until(Duration::from_secs(20), "the threshold mail", || {
        smtp.mails().len() == 3
    });
    assert!(
        smtp.mails()
            .iter()
            .any(|m| m.contains("more than 5 events in 2 minutes")),
        "{:?}",
        subjects(&smtp)
    );
    send(&server, &[("checkout failed", 8)]);
    assert_no_more_mail(&smtp, 3, "the threshold fires once per window");

    // Opting out leaves nobody to mail for a new issue.
    server.json(&["alerts", "opt-out", "default", "admin@example.com"]);
    send(&server, &[("quiet issue", 1)]);
    assert_no_more_mail(&smtp, 3, "an opted-out admin is not mailed");
}

#[test]
fn alerts_raised_while_smtp_is_down_are_delivered_once_after_a_restart() {
    let port = common::free_port();
    let server = server_mailing_to(port, "");
    send(
        &server,
        &[
            ("first outage issue", 1),
            ("second outage issue", 2),
            ("third outage issue", 1),
        ],
    );
    wait_until(
        Duration::from_secs(20),
        "a connection error in status",
        || {
            let alerts = &server.status()["alerts"];
            alerts["pending"] == 3 && alerts["last_error"].is_string()
        },
    );
    let status = server.status();
    assert!(
        status["alerts"]["last_error"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{}",
        status["alerts"]
    );

    let server = server.restart();
    assert_eq!(
        server.status()["alerts"]["pending"],
        3,
        "the outbox survived"
    );
    let smtp = Smtp::start(port);
    wait_until(Duration::from_secs(60), "three mails", || {
        smtp.mails().len() >= 3
    });
    assert_no_more_mail(&smtp, 3, "each pending alert is mailed exactly once");
    let subjects = subjects(&smtp);
    for which in ["first", "second", "third"] {
        assert_eq!(
            subjects.iter().filter(|s| s.contains(which)).count(),
            1,
            "{subjects:?}"
        );
    }
    wait_until(Duration::from_secs(10), "an empty outbox", || {
        server.status()["alerts"]["pending"] == 0
    });
}

#[test]
fn webhooks_get_one_post_per_new_issue_retried_after_a_500() {
    let sink = Sink::start(Box::new(|n, _, _| (if n == 0 { 500 } else { 200 }, vec![])));
    let server = Server::start_with_config("[alerts]\nallow_private_webhooks = true\n", &[]);
    let url = format!("http://127.0.0.1:{}/hooks/picket", sink.port);
    server.json(&["alerts", "webhook", "default", &url]);
    let slack_url = format!("http://127.0.0.1:{}/hooks/slack", sink.port);
    server.json(&[
        "alerts", "webhook", "default", &slack_url, "--format", "slack",
    ]);

    send(&server, &[("payment declined", 2)]);
    wait_until(
        Duration::from_secs(30),
        "both webhooks answered 2xx",
        || {
            let ok: Vec<_> = sink
                .requests()
                .into_iter()
                .filter(|r| r.status == 200)
                .collect();
            ok.len() == 2
        },
    );
    std::thread::sleep(Duration::from_millis(1500));
    let requests = sink.requests();
    let json: Vec<_> = requests
        .iter()
        .filter(|r| r.head.starts_with("POST /hooks/picket "))
        .collect();
    let slack: Vec<_> = requests
        .iter()
        .filter(|r| r.head.starts_with("POST /hooks/slack "))
        .collect();
    assert_eq!(
        json.len() + slack.len(),
        3,
        "one 500, its retry, and the other webhook: {requests:?}"
    );
    assert_eq!(requests[0].status, 500);
    let body: Value = serde_json::from_str(&json.last().unwrap().body).unwrap();
    assert_eq!(body["issue"]["title"], "payment declined");
    assert_eq!(body["rule"], "new_issue");
    assert!(body["url"].as_str().unwrap().contains("/issues/"));
    let body: Value = serde_json::from_str(&slack[0].body).unwrap();
    assert!(body["text"].as_str().unwrap().contains("payment declined"));
    assert!(body["blocks"].is_array());

    // Another new issue: one more call to each webhook, no more.
    send(&server, &[("stock sync failed", 1)]);
    wait_until(Duration::from_secs(20), "the second issue's calls", || {
        sink.requests().len() == 5
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(sink.requests().len(), 5);
}

#[test]
fn webhooks_to_private_addresses_are_refused_by_default() {
    let server = Server::start();
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "ftp://example.com/hook",
    ] {
        let out = server.cli(&["alerts", "webhook", "default", url]);
        assert!(!out.status.success(), "{url} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("refused"), "{url}: {stderr}");
    }
    let rules = server.json(&["alerts", "show", "default"]);
    assert_eq!(rules["rules"]["webhooks"], serde_json::json!([]));
    assert_eq!(rules["mail"], "off (no smtp_url)", "alerts say mail is off");
}

#[test]
fn sendtestemail_reports_success_and_a_refused_connection() {
    let port = common::free_port();
    let smtp = Smtp::start(port);
    let dir = tempfile::tempdir().unwrap();
    let run = |smtp_url: String| {
        Command::new(common::BIN)
            .arg("--data-dir")
            .arg(dir.path())
            .args(["sendtestemail", "ops@example.com"])
            .env_remove("PICKET_CONFIG")
            .env("PICKET_SMTP_URL", smtp_url)
            .env("PICKET_MAIL_FROM", "picket@example.com")
            .output()
            .unwrap()
    };
    let out = run(format!("smtp://127.0.0.1:{port}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(Duration::from_secs(10), "the test mail", || {
        smtp.mails().len() == 1
    });
    assert!(smtp.mails()[0].contains("Subject: picket test email"));
    assert!(smtp.mails()[0].contains("X-RcptTo: ops@example.com"));

    let closed = common::free_port();
    let out = run(format!("smtp://127.0.0.1:{closed}"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connection refused"), "{stderr}");

    let out = run("smtp://no-such-host.invalid:25".to_string());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DNS"), "{stderr}");
}

/// Makes a user (not an admin) with a password, through the one-time link.
fn user_with_password(server: &Server, email: &str, password: &str) {
    let link = server.json(&["user", "create", email]);
    let url = link["url"].as_str().expect("a set-password link");
    let path = &url[url.find("/set-password/").expect("a set-password path")..];
    let answer = common::agent()
        .post(format!("{}{path}", server.url))
        .send_form([("password", password)])
        .expect("set the password");
    // (The answer's redirect is followed; signing in, in the browser, shows it was set.)
    assert!(answer.status().is_success(), "the password is set");
}

#[test]
fn a_team_triages_together_in_chromium() {
    const PASSWORD: &str = "a long enough password";
    let port = common::free_port();
    let smtp = Smtp::start(port);
    let server = server_mailing_to(port, "[alerts]\nallow_private_webhooks = true\n");
    let hook = Sink::start(Box::new(|_, _, _| (200, vec![])));
    user_with_password(&server, "owner@example.com", PASSWORD);
    user_with_password(&server, "member@example.com", PASSWORD);
    server.json(&[
        "project",
        "member",
        "default",
        "owner@example.com",
        "--role",
        "owner",
    ]);
    let members = server.json(&["project", "member", "default", "member@example.com"]);
    assert_eq!(members["owners"], serde_json::json!(["owner@example.com"]));
    let keys_before = server.json(&["key", "list", "default"]);
    let shots = tempfile::tempdir().unwrap();
    let hook_url = format!("http://127.0.0.1:{}/picket", hook.port);
    common::run_node(
        "team_flow.js",
        &[],
        &[
            ("PICKET_URL", &server.url),
            ("SENTRY_DSN", &server.dsn()),
            ("OWNER_EMAIL", "owner@example.com"),
            ("MEMBER_EMAIL", "member@example.com"),
            ("ADMIN_EMAIL", "admin@example.com"),
            ("PASSWORD", PASSWORD),
            ("HOOK_URL", &hook_url),
            ("SCREENSHOTS", &shots.path().display().to_string()),
        ],
    );

    // The webhook got the test payload the owner sent from the settings page.
    let tests = hook.requests();
    assert!(
        tests.iter().any(|r| r.body.contains("TestAlert")),
        "the webhook got the test: {tests:?}"
    );
    // The member's refused forms changed nothing.
    let projects = server.json(&["project", "list"]);
    assert!(projects[0]["forward_to"].is_null(), "{projects}");
    assert_eq!(server.json(&["key", "list", "default"]), keys_before);
    // The owner was mailed the assignment and the comment; the member, who did both, was not.
    let to_owner = |what: &str| {
        smtp.mails()
            .iter()
            .any(|m| m.contains("X-RcptTo: owner@example.com") && m.contains(what))
    };
    wait_until(Duration::from_secs(20), "the assignment mail", || {
        to_owner("assigned it to you")
    });
    wait_until(Duration::from_secs(20), "the comment mail", || {
        to_owner("commented: Gateway timeouts again")
    });
    assert!(
        !smtp
            .mails()
            .iter()
            .any(|m| m.contains("X-RcptTo: member@example.com")
                && (m.contains("assigned it to you") || m.contains("commented:"))),
        "nobody is mailed about what they did themselves"
    );
    // The CLI reads the same activity.
    let issue = issue_id(&server, "card declined");
    let activity = server.json(&["issue", "activity", "default", &issue]);
    let kinds: Vec<&str> = activity
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "first_seen",
            "assigned",
            "commented",
            "resolved",
            "regressed"
        ],
        "{activity}"
    );
    assert_eq!(activity[1]["who"], "member@example.com");
    assert_eq!(
        activity[3]["text"],
        "resolved in the next release (after shop@1.0)"
    );
    for shot in ["issue-triage.png", "issue-list-marks.png"] {
        let len = std::fs::metadata(shots.path().join(shot)).unwrap().len();
        assert!(len > 10_000, "{shot} is {len} bytes");
        // PICKET_SCREENSHOTS=docs/screenshots keeps them (the README's pictures).
        if let Ok(keep) = std::env::var("PICKET_SCREENSHOTS") {
            std::fs::copy(
                shots.path().join(shot),
                std::path::Path::new(&keep).join(shot),
            )
            .unwrap();
        }
    }
}

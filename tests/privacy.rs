//! Privacy and noise: what a real Flask app with sentry-sdk (`send_default_pii=True`) sends is
//! scrubbed before it is stored or forwarded, and inbound filters drop what a project does not
//! want, answered 200 and counted by reason.

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::sink::Sink;
use serde_json::{Value, json};

/// What the Flask app's request and view carry.
const SECRETS: [&str; 7] = [
    "HEADERTOKENSECRET99",
    "COOKIESECRET55",
    "FORMPASSWORDSECRET",
    "4242 4242 4242 4242",
    "sk_live_FRAMEVARSECRET42",
    "QUERYSECRET77",
    // The card as the message's formatting may join it.
    "4242424242424242",
];

fn flask_event(server: &Server, project: &str) -> Value {
    let dsn = server
        .json(&["project", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["slug"] == project)
        .unwrap_or_else(|| panic!("no project {project}"))["dsn"]
        .as_str()
        .unwrap()
        .to_string();
    let script = common::root().join("tests/clients/flask_secrets.py");
    let id = common::run_python_file(&script, &dsn).trim().to_string();
    assert_eq!(id.len(), 32, "an event id: {id}");
    common::stored_event(&server.data_dir, project, &id).expect("the event is stored")
}

#[test]
fn secrets_from_a_flask_app_never_reach_the_disk_or_the_upstream() {
    let server = Server::start();
    let upstream = Sink::start(Box::new(|_, _, _| (200, vec![])));
    server.json(&["project", "create", "plain"]);
    server.json(&["project", "scrub", "plain", "--defaults", "off"]);
    server.json(&[
        "project",
        "forward",
        "default",
        &format!("http://abc@127.0.0.1:{}/7", upstream.port),
    ]);

    // Without scrubbing the SDK's secrets are stored: this is what the defaults must catch.
    let plain = flask_event(&server, "plain").to_string();
    for secret in &SECRETS[..6] {
        assert!(plain.contains(secret), "the SDK sent {secret}: {plain}");
    }

    let event = flask_event(&server, "default");
    let text = event.to_string();
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} is stored: {text}");
    }
    assert!(text.contains("[Filtered]"));
    let meta = &event["_meta"];
    let headers = &event["request"]["headers"];
    assert_eq!(headers["Authorization"], "[Filtered]", "{headers}");
    assert_eq!(
        meta["request"]["headers"]["Authorization"][""]["rem"][0][0], "@password:filter",
        "{meta}"
    );
    assert_eq!(event["request"]["data"]["password"], "[Filtered]");
    assert_eq!(
        event["request"]["data"]["username"], "ada",
        "other fields stay"
    );
    let vars = &event["exception"]["values"][0]["stacktrace"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|f| f["function"] == "checkout")
        .expect("the view's frame")["vars"];
    assert_eq!(vars["api_key"], "[Filtered]", "{vars}");
    assert!(
        event["exception"]["values"][0]["value"]
            .as_str()
            .unwrap()
            .contains("card [Filtered] declined"),
        "{event}"
    );

    // The raw JSON page shows the same.
    let issue = event["issue"].as_u64().unwrap();
    let cookie = common::sign_in(&server, "admin@example.com", "a long enough password");
    let raw = common::agent()
        .get(format!(
            "{}/projects/default/events/{}.json",
            server.url,
            event["event_id"].as_str().unwrap()
        ))
        .header("Cookie", &cookie)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(raw.contains("_meta") && !raw.contains(SECRETS[0]), "{raw}");
    let page = common::agent()
        .get(format!("{}/projects/default/issues/{issue}/", server.url))
        .header("Cookie", &cookie)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        page.contains("values filtered before storing"),
        "the event page says so"
    );

    // The forwarded copy carries none either.
    let deadline = Instant::now() + Duration::from_secs(20);
    while upstream.requests().is_empty() {
        assert!(Instant::now() < deadline, "nothing was forwarded");
        std::thread::sleep(Duration::from_millis(100));
    }
    for r in upstream.requests() {
        for secret in SECRETS {
            assert!(!r.body.contains(secret), "{secret} was forwarded");
        }
    }

    // Neither the data file nor a backup holds them (rows are compressed, so the read-back
    // above is the check that bites; these make sure nothing sits elsewhere in the clear).
    let dest = tempfile::tempdir().unwrap();
    let backup = dest.path().join("backup");
    server.json(&["backup", backup.to_str().unwrap()]);
    let data_file = server.data_dir.join("picket.redb");
    let _kept = server.stop_keeping_data();
    for file in [data_file.clone(), backup.join("picket.redb")] {
        let bytes = std::fs::read(&file).unwrap();
        for secret in &SECRETS[..3] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} is in {}",
                file.display()
            );
        }
    }
}

#[test]
fn inbound_filters_drop_what_they_name_with_a_200_and_count_it() {
    let server = Server::start_with_config("[metrics]\nenabled = true\n", &[]);
    let set = server.json(&[
        "project",
        "filters",
        "default",
        "--browser-extensions",
        "on",
        "--localhost",
        "on",
        "--web-crawlers",
        "on",
        "--error-message",
        "*ResizeObserver loop*",
    ]);
    assert_eq!(set["filters"]["localhost"], true);
    let bad = server.cli(&["project", "filters", "default", "--error-message", "["]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a pattern"));

    let dsn = server.dsn();
    let store = |event: Value| -> u16 {
        let url = dsn_store_url(&dsn);
        common::agent()
            .post(url)
            .header("Content-Type", "application/json")
            .send(event.to_string())
            .unwrap()
            .status()
            .as_u16()
    };
    let events = [
        json!({"exception": {"values": [{"type": "TypeError", "value": "x is undefined",
            "stacktrace": {"frames": [{"abs_path": "chrome-extension://abcdef/content.js", "function": "inject"}]}}]}}),
        json!({"message": "broken at home", "request": {"url": "http://localhost:8000/cart"}}),
        json!({"message": "crawled", "request": {"url": "https://shop.example.com/", "headers": {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}}}),
        json!({"message": "ResizeObserver loop completed with undelivered notifications."}),
        json!({"message": "a real problem", "request": {"url": "https://shop.example.com/"}}),
    ];
    for e in events {
        assert_eq!(store(e), 200);
    }
    let issues = server.json(&["issues", "default"]);
    let titles: Vec<&str> = issues
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        ["a real problem"],
        "only the wanted event is stored"
    );
    let status = server.json(&["status"]);
    for reason in [
        "browser-extensions",
        "localhost",
        "web-crawlers",
        "error-message",
    ] {
        assert_eq!(
            status["filtered"][reason], 1,
            "{reason}: {}",
            status["filtered"]
        );
    }
    let metrics = common::agent()
        .get(format!("{}/metrics", server.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("picket_events_filtered_total{reason=\"localhost\"} 1"),
        "{metrics}"
    );
}

/// The `/api/{id}/store/` URL of a DSN, with its key in the query.
fn dsn_store_url(dsn: &str) -> String {
    let (scheme, rest) = dsn.split_once("://").unwrap();
    let (key, rest) = rest.split_once('@').unwrap();
    let (host, project) = rest.rsplit_once('/').unwrap();
    format!("{scheme}://{host}/api/{project}/store/?sentry_key={key}&sentry_version=7")
}

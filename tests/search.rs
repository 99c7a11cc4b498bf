//! Finding things: the search grammar shared by the issue list, `picket issues --query`,
//! `picket events --query` and the Web API, over events a real sentry-sdk sent with known
//! tags, users, releases and environments; counts scoped to an environment; an issue's events
//! filtered by user and release; and, in Debian's chromium, derived browser tags from
//! @sentry/browser, folded framework frames, the chain's labels and pages that fit a phone.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::Server;
use serde_json::Value;

/// The issues `tests/clients/search_events.py` makes, by a word of their title.
fn name_of(title: &str) -> &'static str {
    match title {
        t if t.starts_with("KeyError") => "checkout",
        t if t.starts_with("order ") => "orders",
        t if t.starts_with("ValueError") => "payment",
        t if t.starts_with("ZeroDivisionError") => "legacy",
        t if t.starts_with("Error") || t.contains("shop is down") => "browser",
        other => panic!("an issue nobody sent: {other}"),
    }
}

/// Starts a server and sends the four issues; returns it with the issue numbers by name.
fn loaded() -> (Server, HashMap<&'static str, u64>) {
    let server = Server::start();
    let dsn = server.dsn();
    let script = common::root().join("tests/clients/search_events.py");
    let sent: Value = serde_json::from_str(common::run_python_file(&script, &dsn).trim())
        .expect("the client prints the event ids");
    assert_eq!(sent.as_object().map(|o| o.len()), Some(4), "{sent}");
    let mut numbers = HashMap::new();
    let all = server.json(&["issues", "default", "--status", "all"]);
    for issue in all.as_array().unwrap() {
        numbers.insert(
            name_of(issue["title"].as_str().unwrap()),
            issue["id"].as_u64().unwrap(),
        );
    }
    assert_eq!(numbers.len(), 4, "{all}");
    let legacy = numbers["legacy"].to_string();
    server.json(&["issue", "resolve", "default", &legacy]);
    (server, numbers)
}

fn found(server: &Server, query: &str) -> BTreeSet<&'static str> {
    let list = server.json(&["issues", "default", "--status", "all", "--query", query]);
    list.as_array()
        .unwrap_or_else(|| panic!("{query}: {list}"))
        .iter()
        .map(|i| name_of(i["title"].as_str().unwrap()))
        .collect()
}

#[test]
fn the_grammar_finds_what_sentry_syntax_asks_for() {
    let (server, numbers) = loaded();
    let table: [(&str, &[&str]); 28] = [
        ("is:unresolved", &["checkout", "orders", "payment"]),
        ("is:resolved", &["legacy"]),
        ("!is:resolved", &["checkout", "orders", "payment"]),
        ("is:unassigned level:warning", &["orders"]),
        (
            "level:[error, warning]",
            &["checkout", "legacy", "orders", "payment"],
        ),
        ("release:shop@1.0", &["checkout", "legacy"]),
        ("release:latest", &["checkout", "orders", "payment"]),
        (
            "release:shop@1.*",
            &["checkout", "legacy", "orders", "payment"],
        ),
        ("environment:staging", &["checkout", "payment"]),
        ("!environment:staging", &["legacy", "orders"]),
        ("user.id:7", &["orders"]),
        ("user.username:olga", &["orders"]),
        ("user.email:user2@example.com", &["checkout"]),
        ("user.email:*@example.com", &["checkout", "payment"]),
        ("user:pay@example.com", &["payment"]),
        ("region:us", &["payment"]),
        ("region:[us,eu] !region:us", &["checkout"]),
        ("has:region", &["checkout", "payment"]),
        // A tag's name is not free text.
        ("region", &[]),
        ("url:*pay*", &["payment"]),
        // Only an earlier event of the issue said 1234: the title is "order 5678 failed".
        ("1234", &["orders"]),
        (r#""order 1234" is:unresolved"#, &["orders"]),
        // The chain's cause is searched too.
        ("keyerror", &["checkout", "payment"]),
        ("times_seen:>3", &["checkout"]),
        // Scoped: 4 events in production, 2 in staging.
        ("environment:production times_seen:>3", &["checkout"]),
        ("environment:staging times_seen:>3", &[]),
        (
            "firstSeen:-1h lastSeen:-1h",
            &["checkout", "legacy", "orders", "payment"],
        ),
        ("lastSeen:+1d", &[]),
    ];
    for (query, expected) in table {
        let expected: BTreeSet<&str> = expected.iter().copied().collect();
        assert_eq!(found(&server, query), expected, "query {query}");
    }
    // The list in the browser answers the same.
    let cookie = common::sign_in(&server, "lead@example.com", "correct horse battery");
    let page = |path: &str| -> (u16, String) {
        let mut resp = common::agent()
            .get(&format!("{}{path}", server.url))
            .header("cookie", &cookie)
            .call()
            .unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    };
    let (status, html) = page("/projects/default/?q=order+1234");
    assert_eq!(status, 200);
    assert!(
        html.contains("order 5678 failed") && html.contains("1 issue ·"),
        "{html}"
    );
    let (_, html) = page("/projects/default/?status=all&q=browser%3A");
    assert!(
        html.contains("browser:&#39; has no value")
            && html.contains("showing the issues without the search"),
        "{html}"
    );
    assert!(
        html.contains("KeyError"),
        "the list is shown, not zero results"
    );

    // What cannot be parsed says why, on the command line and in the API.
    for (query, reason) in [
        ("is:sleeping", "is:sleeping is not supported"),
        ("level:loud", "level:loud is not a level"),
        ("times_seen:many", "needs a number"),
        ("firstSeen:yesterday", "is not a time"),
        (r#"user.email:"ann"#, "is not closed"),
        ("os:[Linux, Mac", "not closed with ]"),
    ] {
        let out = server.cli(&["issues", "default", "--query", query]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{query} is refused");
        assert!(stderr.contains(reason), "{query}: {stderr}");
    }
    let token = server.json(&["token", "create", "reader"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let api = |query: &str| -> (u16, Value) {
        let url = format!(
            "{}/api/0/projects/picket/default/issues/?query={}",
            server.url,
            form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
        );
        let mut resp = common::agent()
            .get(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    };
    let (status, body) = api("level:loud");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("level:loud"),
        "{body}"
    );
    let (status, body) = api("is:unresolved user.email:user3@example.com");
    assert_eq!(status, 200);
    let ids: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["KeyError: 'cart'"], "{body}");
    assert!(numbers.contains_key("checkout"));
}

#[test]
fn counts_follow_the_environment_and_an_issues_events_filter_by_user_and_release() {
    let (server, numbers) = loaded();
    let checkout = numbers["checkout"];
    let counts = |query: &str| -> (u64, u64) {
        let list = server.json(&["issues", "default", "--query", query]);
        let issue = list
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == checkout)
            .unwrap_or_else(|| panic!("{query}: {list}"));
        let f = &issue["filtered"];
        (f["count"].as_u64().unwrap(), f["users"].as_u64().unwrap())
    };
    assert_eq!(counts("environment:production"), (4, 3));
    assert_eq!(counts("environment:staging"), (2, 1));
    assert_eq!(counts("release:shop@1.1"), (4, 3));
    assert_eq!(counts("environment:production release:shop@1.0"), (2, 2));
    let all = server.json(&["issues", "default"]);
    let all = all
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == checkout)
        .unwrap()
        .clone();
    assert!(
        all["filtered"].is_null(),
        "nothing narrows the counts: {all}"
    );
    assert_eq!(
        (all["count"].as_u64(), all["users"].as_u64()),
        (Some(6), Some(3)),
        "{all}"
    );
    assert_eq!(all["users_estimated"], false, "counted exactly: {all}");

    // The list and the issue page say what they count.
    let cookie = common::sign_in(&server, "lead@example.com", "correct horse battery");
    let page = |path: &str| -> String {
        common::agent()
            .get(&format!("{}{path}", server.url))
            .header("cookie", &cookie)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    };
    let list = page("/projects/default/?environment=staging");
    assert!(list.contains("events and users in staging"), "{list}");
    let row = list
        .split("class=\"issue-row\"")
        .find(|r| r.contains(&format!("data-issue=\"{checkout}\"")))
        .expect("the checkout row");
    assert!(
        row.contains("<td class=\"num\">2</td>\n    <td class=\"num\">1</td>"),
        "{row}"
    );
    let issue = page(&format!(
        "/projects/default/issues/{checkout}/?environment=production"
    ));
    assert!(issue.contains("Events in production"), "{issue}");
    assert!(
        issue.contains("<b>4</b>") && issue.contains("id=\"issue-users\">3</b>"),
        "{issue}"
    );
    assert!(issue.contains("class=\"timeline\""), "the chart is drawn");

    // The issue's events, by user and by release.
    let events = |query: &str| -> Vec<Value> {
        server
            .json(&["events", "default", &checkout.to_string(), "--query", query])
            .as_array()
            .unwrap()
            .clone()
    };
    let by_user = events("user.id:2");
    assert_eq!(by_user.len(), 2, "{by_user:?}");
    assert!(by_user.iter().all(|e| e["user"] == "2"));
    let by_release = events("release:shop@1.0");
    assert_eq!(by_release.len(), 2);
    assert!(
        by_release
            .iter()
            .all(|e| e["release"] == "shop@1.0" && e["environment"] == "production")
    );
    assert_eq!(events("user.id:1 environment:staging").len(), 2);
    assert_eq!(events("!environment:staging").len(), 4);
    let refused = server.cli(&[
        "events",
        "default",
        &checkout.to_string(),
        "--query",
        "is:resolved",
    ]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("filters issues, not events"));
    let table = page(&format!(
        "/projects/default/issues/{checkout}/events/?q=user.email%3Auser3%40example.com"
    ));
    assert_eq!(table.matches("class=\"event-row\"").count(), 1, "{table}");
    assert!(
        table.contains("<td class=\"release\">shop@1.1</td>"),
        "{table}"
    );
}

#[test]
fn a_browser_finds_its_own_errors_and_every_page_fits_a_phone() {
    let (server, numbers) = loaded();
    let email = "lead@example.com";
    let password = "correct horse battery";
    common::create_admin(&server.data_dir, email, password);
    let work = tempfile::tempdir().unwrap();
    let shots = work.path().join("shots");
    let out = common::run_node(
        "find_flow.js",
        &[work.path().to_str().unwrap()],
        &[
            ("PICKET_URL", server.url.as_str()),
            ("SENTRY_DSN", server.dsn().as_str()),
            ("PICKET_EMAIL", email),
            ("PICKET_PASSWORD", password),
            ("PAYMENT_ISSUE", &numbers["payment"].to_string()),
            ("CHECKOUT_ISSUE", &numbers["checkout"].to_string()),
        ],
    );
    // Chromium's own User-Agent, sent by @sentry/browser, became browser tags.
    let chrome = server.json(&["issues", "default", "--query", "browser.name:Chrome"]);
    let titles: Vec<&str> = chrome
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Error: shop is down"], "{chrome}");
    let version = out["browser_version"].as_str().unwrap();
    let exact = server.json(&[
        "issues",
        "default",
        "--query",
        &format!("browser:\"Chrome {version}\""),
    ]);
    assert_eq!(
        exact.as_array().unwrap().len(),
        1,
        "browser is name and version: {exact}"
    );
    assert!(found(&server, "os.name:Linux").contains("browser"));

    assert_eq!(out["folded_before"], true, "{out}");
    assert_eq!(out["expanded"], true, "{out}");
    assert!(
        out["chain_label"].as_str().unwrap().contains("caused by"),
        "{out}"
    );
    let widths = out["widths"].as_object().unwrap();
    assert!(widths.len() >= 24, "{out}");
    for (page, w) in widths {
        assert!(
            w["scroll"].as_u64().unwrap() <= w["client"].as_u64().unwrap(),
            "{page} scrolls sideways: {w}"
        );
    }
    if let Ok(dir) = std::env::var("PICKET_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&shots).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(
                &path,
                std::path::Path::new(&dir).join(path.file_name().unwrap()),
            )
            .unwrap();
        }
    }
}

//! User feedback end to end: the real @sentry/node SDK's `captureFeedback` about an event sent
//! before, about one sent only afterwards and about none; the crash-report dialog's script and
//! form as the browser SDKs load and post them; what the CLI lists and the issue counts.

mod common;

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
    let dsn = server.json(&["project", "list"])[0]["dsn"]
        .as_str()
        .unwrap()
        .to_string();
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

//! The Sentry Web API: the real sentry-cli (from npm) against a running picket with a token
//! made by `picket token create`; the read API as GitLab's error tracking and Grafana's data
//! source call it; who may see what through a token; pagination over hundreds of issues.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::Server;
use serde_json::{Value, json};

/// The sentry-cli that `scripts/test` installs from npm (`@sentry/cli`).
fn sentry_cli() -> PathBuf {
    let bin = common::root().join("tests/clients/node_modules/.bin/sentry-cli");
    assert!(
        bin.exists(),
        "sentry-cli is missing: run ./scripts/test, which installs @sentry/cli"
    );
    bin
}

/// Runs sentry-cli against `server` as `token`, in organization `org` and project `default`.
fn run_cli(server: &Server, token: &str, org: &str, args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(sentry_cli())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("SENTRY_URL", &server.url)
        .env("SENTRY_AUTH_TOKEN", token)
        .env("SENTRY_ORG", org)
        .env("SENTRY_PROJECT", "default")
        .env("SENTRY_DISABLE_UPDATE_CHECK", "1")
        .env("SENTRY_LOAD_DOTENV", "0")
        .output()
        .expect("run sentry-cli")
}

fn ok(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "sentry-cli {what} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A GET/PUT/DELETE of the API with a bearer token (none when `token` is empty): status and
/// JSON body (`Null` when empty), and the `Link` header.
fn api(
    server: &Server,
    method: &str,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let url = if path.starts_with("http") {
        path.to_string()
    } else {
        format!("{}/api/0/{path}", server.url)
    };
    let agent = common::agent();
    let auth = format!("Bearer {token}");
    let resp = match (method, body) {
        ("GET", _) => {
            let mut r = agent.get(&url);
            if !token.is_empty() {
                r = r.header("Authorization", &auth);
            }
            r.call()
        }
        ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
        (m, body) => {
            let r = match m {
                "PUT" => agent.put(&url),
                _ => agent.post(&url),
            };
            r.header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(body.map(|b| b.to_string()).unwrap_or_default())
        }
    }
    .expect("API request");
    let status = resp.status().as_u16();
    let link = resp
        .headers()
        .get("link")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.into_body().read_to_string().unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, value, link)
}

/// Sends a Python exception (with a breadcrumb and a stack with source lines) through
/// sentry-sdk, from a script file so that frames carry their context.
fn python_error(dsn: &str, message: &str, release: &str) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("shop.py");
    std::fs::write(
        &script,
        format!(
            r#"
import os, sentry_sdk
sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], release="{release}", environment="production")
sentry_sdk.add_breadcrumb(category="cart", message="checkout started")
def load_cart(user):
    raise KeyError("{message}")
try:
    load_cart("u1")
except Exception:
    sentry_sdk.capture_exception()
sentry_sdk.flush(5)
"#
        ),
    )
    .unwrap();
    common::run_python_file(&script, dsn);
}

#[test]
fn sentry_cli_makes_releases_and_deploys_and_sends_events() {
    let server = Server::start_with_config("organization = \"acme\"\n", &[]);
    let made = server.json(&["token", "create", "ci"]);
    let secret = made["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("sntryu_"), "{made}");
    assert!(
        made["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!("project:releases")),
        "{made}"
    );
    // Only a hash is kept: listing never shows the secret.
    let list = server.json(&["token", "list"]);
    assert!(!list.to_string().contains(&secret), "{list}");

    let info = ok(run_cli(&server, &secret, "acme", &["info"]), "info");
    assert!(info.contains("Default Organization: acme"), "{info}");
    assert!(info.contains("User: operator"), "{info}");
    assert!(info.contains("project:releases"), "{info}");

    ok(
        run_cli(&server, &secret, "acme", &["releases", "new", "shop@2.0.0"]),
        "releases new",
    );
    let listed = ok(
        run_cli(&server, &secret, "acme", &["releases", "list"]),
        "releases list",
    );
    assert!(listed.contains("shop@2.0.0"), "{listed}");
    ok(
        run_cli(
            &server,
            &secret,
            "acme",
            &["releases", "finalize", "shop@2.0.0"],
        ),
        "releases finalize",
    );
    ok(
        run_cli(
            &server,
            &secret,
            "acme",
            &[
                "deploys",
                "new",
                "--release",
                "shop@2.0.0",
                "--env",
                "production",
                "--name",
                "blue",
            ],
        ),
        "deploys new",
    );
    let deploys = ok(
        run_cli(
            &server,
            &secret,
            "acme",
            &["deploys", "list", "--release", "shop@2.0.0"],
        ),
        "deploys list",
    );
    assert!(
        deploys.contains("production") && deploys.contains("blue"),
        "{deploys}"
    );

    // send-event goes through the DSN, and the event counts for its release.
    let dsn = server.dsn();
    let out = Command::new(sentry_cli())
        .args([
            "send-event",
            "-m",
            "payment provider timed out",
            "--release",
            "shop@2.0.0",
            "--env",
            "production",
        ])
        .env("SENTRY_DSN", &dsn)
        .env("SENTRY_DISABLE_UPDATE_CHECK", "1")
        .output()
        .unwrap();
    ok(out, "send-event");
    let releases = server.json(&["releases", "default"]);
    let release = releases
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "shop@2.0.0")
        .unwrap_or_else(|| panic!("no release shop@2.0.0 in {releases}"));
    assert_eq!(release["events"], 1, "{release}");
    assert_eq!(release["new_issues"], 1, "{release}");
    assert!(release["date_released"].is_string(), "finalized: {release}");
    assert!(release["last_event"].is_string(), "{release}");
    assert_eq!(release["deploys"][0]["environment"], "production");

    // The issue says which release it first appeared in.
    let (status, issues, _) = api(
        &server,
        "GET",
        &secret,
        "organizations/acme/issues/?query=payment",
        None,
    );
    assert_eq!(status, 200, "{issues}");
    assert_eq!(issues.as_array().unwrap().len(), 1, "{issues}");
    assert_eq!(issues[0]["firstRelease"]["version"], "shop@2.0.0");

    // Another organization is refused with the configured slug named.
    let (status, body, _) = api(
        &server,
        "GET",
        &secret,
        "organizations/other/releases/",
        None,
    );
    assert_eq!(status, 404);
    assert!(
        body["detail"].as_str().unwrap().contains("'acme'"),
        "{body}"
    );
}

#[test]
fn the_read_api_answers_as_gitlab_and_grafana_read_it() {
    let server = Server::start();
    let secret = server.token(&["grafana"]);
    let dsn = server.dsn();
    python_error(&dsn, "basket-42", "shop@1.0");
    python_error(&dsn, "basket-42", "shop@1.1");

    let (status, projects, _) = api(&server, "GET", &secret, "projects/", None);
    assert_eq!(status, 200, "{projects}");
    assert_eq!(projects[0]["slug"], "default");
    assert_eq!(projects[0]["organization"]["slug"], "picket");
    let (status, org_projects, _) = api(
        &server,
        "GET",
        &secret,
        "organizations/picket/projects/",
        None,
    );
    assert_eq!((status, &org_projects), (200, &projects));
    let (status, keys, _) = api(
        &server,
        "GET",
        &secret,
        "projects/picket/default/keys/",
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(keys[0]["dsn"]["secret"], dsn.as_str());

    // GitLab lists a project's unresolved issues, most recent first.
    let (status, issues, link) = api(
        &server,
        "GET",
        &secret,
        "projects/picket/default/issues/?query=is:unresolved&limit=20&sort=date",
        None,
    );
    assert_eq!(status, 200, "{issues}");
    let listed = issues.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{issues}");
    let issue = &listed[0];
    assert_eq!(issue["count"], "2");
    assert_eq!(issue["metadata"]["type"], "KeyError");
    assert_eq!(issue["firstRelease"]["version"], "shop@1.0");
    assert_eq!(issue["lastRelease"]["version"], "shop@1.1");
    assert!(link.unwrap().contains("rel=\"next\"; results=\"false\""));
    let id = issue["id"].as_str().unwrap().to_string();

    // Grafana filters by level, release and free text over the organization's issues.
    for (query, found) in [
        ("level:error release:shop@1.1 basket", 1),
        ("level:warning", 0),
        ("release:shop@9", 0),
        ("nothing-like-this", 0),
    ] {
        let path = format!(
            "organizations/picket/issues/?query={}&statsPeriod=14d&project={}",
            query.replace(' ', "%20"),
            projects[0]["id"].as_str().unwrap()
        );
        let (status, page, _) = api(&server, "GET", &secret, &path, None);
        assert_eq!(status, 200, "{page}");
        assert_eq!(page.as_array().unwrap().len(), found, "{query}: {page}");
    }

    let (status, one, _) = api(&server, "GET", &secret, &format!("issues/{id}/"), None);
    assert_eq!(status, 200);
    assert_eq!(one["title"], issue["title"]);

    // The latest event carries its exception with frames, as GitLab renders it.
    let (status, latest, _) = api(
        &server,
        "GET",
        &secret,
        &format!("issues/{id}/events/latest/"),
        None,
    );
    assert_eq!(status, 200, "{latest}");
    let entries = latest["entries"].as_array().unwrap();
    let exception = entries
        .iter()
        .find(|e| e["type"] == "exception")
        .expect("an exception entry");
    let frames = exception["data"]["values"][0]["stacktrace"]["frames"]
        .as_array()
        .unwrap();
    assert!(
        frames.iter().any(|f| f["function"] == "load_cart"
            && f["lineNo"].is_u64()
            && f["context"].as_array().is_some_and(|c| !c.is_empty())),
        "{exception}"
    );
    assert!(entries.iter().any(|e| e["type"] == "breadcrumbs"));
    assert_eq!(latest["release"]["version"], "shop@1.1");
    let event_id = latest["eventID"].as_str().unwrap().to_string();
    let (status, by_id, _) = api(
        &server,
        "GET",
        &secret,
        &format!("projects/picket/default/events/{event_id}/"),
        None,
    );
    assert_eq!((status, &by_id["groupID"]), (200, &json!(id)));
    let (status, events, _) = api(
        &server,
        "GET",
        &secret,
        &format!("issues/{id}/events/"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(events.as_array().unwrap().len(), 2);

    // Resolving through PUT takes it out of the unresolved list.
    let (status, resolved, _) = api(
        &server,
        "PUT",
        &secret,
        &format!("issues/{id}/"),
        Some(json!({"status": "resolved"})),
    );
    assert_eq!((status, &resolved["status"]), (200, &json!("resolved")));
    let (_, unresolved, _) = api(
        &server,
        "GET",
        &secret,
        "projects/picket/default/issues/?query=is:unresolved",
        None,
    );
    assert_eq!(unresolved, json!([]));
    let cli_view = server.json(&["issues", "default", "--status", "resolved"]);
    assert_eq!(cli_view.as_array().unwrap().len(), 1, "the CLI agrees");

    // Bulk changes as sentry-cli and the UI's list send them.
    let (status, _, _) = api(
        &server,
        "PUT",
        &secret,
        &format!("projects/picket/default/issues/?id={id}"),
        Some(json!({"status": "ignored", "statusDetails": {"ignoreCount": 100}})),
    );
    assert_eq!(status, 200);
    let (_, ignored, _) = api(&server, "GET", &secret, &format!("issues/{id}/"), None);
    assert_eq!(ignored["status"], "ignored");
    assert_eq!(ignored["statusDetails"]["ignoreCount"], 102, "{ignored}");

    // Assignment as Sentry's API takes it: a member's email (or user:EMAIL), null to clear.
    server.json(&["user", "create", "dev@example.com"]);
    server.json(&["project", "member", "default", "dev@example.com"]);
    let (status, assigned, _) = api(
        &server,
        "PUT",
        &secret,
        &format!("issues/{id}/"),
        Some(json!({"assignedTo": "user:dev@example.com"})),
    );
    assert_eq!(status, 200, "{assigned}");
    assert_eq!(assigned["assignedTo"]["email"], "dev@example.com");
    let (status, body, _) = api(
        &server,
        "PUT",
        &secret,
        &format!("issues/{id}/"),
        Some(json!({"assignedTo": "stranger@example.com"})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("not a member"),
        "{body}"
    );
    let number = ignored["shortId"]
        .as_str()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap();
    let activity = server.json(&["issue", "activity", "default", number]);
    assert!(
        activity
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["type"] == "assigned" && a["by"] == "token"),
        "the activity names the token: {activity}"
    );

    // Bad values are refused with the field named, and change nothing.
    let (status, body, _) = api(
        &server,
        "PUT",
        &secret,
        &format!("issues/{id}/"),
        Some(json!({"status": "solved"})),
    );
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().unwrap().starts_with("status:"),
        "{body}"
    );
    let (status, body, _) = api(
        &server,
        "GET",
        &secret,
        "organizations/picket/issues/?statsPeriod=forever",
        None,
    );
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("statsPeriod"));
}

#[test]
fn tokens_reach_only_what_their_user_may_and_what_their_scopes_allow() {
    let server = Server::start_with_config(
        "[api]\nper_token_per_minute = 30\nper_token_burst = 30\n",
        &[],
    );
    let other = server.project("payments");
    server.json(&["user", "create", "member@example.com"]);
    server.json(&["project", "member", "default", "member@example.com"]);
    let default_dsn = server.dsn();
    python_error(&default_dsn, "mine", "1.0");
    python_error(other["dsn"].as_str().unwrap(), "theirs", "1.0");
    let admin = server.token(&["admin"]);
    let member = server.token(&["member", "--user", "member@example.com"]);
    let reader = server.token(&["reader", "--scopes", "project:read"]);

    // The other project's issue and event, found with the operator's token.
    let (_, theirs, _) = api(
        &server,
        "GET",
        &admin,
        "projects/picket/payments/issues/",
        None,
    );
    let their_issue = theirs[0]["id"].as_str().unwrap().to_string();
    let (_, their_event, _) = api(
        &server,
        "GET",
        &admin,
        &format!("issues/{their_issue}/events/latest/"),
        None,
    );
    let their_event = their_event["eventID"].as_str().unwrap().to_string();

    // No token, a wrong one: 401 and nothing else.
    let (status, body, _) = api(&server, "GET", "", "projects/", None);
    assert_eq!(status, 401);
    assert!(body["detail"].is_string());
    let (status, _, _) = api(&server, "GET", "sntryu_0000", "projects/", None);
    assert_eq!(status, 401);

    // A token without the scope: 403.
    let (status, body, _) = api(
        &server,
        "GET",
        &reader,
        "projects/picket/default/issues/",
        None,
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = api(&server, "GET", &reader, "projects/", None);
    assert_eq!(status, 200);

    // A member's token sees the member's project only; the other's ids answer 404, no data.
    let (_, visible, _) = api(&server, "GET", &member, "projects/", None);
    let slugs: Vec<&str> = visible
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["default"]);
    let (_, all_issues, _) = api(
        &server,
        "GET",
        &member,
        "organizations/picket/issues/",
        None,
    );
    assert!(!all_issues.to_string().contains("theirs"), "{all_issues}");
    for path in [
        format!("issues/{their_issue}/"),
        format!("issues/{their_issue}/events/latest/"),
        format!("projects/picket/payments/events/{their_event}/"),
        format!("projects/picket/default/events/{their_event}/"),
        "projects/picket/payments/".to_string(),
        "projects/picket/payments/issues/".to_string(),
    ] {
        let (status, body, _) = api(&server, "GET", &member, &path, None);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.to_string().contains("theirs"), "{path}: {body}");
    }
    let (status, _, _) = api(
        &server,
        "PUT",
        &member,
        &format!("issues/{their_issue}/"),
        Some(json!({"status": "resolved"})),
    );
    assert_eq!(status, 404);
    let (_, still, _) = api(
        &server,
        "GET",
        &admin,
        &format!("issues/{their_issue}/"),
        None,
    );
    assert_eq!(still["status"], "unresolved", "nothing changed");
    // A member may not delete (it takes an admin), even with a token that has event:admin.
    let member_admin = server.token(&[
        "m2",
        "--user",
        "member@example.com",
        "--scopes",
        "event:admin",
    ]);
    let (_, mine, _) = api(
        &server,
        "GET",
        &member,
        "projects/picket/default/issues/",
        None,
    );
    let my_issue = mine[0]["id"].as_str().unwrap().to_string();
    let (status, _, _) = api(
        &server,
        "DELETE",
        &member_admin,
        &format!("issues/{my_issue}/"),
        None,
    );
    assert_eq!(status, 403);

    // A revoked token is refused from then on.
    let listed = server.json(&["token", "list"]);
    let member_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "member")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    server.json(&["token", "revoke", &member_id]);
    let (status, _, _) = api(&server, "GET", &member, "projects/", None);
    assert_eq!(status, 401);

    // Paths picket does not serve: 404 that says so, counted for the operator.
    let (status, body, _) = api(
        &server,
        "GET",
        &admin,
        "organizations/picket/monitors/",
        None,
    );
    assert_eq!(status, 404);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not supported by picket"),
        "{body}"
    );
    let unsupported = &server.status()["api_unsupported"];
    assert_eq!(
        unsupported["GET /api/0/organizations/picket/monitors/"], 1,
        "{unsupported}"
    );

    // Bad JSON names the problem.
    let (status, body, _) = api(
        &server,
        "POST",
        &admin,
        "organizations/picket/releases/",
        Some(json!({"projects": ["default"]})),
    );
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().unwrap().starts_with("version:"),
        "{body}"
    );

    // Past the token's rate limit: 429 with Retry-After.
    let limited = server.token(&["busy"]);
    let statuses: Vec<u16> = (0..40)
        .map(|_| api(&server, "GET", &limited, "projects/", None).0)
        .collect();
    assert!(statuses[..30].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(statuses[39], 429, "{statuses:?}");
}

#[test]
fn issues_page_through_sentry_cursors() {
    let server = Server::start();
    let secret = server.token(&["pager"]);
    let project = &server.json(&["project", "list"])[0];
    let url = common::store_url(&server, project);
    let agent = common::agent();
    for n in 0..250 {
        let body =
            json!({"message": format!("failure number {n}"), "fingerprint": [format!("f{n}")]});
        let resp = agent.post(&url).send(body.to_string()).unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let mut seen = std::collections::HashSet::new();
    let mut next = format!(
        "{}/api/0/projects/picket/default/issues/?query=is:unresolved&limit=100",
        server.url
    );
    let mut pages = 0;
    loop {
        let (status, page, link) = api(&server, "GET", &secret, &next, None);
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for issue in page.as_array().unwrap() {
            assert!(seen.insert(issue["id"].as_str().unwrap().to_string()));
        }
        let link = link.expect("a Link header");
        let next_part = link
            .split(", ")
            .find(|p| p.contains("rel=\"next\""))
            .unwrap();
        if next_part.contains("results=\"false\"") {
            break;
        }
        next = next_part[1..next_part.find('>').unwrap()].to_string();
        assert!(pages < 10, "pagination does not end: {link}");
    }
    assert_eq!((pages, seen.len()), (3, 250));
}

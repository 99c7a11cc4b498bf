//! The web UI: the whole flow in a real browser (Debian's chromium driven by playwright-core)
//! against a server fed by @sentry/node, and over plain HTTP the guards a user never sees in a
//! browser: CSRF, project membership, sign-in throttling, one-time set-password links.

mod common;

use std::process::Command;

use common::Server;
use common::browser::{self, Browser};

const PASSWORD: &str = "correct horse battery";

#[test]
fn a_user_signs_in_reads_an_issue_resolves_it_and_sees_it_regress_in_chromium() {
    let server = Server::start();
    common::create_admin(&server.data_dir, "admin@example.com", PASSWORD);
    let dsn = server.dsn();
    let shots = tempfile::tempdir().unwrap();
    let dir = common::node_clients();
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium is missing: run ./scripts/test, which installs it"
    );
    let out = Command::new("node")
        .arg(dir.join("ui_flow.js"))
        .current_dir(&dir)
        .env("PICKET_URL", &server.url)
        .env("SENTRY_DSN", &dsn)
        .env("PICKET_EMAIL", "admin@example.com")
        .env("PICKET_PASSWORD", PASSWORD)
        .env("SCREENSHOTS", shots.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the browser flow failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for shot in ["issue-page.png", "issue-list.png"] {
        let len = std::fs::metadata(shots.path().join(shot)).unwrap().len();
        assert!(len > 10_000, "{shot} is {len} bytes");
    }
}

/// A client behind the (trusted, loopback) proxy, which says it forwards for `client`.
fn behind_proxy(server: &Server, client: &str) -> Browser {
    let mut b = Browser::new(server);
    b.set_header("x-forwarded-for", client);
    b
}

#[test]
fn csrf_membership_throttling_and_set_password_links() {
    let server = Server::start();
    common::create_admin(&server.data_dir, "admin@example.com", PASSWORD);
    let project = server.json(&["project", "list"])[0].clone();
    common::agent()
        .post(&common::store_url(&server, &project))
        .send(&br#"{"message":"visible only to members"}"#[..])
        .unwrap();

    // Signing in needs the form's token.
    let mut admin = behind_proxy(&server, "203.0.113.1");
    admin.get("/login");
    let refused = admin.post(
        "/login",
        &[("email", "admin@example.com"), ("password", PASSWORD)],
    );
    assert_eq!(refused.status, 403, "a sign-in without its CSRF token");
    let signed_in = admin.sign_in("admin@example.com", PASSWORD);
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let session = admin.cookies.get("picket_session").cloned().unwrap();
    assert_eq!(admin.get("/projects/default/").status, 200);

    // Every other form needs the session's token.
    for csrf in [None, Some("wrong")] {
        let mut fields = vec![("action", "resolve")];
        if let Some(c) = csrf {
            fields.push(("csrf", c));
        }
        let out = admin.post("/projects/default/issues/1/status", &fields);
        assert_eq!(out.status, 403, "a form post with CSRF token {csrf:?}");
        assert!(out.body.contains("CSRF"));
    }
    let issues = server.json(&["issues", "default"]);
    assert_eq!(
        issues[0]["status"], "unresolved",
        "the refused posts changed nothing"
    );
    let page = admin.get("/projects/default/");
    let csrf = browser::csrf(&page.body);
    let out = admin.post(
        "/projects/default/issues/1/status",
        &[("action", "resolve"), ("csrf", &csrf)],
    );
    assert_eq!(out.status, 303);
    assert_eq!(
        server.json(&["issues", "default", "--status", "resolved"])[0]["id"],
        1
    );

    // An admin adds a user; the one-time link sets the password.
    let users = admin.post(
        "/admin/users/create",
        &[("csrf", &csrf), ("email", "dev@example.com")],
    );
    assert_eq!(users.status, 200);
    let at = users
        .body
        .find("/set-password/")
        .expect("a set-password link");
    let token: String = users.body[at + 14..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    let mut dev = behind_proxy(&server, "203.0.113.1");
    assert_eq!(dev.get(&format!("/set-password/{token}")).status, 200);
    let set = dev.post(
        &format!("/set-password/{token}"),
        &[("password", "a new password")],
    );
    assert_eq!(set.status, 303);
    assert_eq!(
        dev.get(&format!("/set-password/{token}")).status,
        404,
        "the link works once"
    );
    assert_eq!(dev.sign_in("dev@example.com", "a new password").status, 303);

    // Not a member: the project's pages are 404, as if it did not exist.
    for path in [
        "/projects/default/",
        "/projects/default/issues/1/",
        "/projects/default/settings",
    ] {
        assert_eq!(dev.get(path).status, 404, "{path} for a non-member");
    }
    assert!(!dev.get("/").body.contains("/projects/default/"));
    assert_eq!(
        dev.get("/admin/users").status,
        404,
        "users page for a non-admin"
    );
    let settings = admin.get("/projects/default/settings");
    assert!(
        settings
            .body
            .contains(&project["dsn"].as_str().unwrap().to_string())
    );
    let added = admin.post(
        "/projects/default/settings/member-add",
        &[("csrf", &csrf), ("email", "dev@example.com")],
    );
    assert_eq!(added.status, 303);
    assert_eq!(
        dev.get("/projects/default/").status,
        200,
        "a member sees it"
    );

    // Failed sign-ins slow the guessing client down; the account's owner, elsewhere, is not
    // shut out (both arrive through the trusted loopback proxy, which names them).
    let mut attacker = behind_proxy(&server, "192.0.2.66");
    let mut last = 0;
    for _ in 0..12 {
        last = attacker.sign_in("dev@example.com", "guess").status;
    }
    assert_eq!(last, 429, "too many failed sign-ins");
    let mut owner = behind_proxy(&server, "198.51.100.20");
    assert_eq!(
        owner.sign_in("dev@example.com", "a new password").status,
        303
    );

    // A new password ends the account's other sessions, not the one that set it.
    let page = owner.get("/account");
    let owner_csrf = browser::csrf(&page.body);
    let changed = owner.post(
        "/account",
        &[
            ("csrf", &owner_csrf),
            ("current", "a new password"),
            ("new", "a newer password"),
        ],
    );
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert!(
        changed.body.contains("Your password is changed"),
        "{}",
        changed.body
    );
    assert_eq!(
        owner.get("/").status,
        200,
        "the session that changed it stays"
    );
    let elsewhere = dev.get("/projects/default/");
    assert_eq!(elsewhere.status, 303, "the other session ended");

    // After signing in, only a path of picket's own is followed.
    let mut tricked = behind_proxy(&server, "203.0.113.1");
    let form = tricked.get("/login");
    let csrf_t = browser::csrf(&form.body);
    let went = tricked.post(
        "/login",
        &[
            ("csrf", &csrf_t),
            ("next", "/\t/evil.example/"),
            ("email", "admin@example.com"),
            ("password", PASSWORD),
        ],
    );
    assert_eq!(went.status, 303);
    assert_eq!(went.location, "/");

    // Signing out ends the session on the server: the old cookie is refused.
    let page = admin.get("/");
    let csrf = browser::csrf(&page.body);
    assert_eq!(admin.post("/logout", &[("csrf", &csrf)]).status, 303);
    admin.cookies.insert("picket_session".into(), session);
    let after = admin.get("/projects/default/");
    assert_eq!(after.status, 303);
    assert!(after.location.starts_with("/login"));
}

#[test]
fn the_list_says_what_it_did_not_understand_and_counts_right() {
    let server = Server::start();
    common::create_admin(&server.data_dir, "admin@example.com", PASSWORD);
    let project = server.json(&["project", "list"])[0].clone();
    let send = |message: &str| {
        common::agent()
            .post(&common::store_url(&server, &project))
            .send(format!(r#"{{"message":"{message}"}}"#).as_bytes())
            .unwrap();
    };
    send("the only problem");
    let mut admin = behind_proxy(&server, "203.0.113.1");
    admin.sign_in("admin@example.com", PASSWORD);
    let one = admin.get("/projects/default/").body;
    assert!(one.contains("1 issue ·"), "one issue, singular");
    send("another problem");
    let past = admin.get("/projects/default/?page=5").body;
    assert!(
        past.contains("There is no page 6 of these issues: showing page 1."),
        "{past}"
    );
    assert!(past.contains("2 issues · 1–2"), "the last page's range");
    let level = admin.get("/projects/default/?level=xx").body;
    assert!(
        level.contains("&#39;xx&#39; is not a level") || level.contains("'xx' is not a level"),
        "{level}"
    );
    assert!(
        level.contains("another problem"),
        "every level is shown instead"
    );
    let text = server.cli(&["events", "default", "1"]);
    let header = String::from_utf8_lossy(&text.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    assert!(
        header.contains("RECEIVED") && header.contains("TIMESTAMP"),
        "{header}"
    );
}

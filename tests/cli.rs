//! The command line as scripts use it: man pages in sync with the definitions, `init`,
//! configuration errors, JSON output fields, and management commands with and without a
//! running server.

mod common;

use std::process::{Command, Stdio};

use common::{BIN, Server, cli, cli_json};
use serde_json::json;

#[test]
fn man_pages_are_up_to_date() {
    let dir = common::root().join("man");
    let bless = std::env::var_os("PICKET_BLESS").is_some();
    for (name, page) in picket::cli::man_pages() {
        let path = dir.join(&name);
        if bless {
            std::fs::write(&path, &page).unwrap();
            continue;
        }
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            on_disk == page,
            "man/{name} is out of date with the clap definitions; regenerate with PICKET_BLESS=1 cargo test --test cli man_pages"
        );
    }
}

#[test]
fn init_writes_a_config_that_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("picket.toml");
    let out = Command::new(BIN).arg("init").arg(&file).output().unwrap();
    assert!(out.status.success());
    let text = std::fs::read_to_string(&file).unwrap();
    for key in [
        "data_dir",
        "http_addr",
        "udp_addr",
        "base_url",
        "log",
        "max_event_size",
        "queue_capacity",
    ] {
        assert!(text.contains(&format!("# {key} = ")), "init lacks {key}");
    }
    let again = Command::new(BIN).arg("init").arg(&file).output().unwrap();
    assert!(
        !again.status.success(),
        "init must not overwrite without --force"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    // The written file is a valid config: a command that loads it (and makes a data file)
    // works.
    let data = dir.path().join("data");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .args(["upgrade"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("picket.toml");
    for (content, key) in [
        ("[limits]\nmax_evnt_size = 10\n", "max_evnt_size"),
        ("http_addr = \"not an address\"\n", "http_addr"),
        ("[pipeline]\nbatch_max = \"many\"\n", "batch_max"),
    ] {
        std::fs::write(&file, content).unwrap();
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&file)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("start")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = common::wait_timeout(&mut child, std::time::Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| !s.success()),
            "start accepted {content:?}"
        );
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(err.contains(key), "error {err:?} should name {key}");
    }
    let out = Command::new(BIN)
        .env("PICKET_HTTP_ADDR", "nowhere")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("start")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("http_addr"));
}

#[test]
fn management_without_a_server_works_on_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A command pointed at a directory without a data file makes none: it names where it
    // looked.
    for args in [
        &["issues", "default"][..],
        &["project", "create", "My Shop"],
    ] {
        let out = cli(&data, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains("no data file") && said.contains("picket.redb"),
            "{said}"
        );
    }
    assert!(!data.join("picket.redb").exists());
    // `upgrade` makes one (as `start` does), readable by its owner only.
    let made = cli(&data, &["upgrade"]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(&data.join("picket.redb")), 0o600);
    assert_eq!(mode(&data), 0o700);

    let p = cli_json(&data, &["project", "create", "My Shop"]);
    for field in ["id", "slug", "dsn", "public_key", "secret_key"] {
        assert!(
            p.get(field).is_some(),
            "project create --json lacks {field}"
        );
    }
    assert_eq!(p["slug"], "my-shop");
    let dsn = p["dsn"].as_str().unwrap();
    assert!(dsn.contains(p["public_key"].as_str().unwrap()));
    assert!(
        !dsn.contains(p["secret_key"].as_str().unwrap()),
        "the DSN must carry the public key only"
    );
    let list = cli_json(&data, &["project", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let by_id = cli_json(&data, &["key", "list", &p["id"].to_string()]);
    assert_eq!(by_id[0]["public_key"], p["public_key"]);
    assert_eq!(
        cli_json(&data, &["issues", "my-shop", "--status", "all"]),
        json!([])
    );

    let missing = cli(
        &data,
        &[
            "event",
            "my-shop",
            "0123456789abcdef0123456789abcdef",
            "--json",
        ],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no event"));
    let bad_project = cli(&data, &["issues", "nope"]);
    assert_eq!(bad_project.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_project.stderr).contains("no project 'nope'"));

    // A name that is taken is an error, not a second project with another slug.
    let again = cli(&data, &["project", "create", "My Shop"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    assert_eq!(
        cli_json(&data, &["project", "list"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let out = common::create_admin(&data, "admin@example.com", "a long enough password");
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin@example.com"));
    // The same email again: refused without --update.
    let mut again = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args([
            "createsuperuser",
            "--email",
            "admin@example.com",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    again
        .stdin
        .take()
        .unwrap()
        .write_all(b"another long password\n")
        .unwrap();
    let again = again.wait_with_output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--update"));
}

#[test]
fn an_operator_starts_and_stops_picket_and_it_refuses_what_it_cannot_serve() {
    let server = Server::start();
    // A second server on the same data directory gives up at once with 78 (in use).
    let second = common::start_expecting_exit(&server.data_dir);
    assert_eq!(second.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&second.stderr).contains("in use"));

    // The status says where it listens and how large its file is.
    let status = cli(&server.data_dir, &["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("listening: {}", server.url)),
        "{text}"
    );
    assert!(
        text.contains("data file: ") && text.contains("picket.redb ("),
        "{text}"
    );

    // `picket stop` stops the server and its watchdog, and says so.
    let stopped = cli(&server.data_dir, &["stop"]);
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(String::from_utf8_lossy(&stopped.stdout).contains("stopped picket"));
    let status = server.stop();
    assert!(status.success(), "the watchdog stopped with {status}");

    // A data file of 0 bytes is refused, not made into a new store.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("picket.redb"), b"").unwrap();
    let empty = common::start_expecting_exit(dir.path());
    assert_eq!(empty.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("empty (0 bytes)"));
    assert_eq!(
        std::fs::metadata(dir.path().join("picket.redb"))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn first_start_creates_the_default_project_and_commands_use_the_socket() {
    let server = Server::start();
    let projects = server.json(&["project", "list"]);
    assert_eq!(projects[0]["slug"], "default");
    let dsn = projects[0]["dsn"].as_str().unwrap();
    assert!(
        dsn.ends_with("/1") && dsn.contains(server.url.trim_start_matches("http://")),
        "{dsn}"
    );
    // The server holds the file; this went through the control socket.
    let socket = server.data_dir.join("control.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&socket).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let created = server.json(&["project", "create", "second"]);
    assert_eq!(created["id"], 2);
    let status = server.stop();
    assert!(status.success());
}

#[test]
fn merged_issues_share_their_events_and_fingerprints() {
    let server = Server::start();
    let send = |messages: &[&str]| {
        let calls: Vec<String> = messages
            .iter()
            .map(|m| format!("sentry_sdk.capture_message({m:?}, level='error')"))
            .collect();
        common::run_python(
            &format!(
                "import os, sentry_sdk\nsentry_sdk.init(dsn=os.environ['SENTRY_DSN'], default_integrations=False, send_client_reports=False)\n{}\nsentry_sdk.flush(timeout=10)\n",
                calls.join("\n")
            ),
            &server.dsn(),
        );
    };
    send(&[
        "timeout talking to the bank",
        "bank timed out",
        "bank timed out",
    ]);
    let issues = server.json(&["issues", "default"]);
    let id_of = |title: &str| -> u64 {
        issues
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["title"] == title)
            .unwrap_or_else(|| panic!("no issue {title}: {issues}"))["id"]
            .as_u64()
            .unwrap()
    };
    let (into, from) = (
        id_of("timeout talking to the bank"),
        id_of("bank timed out"),
    );
    server.json(&[
        "issue",
        "comment",
        "default",
        &from.to_string(),
        "same bank outage",
    ]);
    let merged = server.json(&[
        "issue",
        "merge",
        "default",
        &into.to_string(),
        &from.to_string(),
    ]);
    assert_eq!(
        (merged["count"].as_u64(), merged["stored"].as_u64()),
        (Some(3), Some(3))
    );
    let events = server.json(&["events", "default", &into.to_string()]);
    assert_eq!(events.as_array().unwrap().len(), 3, "{events}");
    let gone = server.cli(&["issue", "activity", "default", &from.to_string()]);
    assert!(!gone.status.success(), "the merged issue is gone");
    // Its events' words and counts by environment moved with them.
    let found = server.json(&[
        "issues",
        "default",
        "--query",
        "timed environment:production",
    ]);
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["id"], into);
    assert_eq!(found[0]["filtered"]["count"], 3, "{found}");

    // A new event with the merged issue's fingerprint joins the issue it was merged into.
    send(&["bank timed out"]);
    let issues = server.json(&["issues", "default"]);
    assert_eq!(issues.as_array().unwrap().len(), 1, "{issues}");
    assert_eq!(issues[0]["count"], 4);
    let activity = server.json(&["issue", "activity", "default", &into.to_string()]);
    let texts: Vec<&str> = activity
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["first_seen", "commented", "merged"], "{activity}");
    assert_eq!(
        activity[2]["text"],
        format!("merged issue #{from} into this one (2 events)")
    );

    // Deleting it forgets both fingerprints: the next event opens a new issue.
    server.json(&["issue", "delete", "default", &into.to_string(), "--yes"]);
    send(&["bank timed out"]);
    let issues = server.json(&["issues", "default"]);
    assert_eq!(issues.as_array().unwrap().len(), 1);
    assert_eq!(issues[0]["count"], 1);
    assert_ne!(issues[0]["id"].as_u64(), Some(into));
}

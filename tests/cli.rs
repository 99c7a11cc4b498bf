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
    // The written file is a valid config: a command that loads it works.
    let data = dir.path().join("data");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .args(["project", "list"])
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

    let out = common::create_admin(&data, "admin@example.com", "a long enough password");
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin@example.com"));
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

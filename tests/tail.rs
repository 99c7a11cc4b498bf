//! `picket tail` and the server's `[[tail]]` workers against logs written by real PHP (php-cli,
//! php-fpm): the expected issues with the right types, levels, frames and counts; resumption;
//! rotation by rename + gzip and by copytruncate; SIGKILL in the middle of a backlog; a server
//! outage; overlapping runs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

/// PHP scripts that write errors, and the log they write to.
struct Php {
    dir: tempfile::TempDir,
    log: PathBuf,
}

const ERRORS: &str = r#"<?php
function site_a($n) { $x = []; return $x["key$n"]; }
function site_b($n) { return @file_get_contents("/nonexistent/file-$n.txt") . file_get_contents("/nonexistent/file-$n.txt"); }
for ($i = 0; $i < 3; $i++) { site_a($i * 11); site_b($i * 7); }
function miss($user) { trigger_error("cache miss for user $user", E_USER_NOTICE); }
miss(17); miss(42);
trigger_error("old api used by client 9", E_USER_DEPRECATED);
error_log("Request URI: /index.php, IP address: 10.0.0.1");
"#;

const UNCAUGHT: &str = r#"<?php
class AppException extends Exception {}
function inner($id) { throw new InvalidArgumentException("bad id $id"); }
function outer() {
    try { inner(1234); } catch (Exception $e) { throw new AppException("checkout failed for order 99", 0, $e); }
}
outer();
"#;

const FATAL: &str = "<?php\ntrigger_error(\"payment backend down (code 503)\", E_USER_ERROR);\n";

const PARSE: &str = "<?php\n$a = ;\n";

/// Entries ERRORS writes per run.
const ERRORS_ENTRIES: u64 = 10;

impl Php {
    fn new() -> Php {
        let dir = tempfile::tempdir().unwrap();
        for (name, code) in [
            ("errors.php", ERRORS),
            ("uncaught.php", UNCAUGHT),
            ("fatal.php", FATAL),
            ("parse.php", PARSE),
        ] {
            std::fs::write(dir.path().join(name), code).unwrap();
        }
        let log = dir.path().join("php_errors.log");
        Php { dir, log }
    }

    fn script(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs a script with errors logged to the log file.
    fn run(&self, name: &str) {
        let out = Command::new("php")
            .arg("-d")
            .arg("log_errors=1")
            .arg("-d")
            .arg(format!("error_log={}", self.log.display()))
            .args(["-d", "display_errors=0", "-d", "html_errors=0"])
            .arg(self.script(name))
            .output()
            .expect("php-cli is installed by scripts/test");
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("Could not open input file"),
            "{out:?}"
        );
    }
}

fn tail(dsn: &str, state: &Path, files: &[&Path], extra: &[&str]) -> Output {
    Command::new(common::BIN)
        .arg("tail")
        .arg("--dsn")
        .arg(dsn)
        .arg("--state")
        .arg(state)
        .args(extra)
        .args(files)
        .env_remove("SENTRY_DSN")
        .output()
        .unwrap()
}

fn tail_once(dsn: &str, state: &Path, files: &[&Path]) -> Output {
    let out = tail(
        dsn,
        state,
        files,
        &["--once", "--environment", "production"],
    );
    assert!(
        out.status.success(),
        "picket tail failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn issues(server: &Server) -> Vec<Value> {
    server
        .json(&["issues", "default", "--status", "all"])
        .as_array()
        .unwrap()
        .clone()
}

fn issue<'a>(issues: &'a [Value], needle: &str) -> &'a Value {
    issues
        .iter()
        .find(|i| i["title"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no issue with {needle}: {issues:#?}"))
}

fn total(server: &Server) -> u64 {
    common::sum(&issues(server), "count")
}

fn latest_event(server: &Server, issue: &Value) -> Value {
    let id = issue["last_event"].as_str().unwrap();
    common::stored_event(&server.data_dir, "default", id).unwrap()
}

#[test]
fn php_errors_become_grouped_issues_and_runs_resume_where_they_stopped() {
    let php = Php::new();
    for script in ["errors.php", "uncaught.php", "fatal.php", "parse.php"] {
        php.run(script);
    }
    let server = Server::start();
    let dsn = server.dsn();
    let state = php.dir.path().join("state.json");
    let out = tail_once(&dsn, &state, &[&php.log]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("13 entries delivered"));

    let list = issues(&server);
    assert_eq!(list.len(), 8, "{list:#?}");
    let site_a = issue(&list, "Undefined array key");
    assert_eq!(
        (site_a["count"].as_u64(), site_a["level"].as_str()),
        (Some(3), Some("warning"))
    );
    let site_b = issue(&list, "file_get_contents");
    assert_eq!(
        site_b["count"], 3,
        "one issue per site despite varying numbers"
    );
    let notice = issue(&list, "cache miss");
    assert_eq!(
        (notice["count"].as_u64(), notice["level"].as_str()),
        (Some(2), Some("info"))
    );
    let deprecated = issue(&list, "old api");
    assert_eq!(deprecated["level"], "warning");
    assert_eq!(issue(&list, "payment backend down")["level"], "fatal");
    assert_eq!(issue(&list, "syntax error")["level"], "fatal");
    assert_eq!(
        issue(&list, "Request URI")["count"],
        1,
        "unknown lines are shipped"
    );

    let event = latest_event(&server, site_a);
    let exception = &event["exception"]["values"][0];
    assert_eq!(exception["type"], "Warning");
    let frame = &exception["stacktrace"]["frames"][0];
    assert_eq!(frame["lineno"], 2);
    assert_eq!(
        frame["abs_path"].as_str(),
        Some(php.script("errors.php").to_str().unwrap())
    );
    assert!(
        frame["context_line"]
            .as_str()
            .unwrap()
            .contains("$x[\"key$n\"]"),
        "{frame}"
    );
    assert_eq!(event["logger"], "php");
    assert_eq!(event["platform"], "php");
    assert_eq!(event["environment"], "production");
    assert!(event["server_name"].is_string());

    let chain = latest_event(&server, issue(&list, "AppException"));
    let values = chain["exception"]["values"].as_array().unwrap();
    let types: Vec<_> = values.iter().map(|v| v["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["InvalidArgumentException", "AppException"]);
    let frames = values[0]["stacktrace"]["frames"].as_array().unwrap();
    let functions: Vec<_> = frames
        .iter()
        .map(|f| f["function"].as_str().unwrap())
        .collect();
    assert_eq!(functions, ["{main}", "outer", "inner"], "oldest first");
    assert!(
        frames[2]["context_line"]
            .as_str()
            .unwrap()
            .contains("throw new")
    );
    assert_eq!(chain["level"], "fatal");

    // Resumption: exactly the new entries arrive.
    php.run("errors.php");
    let out = tail_once(&dsn, &state, &[&php.log]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("10 entries delivered"),
        "{out:?}"
    );
    assert_eq!(issue(&issues(&server), "Undefined array key")["count"], 6);
    assert_eq!(total(&server), 13 + ERRORS_ENTRIES);
    tail_once(&dsn, &state, &[&php.log]);
    assert_eq!(total(&server), 13 + ERRORS_ENTRIES, "nothing is sent twice");

    // Rotation by rename, the old file compressed while it still had unread entries.
    php.run("errors.php");
    let rotated = php.dir.path().join("php_errors.log.1");
    std::fs::rename(&php.log, &rotated).unwrap();
    assert!(
        Command::new("gzip")
            .arg(&rotated)
            .status()
            .unwrap()
            .success()
    );
    php.run("fatal.php");
    tail_once(&dsn, &state, &[&php.log]);
    assert_eq!(
        total(&server),
        13 + 3 * ERRORS_ENTRIES + 1 - ERRORS_ENTRIES,
        "rename + gzip"
    );
    let after_rename = total(&server);

    // copytruncate: copied away and truncated with unread entries in it.
    php.run("errors.php");
    std::fs::copy(&php.log, php.dir.path().join("php_errors.log-20261125")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&php.log)
        .unwrap()
        .set_len(0)
        .unwrap();
    // (A file that regrows to exactly what was read before, byte for byte, cannot be told from
    // one that was not truncated; a different entry, as in life, can.)
    php.run("uncaught.php");
    tail_once(&dsn, &state, &[&php.log]);
    assert_eq!(
        total(&server),
        after_rename + ERRORS_ENTRIES + 1,
        "copytruncate"
    );
    tail_once(&dsn, &state, &[&php.log]);
    assert_eq!(
        total(&server),
        after_rename + ERRORS_ENTRIES + 1,
        "and nothing twice"
    );
}

#[test]
fn a_killed_run_and_a_server_outage_lose_and_repeat_nothing() {
    let php = Php::new();
    std::fs::write(
        php.script("flood.php"),
        "<?php\nfor ($i = 0; $i < 3000; $i++) { trigger_error(\"slow query $i took \" . ($i * 3) . \" ms\", E_USER_WARNING); }\n",
    )
    .unwrap();
    php.run("flood.php");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let addr = format!("127.0.0.1:{}", common::free_port());
    let server = Server::start_in(&data, &["--http-addr", &addr]);
    let dsn = server.dsn();
    let state = php.dir.path().join("state.json");

    let mut child = Command::new(common::BIN)
        .args(["tail", "--once", "--dsn", &dsn, "--state"])
        .arg(&state)
        .arg(&php.log)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while total(&server) < 200 {
        assert!(Instant::now() < deadline, "nothing was delivered");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = total(&server);
    assert!(
        partial < 3000,
        "the kill came too late to test anything ({partial})"
    );
    tail_once(&dsn, &state, &[&php.log]);
    let list = issues(&server);
    assert_eq!(list.len(), 1, "one site, one issue");
    assert_eq!(list[0]["count"], 3000, "every entry stored exactly once");

    // With the server down, a run reports it and marks nothing delivered.
    let before = std::fs::read_to_string(&state).unwrap();
    assert!(server.stop().success());
    php.run("errors.php");
    let out = tail(&dsn, &state, &[&php.log], &["--once"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot deliver"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), before);
    let server = Server::start_in(&data, &["--http-addr", &addr]);
    tail_once(&dsn, &state, &[&php.log]);
    assert_eq!(total(&server), 3000 + ERRORS_ENTRIES);
}

#[test]
fn an_overlapping_run_exits_at_once_and_says_so() {
    let php = Php::new();
    php.run("errors.php");
    let server = Server::start();
    let dsn = server.dsn();
    let state = php.dir.path().join("state.json");
    let mut follower = Command::new(common::BIN)
        .args(["tail", "--dsn", &dsn, "--state"])
        .arg(&state)
        .arg(&php.log)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while total(&server) < ERRORS_ENTRIES {
        assert!(Instant::now() < deadline, "the follower delivered nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let out = tail(&dsn, &state, &[&php.log], &["--once"]);
    assert!(out.status.success());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another picket tail is running"),
        "{out:?}"
    );
    // The follower ships what is appended while it runs.
    php.run("fatal.php");
    let deadline = Instant::now() + Duration::from_secs(30);
    while total(&server) < ERRORS_ENTRIES + 1 {
        assert!(Instant::now() < deadline, "the follower missed a new entry");
        std::thread::sleep(Duration::from_millis(50));
    }
    follower.kill().unwrap();
    follower.wait().unwrap();
}

#[test]
fn bad_dsns_and_unreadable_files_are_reported() {
    let php = Php::new();
    let state = php.dir.path().join("state.json");
    let out = tail("not-a-dsn", &state, &[&php.log], &["--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad DSN"));
    let server = Server::start();
    let missing_dir = php.dir.path().join("no-such-dir");
    std::fs::create_dir(&missing_dir).unwrap();
    let unreadable = missing_dir.join("x.log");
    std::fs::write(&unreadable, "x\n").unwrap();
    std::fs::set_permissions(
        &missing_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let out = tail(&server.dsn(), &state, &[&unreadable], &["--once"]);
    std::fs::set_permissions(
        &missing_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // Root reads anything; the check only means something for other users.
    if unsafe_is_root() {
        assert!(out.status.success());
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    }
    let dsn = server.dsn();
    let (scheme, rest) = dsn.split_once("://").unwrap();
    let location = rest.split_once('@').unwrap().1;
    let wrong_key = format!("{scheme}://0123456789abcdef0123456789abcdef@{location}");
    php.run("fatal.php");
    let out = tail(&wrong_key, &state, &[&php.log], &["--once"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused the key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn php_fpm_lines_become_the_same_events_and_the_server_tails_on_its_own() {
    let php = Php::new();
    let fpm_log = php.dir.path().join("fpm.log");
    let port = common::free_port();
    let conf = php.dir.path().join("fpm.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nerror_log = {}\ndaemonize = no\n[www]\nlisten = 127.0.0.1:{port}\npm = static\npm.max_children = 1\ncatch_workers_output = yes\nphp_admin_flag[log_errors] = on\nphp_admin_value[display_errors] = off\n",
            fpm_log.display()
        ),
    )
    .unwrap();
    let fpm = [
        "/usr/sbin/php-fpm",
        "/usr/sbin/php-fpm8.2",
        "/usr/sbin/php-fpm8.3",
        "/usr/sbin/php-fpm8.4",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("php-fpm is installed by scripts/test");
    let mut master = Command::new(fpm)
        .args(["-y"])
        .arg(&conf)
        .args(["-F", "-R"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "php-fpm did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(
        php.script("web.php"),
        "<?php\nfunction site($n) { $x = []; return $x[\"key$n\"]; }\nsite(5);\nsite(6);\nthrow new RuntimeException(\"worker 3 crashed\");\n",
    )
    .unwrap();
    let request = |script: &str| {
        let status = Command::new(common::python())
            .arg(common::root().join("tests/clients/fcgi_get.py"))
            .args(["127.0.0.1", &port.to_string()])
            .arg(php.script(script))
            .status()
            .unwrap();
        assert!(status.success());
    };
    request("web.php");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&fpm_log)
        .unwrap_or_default()
        .contains("thrown in")
    {
        assert!(Instant::now() < deadline, "php-fpm logged nothing");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The server tails the php-fpm log itself.
    let toml = format!(
        "[[tail]]\npath = \"{}\"\nproject = \"default\"\nformat = \"php-fpm\"\nenvironment = \"web\"\n",
        fpm_log.display()
    );
    let server = Server::start_with_config(&toml, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while issues(&server).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the server's tailer shipped nothing: {}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    request("web.php");
    let deadline = Instant::now() + Duration::from_secs(30);
    while issue(&issues(&server), "Undefined array key")["count"] != 4 {
        assert!(Instant::now() < deadline, "{:#?}", issues(&server));
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = master.kill();
    let _ = master.wait();

    let list = issues(&server);
    let warning = issue(&list, "Undefined array key");
    assert_eq!(warning["level"], "warning");
    let crash = issue(&list, "worker 3 crashed");
    assert_eq!(crash["count"], 2);
    let event = latest_event(&server, crash);
    assert_eq!(event["exception"]["values"][0]["type"], "RuntimeException");
    assert_eq!(event["environment"], "web");
    assert_eq!(
        event["exception"]["values"][0]["stacktrace"]["frames"][0]["lineno"],
        5
    );
    // fpm's own notices ("fpm is running") are shipped as messages, not dropped.
    assert!(
        list.iter()
            .any(|i| i["title"].as_str().unwrap().contains("fpm is running"))
    );

    // Positions live in the data file: a restart ships nothing twice.
    let before = common::sum(&list, "count");
    let server = server.restart();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(total(&server), before);
}

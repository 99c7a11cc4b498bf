//! Shared by the integration tests: start a real `picket` process on an ephemeral port with a
//! fresh data directory, run its CLI, and find the SDK clients `scripts/test` installed.

#![allow(dead_code)]

pub mod browser;
pub mod sink;
pub mod smtp;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_picket");

pub struct Server {
    child: Option<Child>,
    /// Owns the data directory (deleted on drop) unless the test gave its own.
    _dir: Option<tempfile::TempDir>,
    pub data_dir: PathBuf,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub stderr_log: PathBuf,
    /// The arguments after `start`, for [`Server::restart`].
    args: Vec<String>,
}

impl Server {
    /// Starts picket on a fresh data directory.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let mut server = Server::start_in(&data_dir, &[]);
        server._dir = Some(dir);
        server
    }

    /// Starts picket on a fresh data directory with a config file holding `toml`.
    pub fn start_with_config(toml: &str, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("picket.toml");
        // No UDP listener unless the test asks for one (the default port would clash).
        let toml = if toml.contains("udp_addr") {
            toml.to_string()
        } else {
            format!("udp_addr = \"\"\n{toml}")
        };
        std::fs::write(&config, toml).expect("config");
        let config = config.to_string_lossy().to_string();
        let mut args = vec!["--config", config.as_str()];
        args.extend_from_slice(extra);
        let mut server = Server::start_in(&dir.path().join("data"), &args);
        server._dir = Some(dir);
        server
    }

    /// The config file a server started with [`Server::start_with_config`] reads.
    pub fn config_file(&self) -> PathBuf {
        self.data_dir.with_file_name("picket.toml")
    }

    /// Starts picket on `data_dir` with extra arguments after `start`.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Server {
        let stderr_log = data_dir.with_extension(format!("stderr-{}.log", std::process::id()));
        std::fs::create_dir_all(data_dir).expect("data dir");
        let log = std::fs::File::create(&stderr_log).expect("log file");
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("start")
            .args(if extra.contains(&"--http-addr") {
                &[][..]
            } else {
                &["--http-addr", "127.0.0.1:0"][..]
            })
            .args(
                if extra.contains(&"--udp-addr") || extra.contains(&"--config") {
                    &[][..]
                } else {
                    &["--udp-addr", ""][..]
                },
            )
            .args(extra)
            .env_remove("PICKET_CONFIG")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn picket");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("picket: listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                panic!("picket did not start listening within 30 s; stderr:\n{log}");
            }
        };
        Server {
            child: Some(child),
            _dir: None,
            data_dir: data_dir.to_path_buf(),
            url,
            stderr_log,
            args: extra.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Stops the server with SIGTERM and starts it again on the same data directory with the
    /// same arguments (on a new port).
    pub fn restart(mut self) -> Server {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let status = wait_timeout(&mut child, Duration::from_secs(20))
            .expect("picket did not stop within 20 s after SIGTERM");
        assert!(status.success(), "picket stopped with {status}");
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let mut next = Server::start_in(&self.data_dir, &args);
        next._dir = self._dir.take();
        next
    }

    /// The pid of the `picket start` watchdog.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// `picket status --json`, retried while the server (re)starts.
    pub fn status(&self) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.cli(&["status", "--json"]);
            if out.status.success() {
                return serde_json::from_slice(&out.stdout).expect("status JSON");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no status within 30 s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `picket --data-dir DIR ARGS…`.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.data_dir, args)
    }

    /// Runs a CLI command with `--json` and parses its output; panics on failure.
    pub fn json(&self, args: &[&str]) -> Value {
        cli_json(&self.data_dir, args)
    }

    /// `picket token create ARGS…`: the new token's secret.
    pub fn token(&self, args: &[&str]) -> String {
        let mut full = vec!["token", "create"];
        full.extend_from_slice(args);
        self.json(&full)["token"]
            .as_str()
            .expect("a token")
            .to_string()
    }

    /// The DSN of the project the first start made (`default`).
    pub fn dsn(&self) -> String {
        self.json(&["project", "list"])[0]["dsn"]
            .as_str()
            .expect("a DSN")
            .to_string()
    }

    /// Creates a project and returns its `project create --json` answer.
    pub fn project(&self, name: &str) -> Value {
        self.json(&["project", "create", name])
    }

    /// Stops the server with SIGTERM and returns its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        wait_timeout(&mut child, Duration::from_secs(20))
            .expect("picket did not stop within 20 s after SIGTERM")
    }

    /// Stops the server with SIGTERM and keeps its data directory: the directory that owns
    /// it (deleted when that is dropped), if the server made it.
    pub fn stop_keeping_data(mut self) -> Option<tempfile::TempDir> {
        let dir = self._dir.take();
        let status = self.stop();
        assert!(status.success(), "picket stopped with {status}");
        dir
    }

    /// A crash: the serving process is killed with SIGKILL while its watchdog is stopped (so
    /// nothing restarts it or shuts it down cleanly), then the watchdog too. The data
    /// directory is kept: the directory that owns it, if the server made it.
    pub fn crash(mut self) -> Option<tempfile::TempDir> {
        let serving = self.status()["pid"].as_u64().expect("a pid") as u32;
        let mut child = self.child.take().expect("running");
        signal(child.id(), "STOP");
        signal(serving, "KILL");
        let _ = child.kill();
        let _ = child.wait();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while Path::new(&format!("/proc/{serving}")).exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not die"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self._dir.take()
    }

    /// Kills the server with SIGKILL.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(&self.stderr_log);
    }
}

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

/// Runs `picket start` where it is expected to give up (a bad or busy data directory) and
/// returns its output once it has exited.
pub fn start_expecting_exit(data_dir: &Path) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["start", "--http-addr", "127.0.0.1:0", "--udp-addr", ""])
        .env_remove("PICKET_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run picket start")
}

pub fn cli(data_dir: &Path, args: &[&str]) -> Output {
    cli_with(data_dir, args, &[])
}

/// [`cli`] with environment variables set for the command (its configuration, say).
pub fn cli_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("PICKET_CONFIG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run picket")
}

pub fn cli_json(data_dir: &Path, args: &[&str]) -> Value {
    cli_json_with(data_dir, args, &[])
}

/// [`cli_json`] with environment variables set for the command.
pub fn cli_json_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut full: Vec<&str> = args.to_vec();
    full.push("--json");
    let out = cli_with(data_dir, &full, env);
    assert!(
        out.status.success(),
        "picket {full:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// The project root, where `scripts/test` installs the clients.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's Python with sentry-sdk and raven; fails the test (never skips it) when missing.
pub fn python() -> PathBuf {
    let python = root().join(".test-env/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/test, which installs the test clients",
        python.display()
    );
    python
}

pub fn node_clients() -> PathBuf {
    let dir = root().join("tests/clients");
    assert!(
        dir.join("node_modules/@sentry/node").exists(),
        "@sentry/node is missing: run ./scripts/test, which installs the test clients"
    );
    dir
}

/// Runs a client script with `SENTRY_DSN` set and parses the JSON it prints.
pub fn run_client(program: &Path, script: &Path, dsn: &str) -> Value {
    let out = Command::new(program)
        .arg(script)
        .env("SENTRY_DSN", dsn)
        .current_dir(script.parent().unwrap_or(Path::new(".")))
        .output()
        .expect("run client");
    assert!(
        out.status.success(),
        "{} failed: {}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{} printed no JSON ({e}): {}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs one of the Node clients with arguments and environment; the JSON it prints.
pub fn run_node(script: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let dir = node_clients();
    let out = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .envs(env.iter().copied())
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the client's JSON")
}

/// The stored event (normalized) for an id, or None when it is not stored.
pub fn stored_event(data_dir: &Path, project: &str, event_id: &str) -> Option<Value> {
    let out = cli(data_dir, &["event", project, event_id, "--json"]);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("JSON event"))
}

/// An HTTP client that reports error statuses instead of failing on them.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// The store endpoint of a project, with its key in the query string.
pub fn store_url(server: &Server, project: &Value) -> String {
    format!(
        "{}/api/{}/store/?sentry_key={}",
        server.url,
        project["id"],
        project["public_key"].as_str().unwrap()
    )
}

/// Runs a Python snippet with the test venv and `SENTRY_DSN` set; fails the test if it fails.
/// Returns what it printed.
pub fn run_python(script: &str, dsn: &str) -> String {
    python_with(&[std::ffi::OsStr::new("-c"), script.as_ref()], dsn)
}

/// Runs a Python script file (whose frames then carry source lines) the same way.
pub fn run_python_file(script: &Path, dsn: &str) -> String {
    python_with(&[script.as_os_str()], dsn)
}

fn python_with(args: &[&std::ffi::OsStr], dsn: &str) -> String {
    let out = Command::new(python())
        .args(args)
        .env("SENTRY_DSN", dsn)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loopback port free right now, for servers a test restarts on the same address.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// `picket createsuperuser --email EMAIL --password-stdin` on a data directory (through the
/// server's control socket when one runs); returns its output.
pub fn create_admin(data_dir: &Path, email: &str, password: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "createsuperuser",
            "--email",
            email,
            "--password-stdin",
            "--update",
        ])
        .env_remove("PICKET_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run picket");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("createsuperuser");
    assert!(
        out.status.success(),
        "createsuperuser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The sum of a number field (`count`, `stored`) over issues as `issues --json` lists them.
pub fn sum<'a>(issues: impl IntoIterator<Item = &'a Value>, field: &str) -> u64 {
    issues
        .into_iter()
        .map(|i| {
            i[field]
                .as_u64()
                .unwrap_or_else(|| panic!("no {field} in {i}"))
        })
        .sum()
}

/// Unix seconds of an RFC 3339 time, as picket prints them.
pub fn parse_time(text: &str) -> f64 {
    let t = chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    t.timestamp_millis() as f64 / 1000.0
}

/// Makes an admin and signs in through the UI's form; the session's cookie header.
pub fn sign_in(server: &Server, email: &str, password: &str) -> String {
    create_admin(&server.data_dir, email, password);
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .new_agent();
    let mut form = agent.get(&format!("{}/login", server.url)).call().unwrap();
    let cookies: Vec<String> = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect();
    let page = form.body_mut().read_to_string().unwrap();
    let at = page.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = page[at..].split('"').next().unwrap();
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf", csrf),
            ("next", "/"),
            ("email", email),
            ("password", password),
        ])
        .finish();
    let resp = agent
        .post(&format!("{}/login", server.url))
        .header("cookie", &cookies.join("; "))
        .header("content-type", "application/x-www-form-urlencoded")
        .send(body.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "sign-in failed");
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .chain(cookies)
        .collect::<Vec<_>>()
        .join("; ")
}

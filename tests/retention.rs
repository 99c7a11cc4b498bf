//! Retention: the count caps and the age limit keep the file bounded while every issue keeps
//! its count, its first and its latest event, and rare issues keep their history.

mod common;

use std::time::{Duration, Instant};

use common::{Server, stored_event};
use serde_json::{Value, json};

fn issues(server: &Server, project: &str) -> Vec<Value> {
    server
        .json(&["issues", project, "--status", "all"])
        .as_array()
        .unwrap()
        .clone()
}

/// Every issue's first and latest events can still be fetched.
fn assert_first_and_latest_kept(server: &Server, issues: &[Value]) {
    for issue in issues {
        for which in ["first_event", "last_event"] {
            let id = issue[which].as_str().unwrap();
            assert!(
                stored_event(&server.data_dir, "default", id).is_some(),
                "{which} of {} was evicted",
                issue["title"]
            );
        }
    }
}

fn by_title<'a>(issues: &'a [Value], needle: &str) -> &'a Value {
    issues
        .iter()
        .find(|i| i["title"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no issue titled {needle}: {issues:?}"))
}

#[test]
fn a_flood_is_thinned_to_the_project_cap_and_rare_issues_keep_their_history() {
    let server = Server::start_with_config(
        "[retention]\nmax_events_per_project = 60\nmax_events_per_issue = 0\n",
        &[],
    );
    let project = server.json(&["project", "list"])[0].clone();
    let script = r#"
import os, sentry_sdk
sentry_sdk.init(dsn=os.environ["SENTRY_DSN"], send_client_reports=False, default_integrations=False)
def flood(n):
    raise ValueError("flood %d" % n)
for n in range(300):
    try:
        flood(n)
    except ValueError:
        sentry_sdk.capture_exception()
    if n % 40 == 39:
        sentry_sdk.flush(timeout=10)
    if n % 60 == 0:
        for rare in ("alpha", "beta", "gamma"):
            sentry_sdk.capture_message("rare %s event" % rare)
sentry_sdk.flush(timeout=10)
"#;
    common::run_python(script, project["dsn"].as_str().unwrap());

    let list = issues(&server, "default");
    let stored = common::sum(&list, "stored");
    assert!(stored <= 60, "{stored} events stored over a cap of 60");
    let flood = by_title(&list, "ValueError");
    assert_eq!(flood["count"], 300, "eviction must not change the count");
    assert!(flood["stored"].as_u64().unwrap() < 60);
    for rare in ["alpha", "beta", "gamma"] {
        let issue = by_title(&list, rare);
        assert_eq!(issue["count"], 5);
        assert_eq!(issue["stored"], 5, "a rare issue keeps its whole history");
    }
    assert_first_and_latest_kept(&server, &list);
    for issue in &list {
        let listed = server.json(&["events", "default", &issue["id"].to_string()]);
        assert_eq!(json!(listed.as_array().unwrap().len()), issue["stored"]);
    }
}

#[test]
fn a_project_can_have_its_own_cap() {
    let server = Server::start();
    let set = server.json(&["project", "retention", "default", "--max-events", "10"]);
    assert_eq!(set["max_events"], 10);
    let send = sender(&server);
    for n in 0..40 {
        send(&json!({"message": format!("capped {n}"), "tags": {"n": n}}).to_string());
    }
    let stored = common::sum(&issues(&server, "default"), "stored");
    assert!(
        stored <= 10,
        "{stored} stored over the project's own cap of 10"
    );
    let back = server.json(&["project", "retention", "default", "--default"]);
    assert_eq!(back["max_events"], Value::Null);
}

#[test]
fn a_cap_lowered_far_below_what_a_project_holds_is_reached_over_the_next_events() {
    let server = Server::start();
    // More events than one commit evicts, in three issues.
    let event = |issue: u32, n: &str| {
        json!({"message": format!("event {n}"), "fingerprint": [format!("issue {issue}")]})
            .to_string()
    };
    std::thread::scope(|s| {
        for t in 0..4 {
            let send = sender(&server);
            s.spawn(move || {
                for n in 0..350 {
                    send(&event(n % 3, &format!("{t}-{n}")));
                }
            });
        }
    });
    let stored = |server: &Server| common::sum(&issues(server, "default"), "stored");
    assert_eq!(stored(&server), 1400);
    server.json(&["project", "retention", "default", "--max-events", "10"]);

    // The next event is answered at once; its commit evicts only part of the excess.
    let send = sender(&server);
    send(&event(0, "after"));
    let after_one = stored(&server);
    assert!(
        (11..1400).contains(&after_one),
        "{after_one} stored after the first event under the new cap of 10"
    );
    // The following ones bring it down to the cap; counts stay whole.
    send(&event(1, "after that"));
    let list = issues(&server, "default");
    let stored_now = common::sum(&list, "stored");
    assert!(stored_now <= 10, "{stored_now} stored over the cap of 10");
    assert_eq!(common::sum(&list, "count"), 1402);
    assert_first_and_latest_kept(&server, &list);
}

#[test]
fn the_per_issue_cap_applies_in_the_same_commit() {
    let server = Server::start_with_config("[retention]\nmax_events_per_issue = 5\n", &[]);
    let project = server.json(&["project", "list"])[0].clone();
    let agent = common::agent();
    let url = common::store_url(&server, &project);
    for n in 0..20 {
        let body = json!({"message": format!("noisy {n} again")}).to_string();
        assert_eq!(
            agent.post(&url).send(body.as_bytes()).unwrap().status(),
            200
        );
    }
    let list = issues(&server, "default");
    assert_eq!(
        (list[0]["count"].as_u64(), list[0]["stored"].as_u64()),
        (Some(20), Some(5))
    );
}

#[test]
fn events_older_than_max_age_disappear_and_new_ones_stay() {
    let server = Server::start_with_config("[retention]\nmax_age = \"3s\"\n", &[]);
    let project = server.json(&["project", "list"])[0].clone();
    let agent = common::agent();
    let url = common::store_url(&server, &project);
    let send = |text: &str| {
        for n in 0..5 {
            let body = json!({"message": format!("{text} {n}")}).to_string();
            assert_eq!(
                agent.post(&url).send(body.as_bytes()).unwrap().status(),
                200
            );
        }
    };
    send("old batch");
    std::thread::sleep(Duration::from_millis(3500));
    send("new batch");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = issues(&server, "default");
        let old = by_title(&list, "old batch");
        if old["stored"] == 2 {
            assert_eq!(old["count"], 5);
            assert_eq!(
                by_title(&list, "new batch")["stored"],
                5,
                "new events must stay"
            );
            for which in ["first_event", "last_event"] {
                assert!(
                    stored_event(&server.data_dir, "default", old[which].as_str().unwrap())
                        .is_some()
                );
            }
            break;
        }
        assert!(Instant::now() < deadline, "old events not expired: {old}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_online_backup_holds_every_event_acknowledged_before_it_began() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let server = Server::start();
    let project = server.json(&["project", "list"])[0].clone();
    let url = common::store_url(&server, &project);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (acked, stop) = (acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let agent = common::agent();
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let body = json!({"message": format!("steady {n}")}).to_string();
                if let Ok(mut resp) = agent.post(&url).send(body.as_bytes())
                    && resp.status() == 200
                {
                    let v: Value =
                        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
                    acked
                        .lock()
                        .unwrap()
                        .push(v["id"].as_str().unwrap().to_string());
                }
                n += 1;
            }
        })
    };
    while acked.lock().unwrap().len() < 100 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let before: Vec<String> = acked.lock().unwrap().clone();
    let dest = tempfile::tempdir().unwrap();
    let backup_dir = dest.path().join("backup");
    let out = server.cli(&["backup", backup_dir.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["events"].as_u64().unwrap() >= before.len() as u64);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    sender.join().unwrap();
    assert!(
        acked.lock().unwrap().len() > before.len(),
        "the server kept serving during the backup"
    );

    // The copy is a data directory picket opens directly, and it checks out.
    let check = common::cli(&backup_dir, &["check", "--json"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let report: Value = serde_json::from_slice(&check.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let issues = common::cli_json(&backup_dir, &["issues", "default"]);
    let events = common::cli_json(
        &backup_dir,
        &["events", "default", &issues[0]["id"].to_string()],
    );
    let in_backup: std::collections::BTreeSet<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    let missing: Vec<&String> = before
        .iter()
        .filter(|id| !in_backup.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events missing from the backup",
        missing.len()
    );

    // A second backup into the same place is refused; an unwritable place leaves nothing.
    let again = server.cli(&["backup", backup_dir.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let bad = server.cli(&["backup", "/proc/picket-backup"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/proc/picket-backup"));
    // check refuses the live file rather than reading it under the server.
    let live = server.cli(&["check"]);
    assert_eq!(live.status.code(), Some(1));
    let said = String::from_utf8_lossy(&live.stderr);
    assert!(
        said.contains("in use") && said.contains("stop the server first"),
        "{said}"
    );
    assert!(
        !said.contains("while it runs"),
        "check cannot run through the socket: {said}"
    );
}

/// A size-limited tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        std::fs::create_dir(&path).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test mounts a tmpfs (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { path, _dir: dir }
    }
}

impl SmallDisk {
    /// Starts picket with its data directory on this disk and `toml` as its config.
    fn serve(&self, toml: &str) -> Server {
        let config = self._dir.path().join("picket.toml");
        std::fs::write(&config, format!("udp_addr = \"\"\n{toml}")).unwrap();
        Server::start_in(
            &self.path.join("data"),
            &["--config", config.to_str().unwrap()],
        )
    }
}

/// `len` characters of base32 noise from a xorshift state: text zstd cannot shrink much.
fn noise(seed: &mut u64, len: usize) -> String {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            char::from(b"0123456789abcdefghijklmnopqrstuv"[(*seed % 32) as usize])
        })
        .collect()
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

#[test]
fn intake_refuses_before_the_disk_fills_and_resumes_when_space_returns() {
    let disk = SmallDisk::mount("64m");
    let server = disk.serve("[retention]\nmin_free_disk = \"16MiB\"\n");
    let filler = disk.path.join("filler");
    std::fs::write(&filler, vec![7u8; 36 << 20]).unwrap();

    let project = server.json(&["project", "list"])[0].clone();
    let url = common::store_url(&server, &project);
    let agent = common::agent();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut acked = Vec::new();
    let mut refused = None;
    for n in 0..200 {
        // Strings are cut at max_string_length, so the bulk comes as many of them.
        let extra: serde_json::Map<String, Value> = (0..20)
            .map(|i| (format!("blob{i}"), json!(noise(&mut seed, 15_000))))
            .collect();
        let body = json!({"message": format!("bulky {n}"), "extra": extra}).to_string();
        let mut resp = agent.post(&url).send(body.as_bytes()).unwrap();
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.body_mut().read_to_string().unwrap();
        match status {
            200 => acked.push(
                serde_json::from_str::<Value>(&text).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            ),
            429 => {
                refused = Some((text, retry));
                break;
            }
            other => panic!("unexpected {other}: {text}"),
        }
    }
    let (detail, retry) = refused.expect("intake never refused on a nearly full disk");
    assert!(detail.contains("min_free_disk"), "{detail}");
    assert!(retry.unwrap().parse::<u64>().is_ok());
    assert!(!acked.is_empty());
    assert!(server.status()["rejected"]["disk_full"].as_u64().unwrap() >= 1);
    let issues = server.json(&["issues", "default"]);
    let events = server.json(&["events", "default", &issues[0]["id"].to_string()]);
    let stored: std::collections::BTreeSet<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert!(
        acked.iter().all(|id| stored.contains(id.as_str())),
        "an acknowledged event was lost"
    );

    std::fs::remove_file(&filler).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let resp = agent
        .post(&url)
        .send(&br#"{"message":"room again"}"#[..])
        .unwrap();
    assert_eq!(resp.status(), 200, "intake resumes once space is freed");
    drop(server);
}

fn sender(server: &Server) -> impl Fn(&str) -> String + use<> {
    let project = server.json(&["project", "list"])[0].clone();
    let url = common::store_url(server, &project);
    let agent = common::agent();
    move |body: &str| {
        let mut resp = agent.post(&url).send(body.as_bytes()).unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        v["id"].as_str().unwrap().to_string()
    }
}

#[test]
fn deleting_issues_and_projects() {
    let server = Server::start();
    let send = sender(&server);
    let doomed: Vec<String> = (0..3)
        .map(|n| send(&json!({"message": format!("doomed {n}")}).to_string()))
        .collect();
    send(r#"{"message":"keeper"}"#);
    // Without --yes nothing goes, and the answer says what would.
    let asked = server.cli(&["issue", "delete", "default", "1"]);
    assert_eq!(asked.status.code(), Some(1));
    let said = String::from_utf8_lossy(&asked.stderr);
    assert!(
        said.contains("3 events") && said.contains("--yes"),
        "{said}"
    );
    assert_eq!(issues(&server, "default").len(), 2);
    let out = server.cli(&["issue", "delete", "default", "1", "--yes", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = issues(&server, "default");
    assert_eq!(list.len(), 1);
    assert!(list[0]["title"].as_str().unwrap().contains("keeper"));
    for id in &doomed {
        assert!(
            stored_event(&server.data_dir, "default", id).is_none(),
            "event {id} of a deleted issue"
        );
    }
    // The same fingerprint makes a new issue now.
    send(r#"{"message":"doomed 9"}"#);
    assert_eq!(issues(&server, "default").len(), 2);

    let unconfirmed = server.cli(&["project", "delete", "default"]);
    assert_eq!(unconfirmed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    let key = server.json(&["project", "list"])[0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let out = server.cli(&["project", "delete", "default", "--yes", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.json(&["project", "list"]), json!([]));
    let agent = common::agent();
    let resp = agent
        .post(&format!("{}/api/1/store/?sentry_key={key}", server.url))
        .send(&b"{}"[..])
        .unwrap();
    assert_eq!(resp.status(), 403, "a deleted project's key is refused");
}

#[test]
fn under_a_steady_flow_with_retention_the_file_reaches_a_plateau() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("picket.toml");
    std::fs::write(
        &config,
        "udp_addr = \"\"\n[retention]\nmax_events_per_project = 300\n",
    )
    .unwrap();
    let server = Server::start_in(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let send = sender(&server);
    let file = server.data_dir.join("picket.redb");
    let mut n = 0;
    let mut round = |count: usize| {
        for _ in 0..count {
            let pad: String = (0..40)
                .map(|i| format!("{:x}", (n * 7919 + i * 104_729) % 65_521))
                .collect();
            send(
                &json!({"message": format!("flow {} {pad}", n % 5), "extra": {"pad": pad}})
                    .to_string(),
            );
            n += 1;
        }
        std::fs::metadata(&file).unwrap().len()
    };
    // Past the first compression-dictionary training (at 1000 arrivals) and the cap, so the
    // two measured rounds see the same steady state.
    round(1_100);
    let first = round(900);
    let second = round(900);
    let growth = second as f64 / first as f64 - 1.0;
    eprintln!(
        "plateau: {first} bytes after 2000 events, {second} after 2900 ({:.1}% growth)",
        growth * 100.0
    );
    assert!(
        growth <= 0.10,
        "the file grew {:.1}% from {first} to {second} bytes",
        growth * 100.0
    );
    let stored = common::sum(&issues(&server, "default"), "stored");
    assert!(stored <= 300);

    // Offline compaction shrinks the file to what it holds, and the data stays.
    let data = server.data_dir.clone();
    assert!(server.stop().success());
    let out = common::cli(&data, &["compact", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sizes: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        sizes["bytes_after"].as_u64() <= sizes["bytes_before"].as_u64(),
        "{sizes}"
    );
    let check: Value =
        serde_json::from_slice(&common::cli(&data, &["check", "--json"]).stdout).unwrap();
    assert_eq!(check["ok"], true);
    assert_eq!(check["events"].as_u64(), Some(stored));
}

#[test]
fn the_file_stays_within_max_disk_and_counts_stay_whole() {
    const BUDGET: u64 = 4_000_000;
    let server = Server::start_with_config(
        "[retention]\nmax_disk = \"4MB\"\nmax_events_per_project = 0\nmax_events_per_issue = 0\n",
        &[],
    );
    let send = sender(&server);
    let file = server.data_dir.join("picket.redb");
    let mut largest = 0;
    let mut sent = 0u64;
    for n in 0..3000u64 {
        // About 2 KB stored each (random hex halves under zstd): 6 MB in all, over the budget.
        let pad: String = (0..256)
            .map(|i| {
                format!(
                    "{:016x}",
                    (n * 1_000_003 + i).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                )
            })
            .collect();
        send(&json!({"message": format!("flood {}", n % 4), "extra": {"pad": pad}}).to_string());
        sent += 1;
        if n % 1000 == 0 {
            send(r#"{"message":"rare event"}"#);
        }
        largest = largest.max(std::fs::metadata(&file).unwrap().len());
    }
    eprintln!("max_disk: the file peaked at {largest} bytes for a budget of {BUDGET}");
    assert!(largest <= BUDGET, "the file reached {largest} bytes");
    let status = server.json(&["status"]);
    assert!(
        status["events"]["disk_cap"].as_u64().is_some(),
        "the budget should be capping the stored events: {status}"
    );
    let list = issues(&server, "default");
    let stored = common::sum(&list, "stored");
    let flood = list
        .iter()
        .filter(|i| i["title"].as_str().unwrap().contains("flood"));
    let counted = common::sum(flood, "count");
    assert_eq!(counted, sent, "eviction must not change the counts");
    eprintln!(
        "max_disk: {stored} of {sent} events stored, cap {}",
        status["events"]["disk_cap"]
    );
    assert!(stored < sent, "{stored} of {sent} events still stored");
    let rare = by_title(&list, "rare");
    assert_eq!(rare["stored"], 3, "a rare issue keeps its whole history");

    // The file's measured capacity is kept: a restart does not cost another round of eviction.
    let server = server.restart();
    let send = sender(&server);
    send(r#"{"message":"after restart"}"#);
    let again = common::sum(&issues(&server, "default"), "stored");
    assert!(
        again * 10 >= stored * 9,
        "{again} events stored after a restart, {stored} before"
    );
    assert!(std::fs::metadata(&file).unwrap().len() <= BUDGET);
    assert_first_and_latest_kept(&server, &list);
}

#[test]
fn a_full_disk_makes_the_writer_wait_and_it_goes_on_once_space_is_freed() {
    let disk = SmallDisk::mount("48m");
    // No free-space guard: the writer itself meets ENOSPC.
    let server = disk.serve("[retention]\nmin_free_disk = \"0\"\n");
    let pid = server.status()["pid"].as_u64().unwrap();
    // Fill what the data file leaves of the disk.
    let filler = disk.path.join("filler");
    {
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![7u8; 1 << 20];
        while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    }
    let project = server.json(&["project", "list"])[0].clone();
    let url = common::store_url(&server, &project);
    // Bulky events until the test says stop: the one in flight when the disk fills waits
    // with the writer.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let sender = std::thread::spawn(move || {
        let agent = common::agent();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut acked = Vec::new();
        for n in 0..400 {
            if stopping.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let extra: serde_json::Map<String, Value> = (0..20)
                .map(|i| (format!("blob{i}"), json!(noise(&mut seed, 15_000))))
                .collect();
            let body = json!({"message": format!("bulky {n}"), "extra": extra}).to_string();
            let Ok(mut resp) = agent.post(&url).send(body.as_bytes()) else {
                continue;
            };
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            if resp.status() == 200 {
                let id: Value = serde_json::from_str(&text).unwrap();
                acked.push(id["id"].as_str().unwrap().to_string());
            }
        }
        acked
    });
    // The server says so: /health 503 and `picket status` shows since when.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let agent = common::agent();
    let health = loop {
        let mut resp = agent.get(&format!("{}/health", server.url)).call().unwrap();
        if resp.status() == 503 {
            break resp.body_mut().read_to_string().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the disk never filled"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(health.contains("disk is full"), "{health}");
    let status = server.status();
    assert!(status["disk_full_since"].is_string(), "{status}");
    let text = String::from_utf8_lossy(&server.cli(&["status"]).stdout).into_owned();
    assert!(text.contains("WAITING FOR DISK SPACE"), "{text}");

    // Space is freed: the waiting commit goes through, and so do new events, without a
    // restart, and nothing acknowledged is lost.
    std::fs::remove_file(&filler).unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked = sender.join().unwrap();
    // At least the event that was waiting with the writer was acknowledged, once it was
    // durable.
    assert!(!acked.is_empty(), "no event was acknowledged");
    let resp = agent
        .post(&common::store_url(&server, &project))
        .send(&br#"{"message":"room again"}"#[..])
        .unwrap();
    assert_eq!(resp.status(), 200, "events are accepted again");
    assert_eq!(server.status()["pid"].as_u64().unwrap(), pid, "no restart");
    assert!(server.status()["disk_full_since"].is_null());
    let mut stored = std::collections::BTreeSet::new();
    for issue in server.json(&["issues", "default"]).as_array().unwrap() {
        for e in server
            .json(&["events", "default", &issue["id"].to_string()])
            .as_array()
            .unwrap()
        {
            stored.insert(e["event_id"].as_str().unwrap().to_string());
        }
    }
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged events lost: {lost:?}");
    drop(server);
}

#[test]
fn high_cardinality_tags_stay_within_the_disk_budget_and_a_killed_backup_leaves_nothing() {
    const BUDGET: u64 = 20_000_000;
    let server = Server::start_with_config("[retention]\nmax_disk = \"20MB\"\n", &[]);
    let send = sender(&server);
    // 1,000 events of two issues, each with 200 tags whose values are all new (kept whole,
    // their 200,000 tag rows alone would take several times the budget).
    for n in 0..1000u64 {
        let tags: serde_json::Map<String, Value> = (0..200)
            .map(|k| {
                let value = format!(
                    "session-{n}-{k}-{:032x}",
                    (n * 7919 + k).wrapping_mul(0x9E37_79B9)
                );
                (format!("tag{k}"), json!(value))
            })
            .collect();
        send(&json!({"message": format!("tagged {}", n % 2), "tags": tags}).to_string());
    }
    let file = server.data_dir.join("picket.redb");
    let size = std::fs::metadata(&file).unwrap().len();
    eprintln!("high-cardinality tags: the file is {size} bytes for a budget of {BUDGET}");
    assert!(size <= BUDGET, "the file grew to {size} bytes");
    let list = issues(&server, "default");
    assert_eq!(common::sum(&list, "count"), 1000, "every event is counted");

    // The issue page shows its tags bounded: a page of kilobytes, not megabytes.
    let cookies = common::sign_in(&server, "admin@example.com", "a long enough password");
    let issue = list[0]["id"].to_string();
    let started = std::time::Instant::now();
    let mut resp = common::agent()
        .get(&format!("{}/projects/default/issues/{issue}/", server.url))
        .header("cookie", &cookies)
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let page = resp
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .unwrap();
    eprintln!(
        "high-cardinality tags: the issue page is {} bytes, served in {:?}",
        page.len(),
        started.elapsed()
    );
    assert!(
        page.len() < 1 << 20,
        "the issue page is {} bytes",
        page.len()
    );
    assert!(
        page.contains("(other)"),
        "values past the cap are shown as (other)"
    );

    // A backup killed midway leaves nothing in its destination; one that finished is whole.
    let data_dir = server.data_dir.clone();
    let _kept = server.stop_keeping_data();
    assert!(data_dir.join("picket.redb").exists());
    let dest = tempfile::tempdir().unwrap();
    for delay_ms in [5, 20, 50, 100, 200] {
        let target = dest.path().join(format!("after-{delay_ms}ms"));
        let mut backup = std::process::Command::new(common::BIN)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("backup")
            .arg(&target)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = backup.kill();
        let _ = backup.wait();
        let left: Vec<String> = std::fs::read_dir(&target)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        match left.as_slice() {
            [] => {}
            [one] if one == "picket.redb" => {
                let check = common::cli(&target, &["check"]);
                assert!(check.status.success(), "a finished backup fails its check");
            }
            other => panic!("a killed backup left {other:?}"),
        }
    }
}

#[test]
fn a_damaged_data_file_stops_picket_with_78_and_check_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(&dir.path().join("data"), &[]);
    let send = sender(&server);
    for n in 0..400u64 {
        let pad: String = (0..64)
            .map(|i| format!("{:016x}", (n * 131 + i).wrapping_mul(0x9E37_79B9_7F4A_7C15)))
            .collect();
        send(&json!({"message": format!("filler {}", n % 5), "extra": {"pad": pad}}).to_string());
    }
    let data_dir = server.data_dir.clone();
    assert!(server.stop().success());
    // 64 KiB of noise in the middle of the file, as a failing disk or a stray write would.
    let file = data_dir.join("picket.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for b in &mut bytes[middle..middle + 65536] {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        *b = seed as u8;
    }
    std::fs::write(&file, &bytes).unwrap();

    // `picket start` gives up with 78 at once, saying what to do, instead of restarting.
    let started = std::time::Instant::now();
    let out = common::start_expecting_exit(&data_dir);
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{said}");
    assert!(took < Duration::from_secs(10), "gave up after {took:?}");
    assert!(
        said.contains("damaged") && said.contains("picket check") && said.contains("backup"),
        "{said}"
    );
    assert!(
        !said.contains("restarting in"),
        "the watchdog restarted it: {said}"
    );
    // `picket check` says the same, and fails.
    let check = common::cli(&data_dir, &["check"]);
    assert_ne!(check.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&check.stderr).contains("damaged"));
}

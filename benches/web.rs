//! Server-side render time of the heaviest pages: the issue list of a project with 100,000
//! issues and 1,000,000 events (plain, searched with a tag and a free-text term, filtered by
//! environment and release with the counts of that slice; target: p50 under 50 ms), the page
//! of an issue with 10,000 stored events and its events searched by user; and the cost of the
//! live-update endpoint the list polls (target: under 2 ms median when nothing changed).
//! Fills a fresh data directory through the real writer (events spread over two environments,
//! three releases, 5,000 users and three regions, each message naming its order number), then
//! renders each page many times and prints the median and p99, with the cache cold (a commit
//! just happened) and warm. Run: `cargo bench --bench web` (PICKET_BENCH_ISSUES,
//! PICKET_BENCH_EVENTS, PICKET_BENCH_TOTAL and PICKET_BENCH_RUNS change the defaults).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use picket::config::Config;
use picket::manage::{Handle, Writes};
use picket::pipeline::WriterConfig;
use picket::store::key_cache::KeyCache;
use picket::store::{self, projects, users};
use picket::web::{Visitor, Web, pages};
use support::env_or;

mod support;

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort();
    times[((times.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut times: Vec<Duration>) {
    println!(
        "{name:<52} median {:>8.3} ms   p99 {:>8.3} ms   ({} runs)",
        percentile(&mut times, 0.5).as_secs_f64() * 1e3,
        percentile(&mut times, 0.99).as_secs_f64() * 1e3,
        times.len()
    );
}

fn main() {
    // `cargo test --all-targets` runs this too (without --bench): then a small smoke run.
    let Some(benching) = support::benching() else {
        return;
    };
    let issues: u64 = env_or(
        "PICKET_BENCH_ISSUES",
        if benching { 100_000 } else { 2_000 },
    );
    let events_of_one: u64 = env_or("PICKET_BENCH_EVENTS", if benching { 10_000 } else { 200 });
    let total: u64 = env_or(
        "PICKET_BENCH_TOTAL",
        if benching { 1_000_000 } else { 6_000 },
    )
    .max(issues + events_of_one);
    let runs: usize = env_or("PICKET_BENCH_RUNS", if benching { 30 } else { 3 });
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(store::open(dir.path()).unwrap());
    let project = {
        let txn = db.begin_write().unwrap();
        let (p, _) = projects::create(&txn, "bench", picket::time::now()).unwrap();
        users::create_superuser(&txn, "admin@example.com", "x", 0.0, false).unwrap();
        txn.commit().unwrap();
        p
    };
    let config = WriterConfig {
        batch_max: 512,
        issue_cache: 10_000,
        quick_repair: true,
        ..Default::default()
    };
    let (queue, writer) = support::writer(db.clone(), config);
    let template = support::sample_event();
    // `kind(i)` names the issue of the i-th event.
    let event = |i: u64, kind: String| {
        let mut event = template.clone();
        event.event_id = picket::ids::EventId(((u128::from(i) << 64) | 0x3eb).to_be_bytes());
        event.received = picket::time::now();
        event.timestamp = event.received - (i % 72) as f64 * 3600.0;
        event.environment = Some(["production", "staging"][(i % 2) as usize].into());
        event.release = Some(format!("shop@1.{}", i % 3));
        event.tags = vec![("region".into(), ["eu", "us", "ap"][(i % 3) as usize].into())];
        event.user = Some(picket::event::model::User {
            id: Some((i % 5_000).to_string()),
            ..Default::default()
        });
        if let Some(ex) = event.exception.last_mut() {
            ex.ty = Some(kind);
            ex.value = Some(format!("order {i} failed"));
        }
        support::arrival(project.id, event)
    };
    let started = Instant::now();
    support::fill(&queue, total, 4096, 0, |i| {
        // One issue per event for the first part, then one busy issue, then the rest spread
        // over every issue.
        let kind = if i < issues {
            format!("BenchError{i}")
        } else if i < issues + events_of_one {
            "BusyError".to_string()
        } else {
            format!("BenchError{}", i % issues.max(1))
        };
        event(i, kind)
    });
    println!(
        "filled {} issues with {total} events (one with {events_of_one}) in {:.1} s",
        issues + 1,
        started.elapsed().as_secs_f64()
    );

    let config = Arc::new(Config::default());
    let handle = Handle {
        db: db.clone(),
        writes: Writes::Writer(queue.clone()),
        config,
        live: None,
        keys: Some(Arc::new(KeyCache::load(&db).unwrap())),
        symbolicator: None,
    };
    let web = Web::new(handle, queue.shared_stats());
    let admin = users::find(&db, "admin@example.com").unwrap().unwrap();
    let visitor = Visitor::signed_in(admin);
    let busy = issues + 1;
    let list: HashMap<String, String> = HashMap::new();
    let search: HashMap<String, String> = [("q".to_string(), "BenchError9999".to_string())].into();

    let time = |f: &dyn Fn()| {
        let t = Instant::now();
        f();
        t.elapsed()
    };
    let list_page = || {
        time(&|| {
            assert_eq!(
                pages::issue_list(&web, &visitor, "bench", &list).status(),
                200
            )
        })
    };
    let mut n = total;
    let mut event_arrives = || {
        // An event on an existing issue: the cached list is one issue stale.
        n += 1;
        let arrival = event(n, format!("BenchError{}", n % issues.max(1)));
        queue
            .submit(arrival)
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
    };
    let after_event: Vec<Duration> = (0..runs)
        .map(|_| {
            event_arrives();
            list_page()
        })
        .collect();
    report(
        &format!("issue list, {issues} issues, after an event"),
        after_event,
    );
    let after_admin: Vec<Duration> = (0..runs.min(10))
        .map(|_| {
            // A management write: the list is read whole again.
            queue.write(|_| Ok(())).unwrap();
            list_page()
        })
        .collect();
    report(
        &format!("issue list, {issues} issues, after a management write"),
        after_admin,
    );
    let after_triage: Vec<Duration> = (0..runs)
        .map(|_| {
            // A triage write (resolve, assign, comment): only its issue is read again.
            queue
                .write_issues(vec![(project.id, 1)], |_| Ok(()))
                .unwrap();
            list_page()
        })
        .collect();
    report(
        &format!("issue list, {issues} issues, after a triage write"),
        after_triage,
    );
    let warm: Vec<Duration> = (0..runs)
        .map(|_| {
            time(&|| {
                assert_eq!(
                    pages::issue_list(&web, &visitor, "bench", &list).status(),
                    200
                )
            })
        })
        .collect();
    report(&format!("issue list, {issues} issues, cached"), warm);
    let searched: Vec<Duration> = (0..runs)
        .map(|_| {
            time(&|| {
                assert_eq!(
                    pages::issue_list(&web, &visitor, "bench", &search).status(),
                    200
                )
            })
        })
        .collect();
    report("issue list, text search, cached", searched);
    // The list asked with these query parameters, `runs` times (the cache warm).
    let list_with = |pairs: &[(&str, String)]| -> Vec<Duration> {
        let q: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        (0..runs)
            .map(|_| {
                time(&|| assert_eq!(pages::issue_list(&web, &visitor, "bench", &q).status(), 200))
            })
            .collect()
    };
    report(
        "issue list, a tag and a free-text term",
        list_with(&[("q", format!("region:eu order {}", issues / 2))]),
    );
    report(
        "issue list, environment and release, scoped counts",
        list_with(&[
            ("environment", "production".into()),
            ("release", "shop@1.1".into()),
        ]),
    );
    report(
        "issue list, last 24 hours, one user",
        list_with(&[("period", "24h".into()), ("q", "user.id:42".into())]),
    );
    let page: Vec<Duration> = (0..runs)
        .map(|_| {
            time(&|| {
                let resp =
                    pages::issue_page(&web, &visitor, "bench", &busy.to_string(), &HashMap::new());
                assert_eq!(resp.status(), 200);
            })
        })
        .collect();
    report(&format!("issue page, {events_of_one} events"), page);
    let by_user: Vec<Duration> = (0..runs)
        .map(|_| {
            let q: HashMap<String, String> = [("q".to_string(), "user.id:4242".to_string())].into();
            time(&|| {
                let resp = pages::issue_events(&web, &visitor, "bench", &busy.to_string(), &q);
                assert_eq!(resp.status(), 200);
            })
        })
        .collect();
    report(
        &format!("an issue's events, {events_of_one}, by one user"),
        by_user,
    );

    // The live endpoint an open list polls: nothing changed since the page, then one event.
    let version = || {
        queue
            .stats()
            .version
            .load(std::sync::atomic::Ordering::Acquire)
    };
    let poll = |since: u64| {
        let asked: HashMap<String, String> = [("since".to_string(), since.to_string())].into();
        time(&|| assert_eq!(pages::live(&web, &visitor, "bench", &asked).status(), 200))
    };
    let unchanged: Vec<Duration> = (0..runs * 10).map(|_| poll(version())).collect();
    report(
        &format!("live updates, {issues} issues, nothing new"),
        unchanged,
    );
    let changed: Vec<Duration> = (0..runs)
        .map(|_| {
            let since = version();
            event_arrives();
            poll(since)
        })
        .collect();
    report(
        &format!("live updates, {issues} issues, one event"),
        changed,
    );
    drop(web);
    drop(queue);
    writer.join().unwrap();
}

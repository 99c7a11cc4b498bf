//! Symbolication under a burst: one large bundle (a ~5 MB source map with its sources), then
//! many events whose frames it maps, each at another function. Reports events/s mapped and
//! durable, the server's peak RSS, and how many times the map was parsed (once is the goal:
//! the parsed map is cached).
//!
//! Run: `cargo bench --bench sourcemaps`. PICKET_SOURCEMAP_EVENTS (1000) and
//! PICKET_SOURCEMAP_FUNCTIONS (25000, which makes a ~5 MB map) change the defaults.

mod support;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::env_or;

const DEBUG_ID: &str = "5b0e2c3a-9d1f-4e7a-8c6b-1a2b3c4d5e6f";
const SCRIPT: &str = "https://shop.example/static/big.min.js";
/// Clients sending at once.
const CLIENTS: usize = 16;

/// A minified file of `n` functions on one line, its source map (with `sourcesContent`), and
/// the column of each function's `throw` in the minified line.
fn big_bundle(n: usize) -> (String, Vec<u8>, Vec<u32>) {
    let mut original = String::new();
    let mut minified = String::new();
    let mut b = sourcemap::SourceMapBuilder::new(Some("big.min.js"));
    let src = b.add_source("webpack://shop/./src/generated.js");
    let mut columns = Vec::with_capacity(n);
    for i in 0..n {
        let line = original.lines().count() as u32;
        original.push_str(&format!(
            "// Checks order line {i} before it is billed.\nexport function checkLine{i}(order) {{\n  if (!order.lines[{i}]) {{\n    throw new Error(\"line {i} is missing\");\n  }}\n}}\n"
        ));
        let name = b.add_name(&format!("checkLine{i}"));
        let col = minified.len() as u32;
        b.add_raw(0, col, line + 1, 0, Some(src), Some(name), false);
        let throw_col = col + 20;
        b.add_raw(0, throw_col, line + 3, 4, Some(src), None, false);
        columns.push(throw_col);
        minified.push_str(&format!(
            "function f{i:x}(o){{if(!o.l[{i}])throw new Error(\"line {i} is missing\")}}"
        ));
    }
    b.set_source_contents(src, Some(&original));
    let mut map = Vec::new();
    b.into_sourcemap().to_writer(&mut map).unwrap();
    (minified, map, columns)
}

fn zip(minified: &str, map: &[u8]) -> Vec<u8> {
    let manifest = json!({"org": "picket", "project": "default", "files": {
        "_/_/big.min.js": {"url": "~/static/big.min.js", "type": "minified_source",
            "headers": {"debug-id": DEBUG_ID, "Sourcemap": "big.min.js.map"}},
        "_/_/big.min.js.map": {"url": "~/static/big.min.js.map", "type": "source_map",
            "headers": {"debug-id": DEBUG_ID}},
    }});
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in [
            ("manifest.json", manifest.to_string().into_bytes()),
            ("_/_/big.min.js", minified.as_bytes().to_vec()),
            ("_/_/big.min.js.map", map.to_vec()),
        ] {
            w.start_file(name, options).unwrap();
            w.write_all(&data).unwrap();
        }
        w.finish().unwrap();
    }
    out.into_inner()
}

fn main() {
    let Some(benching) = support::benching() else {
        return;
    };
    let events: usize = env_or("PICKET_SOURCEMAP_EVENTS", if benching { 1000 } else { 20 });
    let functions: usize = env_or(
        "PICKET_SOURCEMAP_FUNCTIONS",
        if benching { 25_000 } else { 500 },
    );
    let (minified, map, columns) = big_bundle(functions);
    let bundle = zip(&minified, &map);
    println!(
        "bundle: {functions} functions, source map {:.1} MB, minified {:.1} MB, zip {:.1} MB",
        map.len() as f64 / 1e6,
        minified.len() as f64 / 1e6,
        bundle.len() as f64 / 1e6
    );

    let picket = support::start_picket(&[]);
    let data = picket.data();
    let url = picket.url();
    let token = support::cli(&data, &["token", "create", "bench"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let project = support::cli(&data, &["project", "list"])[0].clone();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let checksum = picket::manage::artifacts::sha1_hex(&bundle);
    let chunk_size = picket::manage::artifacts::CHUNK_SIZE;
    let chunks: Vec<&[u8]> = bundle.chunks(chunk_size).collect();
    let names: Vec<String> = chunks
        .iter()
        .map(|c| picket::manage::artifacts::sha1_hex(c))
        .collect();
    for (chunk, name) in chunks.iter().zip(&names) {
        let boundary = "bench-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(chunk);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let resp = agent
            .post(format!("{}/api/0/organizations/picket/chunk-upload/", url))
            .header("Authorization", &format!("Bearer {token}"))
            .header(
                "Content-Type",
                &format!("multipart/form-data; boundary={boundary}"),
            )
            .send(body)
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let resp = agent
        .post(format!(
            "{}/api/0/organizations/picket/artifactbundle/assemble/",
            url
        ))
        .header("Authorization", &format!("Bearer {token}"))
        .send(json!({"checksum": checksum, "chunks": names, "projects": ["default"]}).to_string())
        .unwrap();
    let answer: Value = serde_json::from_str(&resp.into_body().read_to_string().unwrap()).unwrap();
    assert_eq!(answer["state"], "ok", "{answer}");

    let store = format!(
        "{}/api/{}/store/?sentry_key={}",
        url,
        project["id"],
        project["public_key"].as_str().unwrap()
    );
    let pid = picket.child.id();
    let started = Instant::now();
    // Several clients at once, as a burst from many browsers: each waits for its 200 (the
    // commit), so one alone would measure fsync latency, not symbolication.
    std::thread::scope(|s| {
        for client in 0..CLIENTS {
            let (agent, store, columns) = (agent.clone(), &store, &columns);
            s.spawn(move || {
                for i in (client..events).step_by(CLIENTS) {
                    let f = (i * 7919) % functions;
                    let body = json!({
                        "platform": "javascript",
                        "exception": {"values": [{"type": "Error", "value": format!("line {f} is missing"),
                            "stacktrace": {"frames": [{"filename": SCRIPT, "function": format!("f{f:x}"),
                                "lineno": 1, "colno": columns[f] + 1, "in_app": true}]}}]},
                        "debug_meta": {"images": [{"type": "sourcemap", "code_file": SCRIPT, "debug_id": DEBUG_ID}]},
                    });
                    let resp = agent.post(store).send(body.to_string()).unwrap();
                    assert_eq!(resp.status().as_u16(), 200);
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let peak_mb = support::status_kb(pid, "VmHWM") as f64 / 1024.0;
    std::thread::sleep(Duration::from_millis(100));
    let status = {
        let out = Command::new(env!("CARGO_BIN_EXE_picket"))
            .arg("--data-dir")
            .arg(&data)
            .args(["status", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let issues = support::cli(&data, &["issues", "default"]);
    let mapped = issues
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| {
            i["culprit"]
                .as_str()
                .is_some_and(|c| c.contains("generated.js"))
        })
        .count();
    println!(
        "{events} events from one bundle: {:.0} events/s mapped and durable ({CLIENTS} clients, each waiting for its 200), peak RSS {peak_mb:.1} MB, source maps parsed: {}, issues with mapped frames: {mapped} of {}",
        events as f64 / elapsed.as_secs_f64(),
        status["source_maps_parsed"],
        issues.as_array().unwrap().len()
    );
    assert_eq!(status["source_maps_parsed"], 1, "the map is parsed once");
    assert_eq!(
        mapped,
        issues.as_array().unwrap().len(),
        "every issue's frames are mapped"
    );
}

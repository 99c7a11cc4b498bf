//! Source maps end to end: a small app bundled and minified by esbuild, its maps injected and
//! uploaded by the real sentry-cli with a token from `picket token create`, loaded in Debian's
//! chromium with @sentry/browser; the stored event's frames are the original ones. Hostile
//! uploads are refused with a clear error and the server keeps serving.

mod common;

use common::Server;
use serde_json::{Value, json};

/// Runs the browser flow for a build variant; the id of the event it sent.
fn flow(server: &Server, token: &str, workdir: &std::path::Path, variant: &str) -> String {
    let dsn = server.dsn();
    let workdir = workdir.to_string_lossy();
    let printed = common::run_node(
        "sourcemap_flow.js",
        &[&workdir, variant],
        &[
            ("PICKET_URL", &server.url),
            ("SENTRY_DSN", &dsn),
            ("SENTRY_AUTH_TOKEN", token),
        ],
    );
    printed["event_id"].as_str().unwrap().to_string()
}

/// The stored event, waited for (the browser's flush returns once sent).
fn event(server: &Server, id: &str) -> Value {
    for _ in 0..100 {
        if let Some(ev) = common::stored_event(&server.data_dir, "default", id) {
            return ev;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("event {id} was not stored");
}

/// The innermost in-app frame of the event's exception.
fn top_frame(ev: &Value) -> Value {
    let frames = ev["exception"]["values"][0]["stacktrace"]["frames"]
        .as_array()
        .unwrap();
    frames
        .iter()
        .rev()
        .find(|f| f["in_app"] == true)
        .unwrap_or_else(|| panic!("no in-app frame: {ev}"))
        .clone()
}

fn assert_original(ev: &Value) {
    let top = top_frame(ev);
    assert_eq!(top["filename"], "src/cart.js", "{top}");
    assert_eq!(top["function"], "computeTotal", "{top}");
    assert_eq!(top["lineno"], 6, "{top}");
    assert_eq!(
        top["context_line"], "      throw new Error(\"price missing for \" + item.sku);",
        "{top}"
    );
    assert!(top["pre_context"].as_array().unwrap().len() >= 3, "{top}");
    let raw = &ev["exception"]["values"][0]["raw_stacktrace"]["frames"];
    assert!(
        raw.as_array().unwrap().iter().any(|f| f["filename"]
            .as_str()
            .is_some_and(|p| p.ends_with("/shop/static/app.js"))),
        "the minified frames are kept: {raw}"
    );
}

#[test]
fn minified_browser_errors_show_their_original_frames_and_group_across_builds() {
    let server = Server::start();
    let token = server.token(&["ci"]);
    let work = tempfile::tempdir().unwrap();

    let first = flow(&server, &token, work.path(), "debug-ids");
    let ev = event(&server, &first);
    assert_original(&ev);

    // Another build, minified differently, with new debug ids: the same issue.
    let second = flow(&server, &token, work.path(), "debug-ids-2");
    let ev2 = event(&server, &second);
    assert_original(&ev2);
    assert_eq!(ev["issue"], ev2["issue"], "two builds group into one issue");
    let issues = server.json(&["issues", "default"]);
    assert_eq!(issues.as_array().unwrap().len(), 1, "{issues}");
    assert_eq!(issues[0]["count"], 2);

    // Files without debug ids, matched by release and URL.
    let third = flow(&server, &token, work.path(), "release");
    let ev3 = event(&server, &third);
    assert_original(&ev3);
    assert_eq!(ev3["issue"], ev["issue"]);

    let uploads = server.json(&["sourcemaps", "default"]);
    assert_eq!(uploads.as_array().unwrap().len(), 3, "{uploads}");
    assert!(
        uploads
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["release"] == "shop@3"),
        "{uploads}"
    );

    // The pages: original frames, the minified ones behind a toggle, the uploads with delete.
    common::create_admin(
        &server.data_dir,
        "admin@example.com",
        "correct horse battery",
    );
    let issue = ev["issue"].to_string();
    common::run_node(
        "sourcemap_pages.js",
        &[],
        &[
            ("PICKET_URL", &server.url),
            ("PICKET_EMAIL", "admin@example.com"),
            ("PICKET_PASSWORD", "correct horse battery"),
            ("ISSUE", &issue),
        ],
    );
    assert_eq!(
        server
            .json(&["sourcemaps", "default"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// A POST to the API with a bearer token: status and JSON body.
fn post(
    server: &Server,
    token: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let resp = common::agent()
        .post(format!("{}/api/0/{path}", server.url))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", content_type)
        .send(body)
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "picket-test-boundary";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        let file = if filename.is_empty() {
            String::new()
        } else {
            format!("; filename=\"{filename}\"")
        };
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn sha1(data: &[u8]) -> String {
    picket::manage::artifacts::sha1_hex(data)
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in entries {
            w.start_file(*name, options).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
    }
    out.into_inner()
}

/// Uploads a whole file as one chunk and asks for its assembly.
fn upload_and_assemble(server: &Server, token: &str, file: &[u8], projects: Value) -> (u16, Value) {
    let checksum = sha1(file);
    let (ct, body) = multipart(&[("file", &checksum, file)]);
    let (status, answer) = post(
        server,
        token,
        "organizations/picket/chunk-upload/",
        &ct,
        body,
    );
    assert_eq!(status, 200, "{answer}");
    post(
        server,
        token,
        "organizations/picket/artifactbundle/assemble/",
        "application/json",
        json!({"checksum": checksum, "chunks": [checksum], "projects": projects})
            .to_string()
            .into_bytes(),
    )
}

#[test]
fn hostile_uploads_are_refused_and_the_server_keeps_serving() {
    let server = Server::start();
    server.project("payments");
    let token = server.token(&["ci"]);

    // A chunk whose SHA-1 does not match its name.
    let (ct, body) = multipart(&[("file", &sha1(b"something else"), b"chunk data")]);
    let (status, answer) = post(
        &server,
        &token,
        "organizations/picket/chunk-upload/",
        &ct,
        body,
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("SHA-1"),
        "{answer}"
    );

    // Assembly first answers the chunks it lacks.
    let (status, answer) = post(
        &server,
        &token,
        "organizations/picket/artifactbundle/assemble/",
        "application/json",
        json!({"checksum": sha1(b"x"), "chunks": [sha1(b"x")], "projects": ["default"]})
            .to_string()
            .into_bytes(),
    );
    assert_eq!(status, 200);
    assert_eq!(answer["state"], "not_found");
    assert_eq!(answer["missingChunks"], json!([sha1(b"x")]));

    // A ZIP bomb: a few KB that expand to far more than a file may hold.
    let bomb = zip_of(&[("manifest.json", b"{}"), ("bomb.js", &vec![b'a'; 80 << 20])]);
    assert!(bomb.len() < 1 << 20);
    let (_, answer) = upload_and_assemble(&server, &token, &bomb, json!(["default"]));
    assert_eq!(answer["state"], "error", "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("larger than"),
        "{answer}"
    );

    // An entry that would climb out of a directory.
    let climb = zip_of(&[
        (
            "manifest.json",
            br#"{"files":{"../../x":{"url":"~/x.js","type":"source"}}}"#,
        ),
        ("../../x", b"1"),
    ]);
    let (_, answer) = upload_and_assemble(&server, &token, &climb, json!(["default"]));
    assert_eq!(answer["state"], "error");
    assert!(
        answer["detail"].as_str().unwrap().contains("unsafe name"),
        "{answer}"
    );

    // A manifest naming a project the upload is not for.
    let other = zip_of(&[(
        "manifest.json",
        br#"{"org":"picket","projects":["payments"],"files":{}}"#,
    )]);
    let (_, answer) = upload_and_assemble(&server, &token, &other, json!(["default"]));
    assert_eq!(answer["state"], "error");
    assert!(
        answer["detail"].as_str().unwrap().contains("payments"),
        "{answer}"
    );

    // A chunk declaring a huge size: gzip claiming more than a chunk may unpack to.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![0u8; 9 << 20]).unwrap();
    let gz = gz.finish().unwrap();
    let (ct, body) = multipart(&[("file_gzip", &sha1(&vec![0u8; 9 << 20]), &gz)]);
    let (status, answer) = post(
        &server,
        &token,
        "organizations/picket/chunk-upload/",
        &ct,
        body,
    );
    assert_eq!(status, 400);
    assert!(
        answer["detail"].as_str().unwrap().contains("more than"),
        "{answer}"
    );

    // A request declaring 2 GB is refused before its body is read.
    {
        use std::io::{Read, Write};
        let addr = server.url.trim_start_matches("http://");
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(
            tcp,
            "POST /api/0/organizations/picket/chunk-upload/ HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 2147483648\r\n\r\n--x"
        )
        .unwrap();
        let mut answer = [0u8; 512];
        let n = tcp.read(&mut answer).unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("2147483648 bytes"), "{answer}");
    }

    // Nothing was kept, and the server still answers.
    assert_eq!(server.json(&["sourcemaps", "default"]), json!([]));
    let resp = common::agent()
        .get(format!("{}/health", server.url))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

#[test]
fn unused_uploads_are_deleted_after_sourcemaps_max_age() {
    let server = Server::start_with_config("[sourcemaps]\nmax_age = \"2s\"\n", &[]);
    let token = server.token(&["ci"]);
    let bundle = zip_of(&[
        ("manifest.json", br#"{"org":"picket","project":"default","files":{"_/_/a.js.map":{"url":"~/a.js.map","type":"source_map","headers":{"debug-id":"ce9df349-42c1-587f-b549-43160087adf5"}}}}"#),
        ("_/_/a.js.map", br#"{"version":3,"sources":["a.js"],"names":[],"mappings":"AAAA"}"#),
    ]);
    let (_, answer) = upload_and_assemble(&server, &token, &bundle, json!(["default"]));
    assert_eq!(answer["state"], "ok", "{answer}");
    assert_eq!(
        server
            .json(&["sourcemaps", "default"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !server
        .json(&["sourcemaps", "default"])
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "an unused upload was kept past sourcemaps.max_age"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn files_uploaded_for_a_release_the_pre_bundle_way_map_events() {
    let server = Server::start();
    let token = server.token(&["ci"]);
    // A minified file and its map, as older tools uploaded them one by one for a release.
    let minified = b"function t(o){if(!o.price)throw new Error(\"no price\")}t({});\n";
    let mut b = sourcemap::SourceMapBuilder::new(Some("shop.min.js"));
    let src = b.add_source("../src/prices.js");
    b.set_source_contents(
        src,
        Some("// Prices.\nexport function priceOf(item) {\n  if (!item.price) {\n    throw new Error(\"no price\");\n  }\n}\n"),
    );
    b.add_raw(0, 0, 1, 0, Some(src), None, false);
    b.add_raw(0, 26, 3, 4, Some(src), None, false);
    let mut map = Vec::new();
    b.into_sourcemap().to_writer(&mut map).unwrap();
    let (status, _) = post(
        &server,
        &token,
        "organizations/picket/releases/",
        "application/json",
        json!({"version": "shop@4", "projects": ["default"]})
            .to_string()
            .into_bytes(),
    );
    assert_eq!(status, 201);
    for (name, content, header) in [
        (
            "~/static/shop.min.js",
            &minified[..],
            Some("Sourcemap:shop.min.js.map"),
        ),
        ("~/static/shop.min.js.map", &map[..], None),
    ] {
        let mut parts: Vec<(&str, &str, &[u8])> =
            vec![("file", "upload", content), ("name", "", name.as_bytes())];
        if let Some(h) = header {
            parts.push(("header", "", h.as_bytes()));
        }
        let (ct, body) = multipart(&parts);
        let (status, answer) = post(
            &server,
            &token,
            "projects/picket/default/releases/shop@4/files/",
            &ct,
            body,
        );
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["name"], name);
    }
    // The same name again is a conflict, as in Sentry.
    let (ct, body) = multipart(&[
        ("file", "upload", minified),
        ("name", "", b"~/static/shop.min.js"),
    ]);
    let (status, _) = post(
        &server,
        &token,
        "projects/picket/default/releases/shop@4/files/",
        &ct,
        body,
    );
    assert_eq!(status, 409);

    let project = &server.json(&["project", "list"])[0];
    let event = json!({
        "platform": "javascript",
        "release": "shop@4",
        "exception": {"values": [{"type": "Error", "value": "no price", "stacktrace": {"frames": [
            {"filename": "https://shop.example/static/shop.min.js", "function": "t", "lineno": 1, "colno": 27, "in_app": true}
        ]}}]},
    });
    let resp = common::agent()
        .post(common::store_url(&server, project))
        .send(event.to_string())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let id: Value = serde_json::from_str(&resp.into_body().read_to_string().unwrap()).unwrap();
    let ev = self::event(&server, id["id"].as_str().unwrap());
    let frame = &ev["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!(frame["filename"], "src/prices.js", "{frame}");
    assert_eq!(frame["lineno"], 4, "{frame}");
    assert_eq!(frame["function"], "priceOf", "{frame}");
    assert_eq!(frame["context_line"], "    throw new Error(\"no price\");");
}

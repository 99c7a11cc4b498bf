//! The upload endpoints sentry-cli uses for source maps: `chunk-upload/` (its options, and
//! multipart chunks named by their SHA-1, gzip or plain) and `artifactbundle/assemble/`.
//! Sizes are capped before and after decompression; a chunk whose SHA-1 does not match is
//! refused with both checksums named.

use std::io::Read;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Call, Reply, body, run};
use crate::manage::artifacts::{
    BundleAssemble, CHUNK_SIZE, CHUNKS_PER_REQUEST, Chunk, ChunkUpload, MAX_FILE, MAX_REQUEST,
    ReleaseFileList, ReleaseFileUpload, ReleaseFileView,
};

/// `GET chunk-upload/`: how sentry-cli should cut and send its files.
pub(super) fn options(call: &Call<'_>, org: &str) -> Reply {
    Reply::ok(json!({
        "url": format!("{}/api/0/organizations/{org}/chunk-upload/", call.origin),
        "chunkSize": CHUNK_SIZE,
        "chunksPerRequest": CHUNKS_PER_REQUEST,
        "maxRequestSize": MAX_REQUEST,
        "maxFileSize": MAX_FILE,
        "maxWait": 60,
        "concurrency": 4,
        "hashAlgorithm": "sha1",
        "compression": ["gzip"],
        "accept": ["artifact_bundles", "artifact_bundles_v2", "release_files", "sources"],
    }))
}

/// Gunzips a chunk, refusing more than `cap` bytes out.
fn gunzip(data: &[u8], cap: usize, name: &str) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("chunk {name}: not gzip ({e})")))?;
    if out.len() > cap {
        return Err(ApiError::BadRequest(format!(
            "chunk {name}: more than {cap} bytes once unpacked"
        )));
    }
    Ok(out)
}

/// The request's multipart form.
fn form(call: &Call<'_>) -> Result<multer::Multipart<'static>, ApiError> {
    let boundary = multer::parse_boundary(&call.content_type)
        .map_err(|e| ApiError::BadRequest(format!("body: expected multipart/form-data ({e})")))?;
    let data = call.body.clone();
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(data) });
    Ok(multer::Multipart::new(stream, boundary))
}

/// `POST chunk-upload/`: keeps each chunk once its SHA-1 is checked.
pub(super) async fn upload(call: &Call<'_>) -> Result<Reply, ApiError> {
    let mut form = form(call)?;
    let mut chunks = Vec::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("body: {e}")))?
    {
        let kind = field.name().unwrap_or("").to_string();
        let checksum = field.file_name().unwrap_or("").trim().to_ascii_lowercase();
        if checksum.len() != 40 || !checksum.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ApiError::BadRequest(format!(
                "chunk: '{checksum}' is not a SHA-1 (the part's filename names it)"
            )));
        }
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::BadRequest(format!("chunk {checksum}: {e}")))?;
        let data = match kind.as_str() {
            "file_gzip" => gunzip(&bytes, CHUNK_SIZE, &checksum)?,
            "file" if bytes.len() <= CHUNK_SIZE => bytes.to_vec(),
            "file" => {
                return Err(ApiError::BadRequest(format!(
                    "chunk {checksum}: more than {CHUNK_SIZE} bytes"
                )));
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "body: unknown part '{other}' (file or file_gzip)"
                )));
            }
        };
        chunks.push(Chunk { checksum, data });
        if chunks.len() > CHUNKS_PER_REQUEST {
            return Err(ApiError::BadRequest(format!(
                "body: more than {CHUNKS_PER_REQUEST} chunks in one request"
            )));
        }
    }
    run(call, ChunkUpload { chunks }).await?;
    Ok(Reply::ok(json!({})))
}

#[derive(Deserialize)]
struct AssembleRequest {
    checksum: String,
    #[serde(default)]
    chunks: Vec<String>,
    #[serde(default)]
    projects: Vec<serde_json::Value>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    dist: Option<String>,
}

/// `POST artifactbundle/assemble/`: the chunks still missing, or the bundle assembled.
pub(super) async fn assemble(call: &Call<'_>) -> Result<Reply, ApiError> {
    let asked: AssembleRequest = body(call)?;
    let projects = asked
        .projects
        .iter()
        .map(|p| match p {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            other => Err(ApiError::BadRequest(format!(
                "projects: {other} is not a project slug or id"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let op = BundleAssemble {
        projects,
        checksum: asked.checksum,
        chunks: asked
            .chunks
            .iter()
            .map(|c| c.to_ascii_lowercase())
            .collect(),
        release: asked.version,
        dist: asked.dist,
    };
    let answer = run(call, op).await?;
    Ok(Reply::ok(json!({
        "state": answer.state,
        "missingChunks": answer.missing_chunks,
        "detail": answer.detail,
    })))
}

fn release_file(f: &ReleaseFileView) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = f
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    json!({
        "id": f.id,
        "name": f.name,
        "dist": f.dist,
        "size": f.size,
        "sha1": f.sha1,
        "dateCreated": f.uploaded,
        "headers": headers,
    })
}

/// `GET|POST …/releases/{version}/files/`: files uploaded for a release the way tools did
/// before artifact bundles (`file`, `name`, `dist` and `header: Key:Value` parts).
pub(super) async fn release_files(
    call: &Call<'_>,
    project: Option<&str>,
    version: &str,
) -> Result<Reply, ApiError> {
    let (project, version) = (project.map(str::to_string), version.to_string());
    if call.method == hyper::Method::GET {
        let list = run(call, ReleaseFileList { project, version }).await?;
        return Ok(Reply::ok(list.iter().map(release_file).collect()));
    }
    let mut form = form(call)?;
    let (mut content, mut name, mut dist, mut headers) = (None, None, None, Vec::new());
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("body: {e}")))?
    {
        let part = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::BadRequest(format!("{part}: {e}")))?;
        let text = || String::from_utf8_lossy(&bytes).trim().to_string();
        match part.as_str() {
            "file" => {
                name = name.or(file_name.map(|f| format!("~/{f}")));
                content = Some(bytes.to_vec());
            }
            "name" => name = Some(text()),
            "dist" => dist = Some(text()),
            "header" => {
                let line = text();
                let (k, v) = line.split_once(':').ok_or_else(|| {
                    ApiError::BadRequest(format!("header: '{line}' is not Key:Value"))
                })?;
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            _ => {}
        }
    }
    let content =
        content.ok_or_else(|| ApiError::BadRequest("file: this part is required".into()))?;
    let name = name.ok_or_else(|| ApiError::BadRequest("name: this part is required".into()))?;
    let op = ReleaseFileUpload {
        project,
        version,
        name,
        dist,
        headers,
        content,
    };
    let made = run(call, op).await?;
    Ok(Reply::with_status(
        hyper::StatusCode::CREATED,
        release_file(&made),
    ))
}

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

/// `POST chunk-upload/`: keeps each chunk once its SHA-1 is checked.
pub(super) async fn upload(call: &Call<'_>) -> Result<Reply, ApiError> {
    let boundary = multer::parse_boundary(&call.content_type)
        .map_err(|e| ApiError::BadRequest(format!("body: expected multipart/form-data ({e})")))?;
    let data = call.body.clone();
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(data) });
    let mut form = multer::Multipart::new(stream, boundary);
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

//! Uploaded JavaScript artifacts: chunks waiting to be assembled (by SHA-1), artifact bundles
//! per project with what they hold, the files themselves, and an index that finds a file by
//! debug id or by release, dist and URL path (`~/static/app.min.js`, any host).

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    ARTIFACT_BUNDLES, ARTIFACT_BYTES, ARTIFACT_FILES, ARTIFACT_INDEX, CHUNK_BYTES, CHUNKS, META,
    StoreError, decode, encode,
};

/// Adds (or takes away) bytes from a META counter; returns the new figure.
fn count(txn: &WriteTransaction, key: &str, added: u64, removed: u64) -> Result<u64, StoreError> {
    let mut meta = txn.open_table(META)?;
    let now = meta.get(key)?.map_or(0, |v| v.value());
    let new = (now + added).saturating_sub(removed);
    meta.insert(key, new)?;
    Ok(new)
}

/// Adds (or takes away) bytes from the uploads' share of the file.
fn count_bytes(txn: &WriteTransaction, added: u64, removed: u64) -> Result<(), StoreError> {
    count(txn, ARTIFACT_BYTES, added, removed).map(|_| ())
}

/// What a file in a bundle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    SourceMap,
    MinifiedSource,
    Source,
    Other,
}

impl FileKind {
    /// The manifest's `type` names.
    pub fn of(ty: &str) -> FileKind {
        match ty {
            "source_map" => FileKind::SourceMap,
            "minified_source" => FileKind::MinifiedSource,
            "source" => FileKind::Source,
            _ => FileKind::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::SourceMap => "source_map",
            FileKind::MinifiedSource => "minified_source",
            FileKind::Source => "source",
            FileKind::Other => "other",
        }
    }
}

/// A file to store with its bundle.
pub struct NewFile {
    pub url: String,
    pub kind: FileKind,
    pub debug_id: Option<String>,
    pub sourcemap: Option<String>,
    pub content: Vec<u8>,
}

/// A stored file as the index finds it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct FileRef {
    /// The file's key in `ARTIFACT_FILES` (`{bundle}/{n}`).
    pub key: String,
    /// A minified file's `Sourcemap` reference.
    pub sourcemap: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct FileInfo {
    pub url: String,
    pub kind: Option<FileKind>,
    pub debug_id: Option<String>,
    pub size: u64,
}

/// An uploaded bundle (or, for the legacy flow, the files of one release upload).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct BundleInfo {
    /// The SHA-1 of the bundle as uploaded (or a made-up id for release files).
    pub id: String,
    pub uploaded: f64,
    pub size: u64,
    pub release: Option<String>,
    pub dist: Option<String>,
    pub files: Vec<FileInfo>,
    /// When an event last had a frame mapped through it (as of the janitor's last look).
    pub last_used: Option<f64>,
}

/// `https://shop.example/static/app.js?v=2` or `~/static/app.js` → `~/static/app.js`, so that a
/// file uploaded for one host matches events from any.
pub fn url_path(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    if let Some(rest) = url.strip_prefix("~/") {
        return format!("~/{rest}");
    }
    match url.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(at) => format!("~{}", &rest[at..]),
            None => "~/".to_string(),
        },
        None => format!("~/{}", url.trim_start_matches('/')),
    }
}

/// A `Sourcemap` reference resolved against the minified file's URL.
pub fn resolve_url(base: &str, reference: &str) -> String {
    if reference.contains("://") || reference.starts_with("~/") {
        return reference.to_string();
    }
    let base = url_path(base);
    let dir = base.rsplit_once('/').map_or("~", |(d, _)| d);
    if let Some(abs) = reference.strip_prefix('/') {
        return format!("~/{abs}");
    }
    let mut parts: Vec<&str> = dir.split('/').collect();
    for seg in reference.split('/') {
        match seg {
            "." | "" => {}
            ".." if parts.len() > 1 => {
                parts.pop();
            }
            ".." => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn debug_key(debug_id: &str, kind: FileKind) -> String {
    format!("debug/{debug_id}/{}", kind.as_str())
}

fn url_key(release: &str, dist: Option<&str>, url: &str) -> String {
    format!("url/{release}\n{}\n{}", dist.unwrap_or(""), url_path(url))
}

/// Keeps an uploaded chunk until it is assembled, unless the chunks waiting would then hold
/// more than `cap` bytes (a conflict: assemble what was uploaded, or wait for it to expire).
pub fn put_chunk(
    txn: &WriteTransaction,
    checksum: &str,
    data: &[u8],
    now: f64,
    cap: u64,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(CHUNKS)?;
    if table.get(checksum)?.is_some() {
        return Ok(());
    }
    let mut row = Vec::with_capacity(data.len() + 8);
    row.extend_from_slice(&(now as u64).to_le_bytes());
    row.extend_from_slice(data);
    table.insert(checksum, row.as_slice())?;
    drop(table);
    if count(txn, CHUNK_BYTES, data.len() as u64, 0)? > cap {
        return Err(StoreError::Conflict(format!(
            "uploads waiting to be assembled would hold more than {cap} bytes; assemble them first"
        )));
    }
    Ok(())
}

/// The checksums among `wanted` that no chunk has.
pub fn missing_chunks(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    wanted: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for c in wanted {
        if table.get(c.as_str())?.is_none() && !out.contains(c) {
            out.push(c.clone());
        }
    }
    Ok(out)
}

/// The chunks joined in order (they stay until [`drop_chunks`]).
pub fn join_chunks(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    chunks: &[String],
    max: u64,
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    for c in chunks {
        let row = table
            .get(c.as_str())?
            .ok_or_else(|| StoreError::NotFound(format!("chunk {c} is missing")))?;
        let data = row.value().get(8..).unwrap_or_default();
        if (out.len() + data.len()) as u64 > max {
            return Err(StoreError::Conflict(format!(
                "the assembled file is larger than {max} bytes"
            )));
        }
        out.extend_from_slice(data);
    }
    Ok(out)
}

pub fn drop_chunks(txn: &WriteTransaction, chunks: &[String]) -> Result<(), StoreError> {
    let mut table = txn.open_table(CHUNKS)?;
    let mut freed = 0;
    for c in chunks {
        if let Some(row) = table.remove(c.as_str())? {
            freed += row.value().len().saturating_sub(8) as u64;
        }
    }
    drop(table);
    count(txn, CHUNK_BYTES, 0, freed).map(|_| ())
}

/// Deletes chunks uploaded before `cutoff` (Unix seconds) that were never assembled.
pub fn expire_chunks(txn: &WriteTransaction, cutoff: f64) -> Result<u64, StoreError> {
    let mut table = txn.open_table(CHUNKS)?;
    let mut old = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        let at = v
            .value()
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes);
        if at.is_none_or(|t| (t as f64) < cutoff) {
            old.push(k.value().to_string());
        }
    }
    let mut freed = 0;
    for k in &old {
        if let Some(row) = table.remove(k.as_str())? {
            freed += row.value().len().saturating_sub(8) as u64;
        }
    }
    drop(table);
    count(txn, CHUNK_BYTES, 0, freed)?;
    Ok(old.len() as u64)
}

/// Stores a bundle's files and indexes them; replaces a bundle with the same id.
pub fn put_bundle(
    txn: &WriteTransaction,
    project: u64,
    mut info: BundleInfo,
    files: Vec<NewFile>,
) -> Result<BundleInfo, StoreError> {
    delete_bundle(txn, project, &info.id)?;
    let mut contents = txn.open_table(ARTIFACT_FILES)?;
    let mut index = txn.open_table(ARTIFACT_INDEX)?;
    info.files.clear();
    for (n, file) in files.into_iter().enumerate() {
        let key = format!("{}/{n}", info.id);
        contents.insert((project, key.as_str()), file.content.as_slice())?;
        let found = encode(&FileRef {
            key: key.clone(),
            sourcemap: file.sourcemap.clone(),
        });
        if let Some(id) = &file.debug_id {
            index.insert(
                (project, debug_key(id, file.kind).as_str()),
                found.as_slice(),
            )?;
        }
        if let Some(release) = &info.release {
            index.insert(
                (
                    project,
                    url_key(release, info.dist.as_deref(), &file.url).as_str(),
                ),
                found.as_slice(),
            )?;
        }
        info.files.push(FileInfo {
            url: file.url,
            kind: Some(file.kind),
            debug_id: file.debug_id,
            size: file.content.len() as u64,
        });
    }
    txn.open_table(ARTIFACT_BUNDLES)?
        .insert((project, info.id.as_str()), encode(&info).as_slice())?;
    count_bytes(txn, info.files.iter().map(|f| f.size).sum(), 0)?;
    Ok(info)
}

/// Records when bundles were last used, then deletes every bundle neither uploaded nor used
/// since `cutoff`. Returns how many were deleted.
pub fn touch_and_expire(
    txn: &WriteTransaction,
    used: &[(u64, String, f64)],
    cutoff: f64,
) -> Result<u64, StoreError> {
    let mut stale = Vec::new();
    {
        let mut table = txn.open_table(ARTIFACT_BUNDLES)?;
        for (project, id, at) in used {
            let info = table
                .get((*project, id.as_str()))?
                .map(|row| decode::<BundleInfo>("artifact_bundles", row.value()))
                .transpose()?;
            if let Some(mut info) = info {
                info.last_used = Some(info.last_used.map_or(*at, |t| t.max(*at)));
                table.insert((*project, id.as_str()), encode(&info).as_slice())?;
            }
        }
        for row in table.iter()? {
            let (key, value) = row?;
            let info: BundleInfo = decode("artifact_bundles", value.value())?;
            if info.uploaded.max(info.last_used.unwrap_or(0.0)) < cutoff {
                stale.push((key.value().0, info.id));
            }
        }
    }
    for (project, id) in &stale {
        delete_bundle(txn, *project, id)?;
    }
    Ok(stale.len() as u64)
}

/// A project's bundles, newest first.
pub fn bundles(
    table: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    project: u64,
) -> Result<Vec<BundleInfo>, StoreError> {
    let mut out = Vec::new();
    for row in table.range((project, "")..(project + 1, ""))? {
        out.push(decode::<BundleInfo>("artifact_bundles", row?.1.value())?);
    }
    out.sort_by(|a, b| b.uploaded.total_cmp(&a.uploaded));
    Ok(out)
}

/// The projects that have at least one upload.
pub fn projects_with_bundles(
    table: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
) -> Result<std::collections::HashSet<u64>, StoreError> {
    let mut out = std::collections::HashSet::new();
    let mut from = 0u64;
    // One probe per project that has uploads, not one per upload.
    while let Some(row) = table.range((from, "")..)?.next() {
        let project = row?.0.value().0;
        out.insert(project);
        match project.checked_add(1) {
            Some(next) => from = next,
            None => break,
        }
    }
    Ok(out)
}

/// Whether a project has this bundle already.
pub fn has_bundle(
    table: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    project: u64,
    id: &str,
) -> Result<bool, StoreError> {
    Ok(table.get((project, id))?.is_some())
}

/// Deletes a bundle with its files and index entries; what it was, if it existed.
pub fn delete_bundle(
    txn: &WriteTransaction,
    project: u64,
    id: &str,
) -> Result<Option<BundleInfo>, StoreError> {
    let Some(info) = txn
        .open_table(ARTIFACT_BUNDLES)?
        .remove((project, id))?
        .map(|row| decode::<BundleInfo>("artifact_bundles", row.value()))
        .transpose()?
    else {
        return Ok(None);
    };
    let mut contents = txn.open_table(ARTIFACT_FILES)?;
    let mut index = txn.open_table(ARTIFACT_INDEX)?;
    let prefix = format!("{id}/");
    for (n, file) in info.files.iter().enumerate() {
        let key = format!("{prefix}{n}");
        contents.remove((project, key.as_str()))?;
        let kind = file.kind.unwrap_or(FileKind::Other);
        // Index entries point at the newest upload; remove only those that point here.
        let mut keys = Vec::new();
        if let Some(d) = &file.debug_id {
            keys.push(debug_key(d, kind));
        }
        if let Some(release) = &info.release {
            keys.push(url_key(release, info.dist.as_deref(), &file.url));
        }
        for k in keys {
            let here = index
                .get((project, k.as_str()))?
                .map(|row| decode::<FileRef>("artifact_index", row.value()))
                .transpose()?
                .is_some_and(|r| r.key == key);
            if here {
                index.remove((project, k.as_str()))?;
            }
        }
    }
    count_bytes(txn, 0, info.files.iter().map(|f| f.size).sum())?;
    Ok(Some(info))
}

fn find(
    index: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    project: u64,
    key: &str,
) -> Result<Option<FileRef>, StoreError> {
    match index.get((project, key))? {
        Some(row) => Ok(Some(decode("artifact_index", row.value())?)),
        None => Ok(None),
    }
}

/// The newest file of a kind with a debug id, in a project.
pub fn by_debug_id(
    index: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    project: u64,
    debug_id: &str,
    kind: FileKind,
) -> Result<Option<FileRef>, StoreError> {
    find(
        index,
        project,
        &debug_key(&debug_id.to_ascii_lowercase(), kind),
    )
}

/// The newest file uploaded for a release (and dist) at a URL path, in a project.
pub fn by_url(
    index: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    project: u64,
    release: &str,
    dist: Option<&str>,
    url: &str,
) -> Result<Option<FileRef>, StoreError> {
    find(index, project, &url_key(release, dist, url))
}

/// A stored file's bytes.
pub fn content(
    table: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    project: u64,
    key: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(table.get((project, key))?.map(|row| row.value().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_waiting_are_capped_and_counted_out_when_assembled() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open(dir.path()).unwrap();
        let put = |name: &str, len: usize| {
            let txn = db.begin_write().unwrap();
            let done = put_chunk(&txn, name, &vec![7u8; len], 0.0, 100);
            if done.is_ok() {
                txn.commit().unwrap();
            }
            done
        };
        put("a", 60).unwrap();
        put("a", 60).unwrap();
        assert!(
            matches!(put("b", 60), Err(StoreError::Conflict(_))),
            "over the cap"
        );
        let txn = db.begin_write().unwrap();
        drop_chunks(&txn, &["a".to_string()]).unwrap();
        txn.commit().unwrap();
        put("b", 60).unwrap();
    }

    #[test]
    fn urls_match_any_host_and_references_resolve() {
        assert_eq!(
            url_path("https://shop.example/static/app.js?v=2"),
            "~/static/app.js"
        );
        assert_eq!(url_path("~/static/app.js"), "~/static/app.js");
        assert_eq!(url_path("/static/app.js"), "~/static/app.js");
        assert_eq!(
            resolve_url("https://x/static/js/app.js", "app.js.map"),
            "~/static/js/app.js.map"
        );
        assert_eq!(
            resolve_url("https://x/static/js/app.js", "../maps/app.map"),
            "~/static/maps/app.map"
        );
        assert_eq!(
            resolve_url("https://x/static/js/app.js", "/maps/app.map"),
            "~/maps/app.map"
        );
    }
}

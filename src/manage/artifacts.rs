//! Source-map uploads as sentry-cli makes them: chunks kept by their SHA-1, artifact bundles
//! assembled from them for the caller's projects (answering the chunks still missing first),
//! and a project's uploads listed and deleted. Who may upload is decided here: a token needs
//! `project:releases`, and every project named must be one the caller may see.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use super::{Actor, Handle, ManageError, Operation};
use crate::artifacts::bundle::{self, BundleLimits};
use crate::store::artifacts::{self, BundleInfo, NewFile};
use crate::store::backup::Progress;
use crate::store::projects::Project;
use crate::store::{ARTIFACT_BUNDLES, CHUNKS};

/// What the server tells sentry-cli about chunks: their size, how many go in one request…
pub const CHUNK_SIZE: usize = 8 << 20;
pub const CHUNKS_PER_REQUEST: usize = 64;
pub const MAX_REQUEST: usize = 32 << 20;
/// …and the largest file (bundle) assembled from them.
pub const MAX_FILE: u64 = 256 << 20;
/// The most bytes of chunks kept waiting to be assembled, all uploads together.
pub const MAX_WAITING: u64 = 1 << 30;

/// The SHA-1 of bytes, as 40 lowercase hex digits.
pub fn sha1_hex(data: &[u8]) -> String {
    crate::ids::hex(&Sha1::digest(data))
}

/// One uploaded chunk: its SHA-1 (checked by the caller) and its bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chunk {
    pub checksum: String,
    pub data: Vec<u8>,
}

/// Keeps chunks until a bundle made of them is assembled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkUpload {
    pub chunks: Vec<Chunk>,
}

impl Operation for ChunkUpload {
    type Answer = usize;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<usize, ManageError> {
        actor.require_scope("project:releases")?;
        if h.visible_projects(actor)?.is_empty() {
            return Err(ManageError::Forbidden(
                "you may not upload to any project".into(),
            ));
        }
        for c in &self.chunks {
            if sha1_hex(&c.data) != c.checksum {
                return Err(ManageError::Invalid(format!(
                    "chunk {}: its SHA-1 is {}",
                    c.checksum,
                    sha1_hex(&c.data)
                )));
            }
        }
        let n = self.chunks.len();
        let now = crate::time::now();
        h.write(move |txn| {
            for c in &self.chunks {
                artifacts::put_chunk(txn, &c.checksum, &c.data, now, MAX_WAITING)?;
            }
            Ok(())
        })?;
        Ok(n)
    }
}

/// Assembles an artifact bundle from chunks, for projects (sentry-cli's
/// `artifactbundle/assemble`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleAssemble {
    pub projects: Vec<String>,
    pub checksum: String,
    pub chunks: Vec<String>,
    pub release: Option<String>,
    pub dist: Option<String>,
}

/// Where an assembly stands, in sentry-cli's words: `ok`, `not_found` (with the chunks to
/// upload), `error` (with why).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Assembly {
    pub state: String,
    pub missing_chunks: Vec<String>,
    pub detail: Option<String>,
}

impl Assembly {
    fn state(state: &str) -> Assembly {
        Assembly {
            state: state.into(),
            missing_chunks: Vec::new(),
            detail: None,
        }
    }

    fn error(detail: String) -> Assembly {
        Assembly {
            detail: Some(detail),
            ..Assembly::state("error")
        }
    }
}

/// Whether a manifest's project name is one of these projects.
fn names(name: &str, projects: &[Project]) -> bool {
    projects
        .iter()
        .any(|p| p.slug == name || p.id.to_string() == name)
}

impl Operation for BundleAssemble {
    type Answer = Assembly;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<Assembly, ManageError> {
        actor.require_scope("project:releases")?;
        if self.projects.is_empty() {
            return Err(ManageError::Invalid(
                "projects: name the projects the bundle is for".into(),
            ));
        }
        let projects = self
            .projects
            .iter()
            .map(|p| h.project(actor, p))
            .collect::<Result<Vec<_>, _>>()?;
        let checksum = self.checksum.to_ascii_lowercase();
        let txn = h.db.begin_read()?;
        {
            let bundles = txn.open_table(ARTIFACT_BUNDLES)?;
            let mut all = true;
            for p in &projects {
                all &= artifacts::has_bundle(&bundles, p.id, &checksum)?;
            }
            if all {
                return Ok(Assembly::state("ok"));
            }
        }
        let chunks = txn.open_table(CHUNKS)?;
        let missing = artifacts::missing_chunks(&chunks, &self.chunks)?;
        if !missing.is_empty() {
            return Ok(Assembly {
                missing_chunks: missing,
                ..Assembly::state("not_found")
            });
        }
        let data = match artifacts::join_chunks(&chunks, &self.chunks, MAX_FILE) {
            Ok(d) => d,
            Err(e) => return Ok(Assembly::error(e.to_string())),
        };
        drop((chunks, txn));
        if sha1_hex(&data) != checksum {
            return Ok(Assembly::error(format!(
                "the chunks do not add up to {checksum} (their SHA-1 is {})",
                sha1_hex(&data)
            )));
        }
        let read = match bundle::read(&data, &BundleLimits::default()) {
            Ok(b) => b,
            Err(e) => return Ok(Assembly::error(e.to_string())),
        };
        if let Some(org) = read.org.as_deref()
            && org != h.config.organization
        {
            return Ok(Assembly::error(format!(
                "the bundle is for organization '{org}', not '{}'",
                h.config.organization
            )));
        }
        if let Some(other) = read.projects.iter().find(|n| !names(n, &projects)) {
            return Ok(Assembly::error(format!(
                "the bundle's manifest names project '{other}', which this upload is not for"
            )));
        }
        let release = self.release.filter(|r| !r.is_empty()).or(read.release);
        let dist = self.dist.filter(|d| !d.is_empty()).or(read.dist);
        let info = BundleInfo {
            id: checksum,
            uploaded: crate::time::now(),
            size: data.len() as u64,
            release,
            dist,
            files: Vec::new(),
            last_used: None,
        };
        let files = read.files;
        let ids: Vec<u64> = projects.iter().map(|p| p.id).collect();
        let chunk_list = self.chunks;
        h.write(move |txn| {
            for id in ids {
                let copies = files
                    .iter()
                    .map(|f| NewFile {
                        url: f.url.clone(),
                        kind: f.kind,
                        debug_id: f.debug_id.clone(),
                        sourcemap: f.sourcemap.clone(),
                        content: f.content.clone(),
                    })
                    .collect();
                artifacts::put_bundle(txn, id, info.clone(), copies)?;
            }
            artifacts::drop_chunks(txn, &chunk_list)
        })?;
        h.uploads_changed();
        Ok(Assembly::state("ok"))
    }
}

/// An upload as the CLI and the UI list it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleView {
    pub id: String,
    pub uploaded: String,
    pub size: u64,
    pub release: Option<String>,
    pub dist: Option<String>,
    pub files: usize,
    pub debug_ids: Vec<String>,
    pub urls: Vec<String>,
}

impl From<&BundleInfo> for BundleView {
    fn from(b: &BundleInfo) -> BundleView {
        let mut debug_ids: Vec<String> =
            b.files.iter().filter_map(|f| f.debug_id.clone()).collect();
        debug_ids.sort();
        debug_ids.dedup();
        BundleView {
            id: b.id.clone(),
            uploaded: crate::time::rfc3339(b.uploaded),
            size: b.size,
            release: b.release.clone(),
            dist: b.dist.clone(),
            files: b.files.len(),
            debug_ids,
            urls: b.files.iter().map(|f| f.url.clone()).collect(),
        }
    }
}

/// A project's uploaded bundles, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleList {
    pub project: String,
}

impl Operation for BundleList {
    type Answer = Vec<BundleView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<BundleView>, ManageError> {
        actor.require_scope("project:read")?;
        let project = h.project(actor, &self.project)?;
        let txn = h.db.begin_read()?;
        let list = artifacts::bundles(&txn.open_table(ARTIFACT_BUNDLES)?, project.id)?;
        Ok(list.iter().map(BundleView::from).collect())
    }
}

/// Deletes an uploaded bundle: its maps no longer apply to new events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleDelete {
    pub project: String,
    pub id: String,
}

impl Operation for BundleDelete {
    type Answer = BundleView;
    fn apply(self, h: &Handle, actor: &Actor, _: Progress<'_>) -> Result<BundleView, ManageError> {
        actor.require_scope("project:releases")?;
        let project = h.project(actor, &self.project)?;
        let id = self.id.clone();
        let gone = h.write(move |txn| artifacts::delete_bundle(txn, project.id, &id))?;
        h.uploads_changed();
        gone.as_ref()
            .map(BundleView::from)
            .ok_or_else(|| ManageError::NotFound(format!("no upload {}", self.id)))
    }
}

/// A file uploaded for a release the way tools did before artifact bundles
/// (`POST …/releases/{version}/files/`): a minified source or a source map, found later by the
/// event's release, dist and URL path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseFileUpload {
    /// The project (slug or id); none: every project of the release the caller may see.
    pub project: Option<String>,
    pub version: String,
    /// `~/static/app.min.js` or a full URL.
    pub name: String,
    pub dist: Option<String>,
    /// `Sourcemap: app.min.js.map` and the like.
    pub headers: Vec<(String, String)>,
    pub content: Vec<u8>,
}

/// A release file as the API lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseFileView {
    pub id: String,
    pub name: String,
    pub dist: Option<String>,
    pub size: u64,
    pub sha1: String,
    pub uploaded: String,
    pub headers: Vec<(String, String)>,
}

/// The id a release file is kept under: one per (release, dist, name).
fn release_file_id(version: &str, dist: Option<&str>, name: &str) -> String {
    format!(
        "release-file-{}",
        sha1_hex(format!("{version}\n{}\n{name}", dist.unwrap_or("")).as_bytes())
    )
}

/// The projects a release-file request is for: the one named, or the release's own that the
/// actor may see. The release must exist.
fn release_projects(
    h: &Handle,
    actor: &Actor,
    project: Option<&str>,
    version: &str,
) -> Result<Vec<Project>, ManageError> {
    let release = super::releases::ReleaseShow {
        version: version.to_string(),
    }
    .apply(h, actor, &|_, _| {})?;
    let projects = match project {
        Some(p) => vec![h.project(actor, p)?],
        None => release
            .projects
            .iter()
            .map(|p| h.project(actor, &p.id.to_string()))
            .collect::<Result<Vec<_>, _>>()?,
    };
    if let Some(p) = projects
        .iter()
        .find(|p| !release.projects.iter().any(|r| r.id == p.id))
    {
        return Err(ManageError::NotFound(format!(
            "release '{version}' is not a release of project '{}'",
            p.slug
        )));
    }
    Ok(projects)
}

impl Operation for ReleaseFileUpload {
    type Answer = ReleaseFileView;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<ReleaseFileView, ManageError> {
        actor.require_scope("project:releases")?;
        let name = self.name.trim().to_string();
        if name.is_empty() || name.len() > 1024 {
            return Err(ManageError::Invalid(
                "name: give the file's URL (~/static/app.js) of at most 1024 characters".into(),
            ));
        }
        if self.content.len() as u64 > MAX_FILE {
            return Err(ManageError::Invalid(format!(
                "file: larger than {MAX_FILE} bytes"
            )));
        }
        let projects = release_projects(h, actor, self.project.as_deref(), &self.version)?;
        let dist = self.dist.filter(|d| !d.is_empty());
        let id = release_file_id(&self.version, dist.as_deref(), &name);
        {
            let txn = h.db.begin_read()?;
            let bundles = txn.open_table(ARTIFACT_BUNDLES)?;
            for p in &projects {
                if artifacts::has_bundle(&bundles, p.id, &id)? {
                    return Err(ManageError::Conflict(format!(
                        "a file named {name} exists already for release {}",
                        self.version
                    )));
                }
            }
        }
        let header = |key: &str| {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.trim().to_string())
        };
        let kind = if name.ends_with(".map") {
            artifacts::FileKind::SourceMap
        } else {
            artifacts::FileKind::MinifiedSource
        };
        let sourcemap = header("sourcemap").or_else(|| header("x-sourcemap"));
        let info = BundleInfo {
            id: id.clone(),
            uploaded: crate::time::now(),
            size: self.content.len() as u64,
            release: Some(self.version.clone()),
            dist: dist.clone(),
            files: Vec::new(),
            last_used: None,
        };
        let view = ReleaseFileView {
            id: id.clone(),
            name: name.clone(),
            dist,
            size: self.content.len() as u64,
            sha1: sha1_hex(&self.content),
            uploaded: crate::time::rfc3339(info.uploaded),
            headers: self.headers.clone(),
        };
        let ids: Vec<u64> = projects.iter().map(|p| p.id).collect();
        let content = self.content;
        h.write(move |txn| {
            for project in ids {
                let file = NewFile {
                    url: name.clone(),
                    kind,
                    debug_id: None,
                    sourcemap: sourcemap.clone(),
                    content: content.clone(),
                };
                artifacts::put_bundle(txn, project, info.clone(), vec![file])?;
            }
            Ok(())
        })?;
        h.uploads_changed();
        Ok(view)
    }
}

/// The files uploaded for a release the pre-bundle way.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseFileList {
    pub project: Option<String>,
    pub version: String,
}

impl Operation for ReleaseFileList {
    type Answer = Vec<ReleaseFileView>;
    fn apply(
        self,
        h: &Handle,
        actor: &Actor,
        _: Progress<'_>,
    ) -> Result<Vec<ReleaseFileView>, ManageError> {
        actor.require_scope("project:releases")?;
        let projects = release_projects(h, actor, self.project.as_deref(), &self.version)?;
        let txn = h.db.begin_read()?;
        let bundles = txn.open_table(ARTIFACT_BUNDLES)?;
        let contents = txn.open_table(crate::store::ARTIFACT_FILES)?;
        let mut out: Vec<ReleaseFileView> = Vec::new();
        for p in &projects {
            for b in artifacts::bundles(&bundles, p.id)? {
                let is_file = b.id.starts_with("release-file-")
                    && b.release.as_deref() == Some(self.version.as_str());
                if !is_file || out.iter().any(|f| f.id == b.id) {
                    continue;
                }
                let Some(file) = b.files.first() else {
                    continue;
                };
                let sha1 = artifacts::content(&contents, p.id, &format!("{}/0", b.id))?
                    .map(|c| sha1_hex(&c))
                    .unwrap_or_default();
                out.push(ReleaseFileView {
                    id: b.id.clone(),
                    name: file.url.clone(),
                    dist: b.dist.clone(),
                    size: b.size,
                    sha1,
                    uploaded: crate::time::rfc3339(b.uploaded),
                    headers: Vec::new(),
                });
            }
        }
        Ok(out)
    }
}

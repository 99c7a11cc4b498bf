//! Uploaded JavaScript artifacts and their use: reading artifact bundles ([`bundle`]), and
//! finding the source map for an event's frame within the event's own project (by debug id,
//! else by release, dist and URL, else through the minified file's `Sourcemap` reference),
//! with parsed maps kept in an LRU cache bounded by bytes, so that a burst of events from one
//! bundle parses its map once.

pub mod bundle;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, ReadTransaction, ReadableDatabase};

use crate::event::Event;
use crate::event::symbolicate::{self, FrameFile, MapFile, MapLookup};
use crate::store::artifacts::{self, FileKind, FileRef};
use crate::store::{ARTIFACT_BUNDLES, ARTIFACT_FILES, ARTIFACT_INDEX};

/// Parsed maps kept, by total weight.
const CACHE_BYTES: usize = 256 << 20;

/// Finds and caches source maps for the server's intake, and notes which uploads it used
/// (for retention).
pub struct Symbolicator {
    db: Arc<Database>,
    cache: Mutex<Cache>,
    /// When each (project, bundle) last mapped a frame, since the janitor last took them.
    used: Mutex<HashMap<(u64, String), f64>>,
    /// Source maps parsed since start (a burst from one bundle should parse its map once).
    parsed: AtomicU64,
    /// Held while a map is parsed, so that a burst of events needing the same uncached map
    /// parses it once (the others wait, then find it cached).
    parsing: Mutex<()>,
    /// The projects that have uploads: events of the others are not even looked at, so that
    /// JavaScript intake without source maps costs nothing more.
    with_uploads: RwLock<HashSet<u64>>,
}

struct Cache {
    maps: lru::LruCache<(u64, String), Arc<MapFile>>,
    weight: usize,
}

impl Symbolicator {
    pub fn new(db: Arc<Database>) -> Symbolicator {
        let symbolicator = Symbolicator {
            db,
            cache: Mutex::new(Cache {
                maps: lru::LruCache::unbounded(),
                weight: 0,
            }),
            used: Mutex::new(HashMap::new()),
            parsed: AtomicU64::new(0),
            parsing: Mutex::new(()),
            with_uploads: RwLock::new(HashSet::new()),
        };
        symbolicator.refresh();
        symbolicator
    }

    /// Reads again which projects have uploads (after uploads were made or deleted).
    pub fn refresh(&self) {
        let read = || -> Result<HashSet<u64>, crate::store::StoreError> {
            let txn = self.db.begin_read()?;
            artifacts::projects_with_bundles(&txn.open_table(ARTIFACT_BUNDLES)?)
        };
        match read() {
            Ok(set) => *self.with_uploads.write().unwrap_or_else(|e| e.into_inner()) = set,
            Err(e) => tracing::error!("reading which projects have source maps failed: {e}"),
        }
    }

    /// Source maps parsed since start.
    pub fn maps_parsed(&self) -> u64 {
        self.parsed.load(Ordering::Relaxed)
    }

    /// The uploads used since the last call, with when: (project, bundle id, time).
    pub fn take_used(&self) -> Vec<(u64, String, f64)> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.drain().map(|((p, b), t)| (p, b, t)).collect()
    }

    fn note_use(&self, project: u64, file_key: &str) {
        let bundle = file_key.split('/').next().unwrap_or(file_key).to_string();
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.insert((project, bundle), crate::time::now());
    }

    /// Maps the event's JavaScript frames with the project's uploads; returns frames mapped.
    /// Events of other platforms, and of projects with no uploads, are left as they are.
    pub fn symbolicate(&self, project: u64, event: &mut Event) -> usize {
        if !symbolicate::is_javascript(event)
            || !self
                .with_uploads
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&project)
        {
            return 0;
        }
        let Ok(txn) = self.db.begin_read() else {
            return 0;
        };
        let mapped = symbolicate::symbolicate(
            event,
            &ProjectMaps {
                s: self,
                project,
                txn,
            },
        );
        tracing::debug!("source maps mapped {mapped} frames of an event of project {project}");
        mapped
    }

    fn cached(&self, key: &(u64, String)) -> Option<Arc<MapFile>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.maps.get(key).cloned()
    }

    fn keep(&self, key: (u64, String), map: Arc<MapFile>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.weight += map.weight();
        if let Some(old) = cache.maps.put(key, map) {
            cache.weight -= old.weight();
        }
        while cache.weight > CACHE_BYTES && cache.maps.len() > 1 {
            match cache.maps.pop_lru() {
                Some((_, m)) => cache.weight -= m.weight(),
                None => break,
            }
        }
    }
}

/// The maps of one project, read in one snapshot for the whole event.
struct ProjectMaps<'a> {
    s: &'a Symbolicator,
    project: u64,
    txn: ReadTransaction,
}

impl ProjectMaps<'_> {
    /// The stored map file for a frame's file, and the minified file beside it, if any.
    fn locate(&self, file: &FrameFile<'_>) -> Result<(FileRef, Option<FileRef>), String> {
        let index = self
            .txn
            .open_table(ARTIFACT_INDEX)
            .map_err(|e| e.to_string())?;
        if let Some(id) = file.debug_id {
            let map = artifacts::by_debug_id(&index, self.project, id, FileKind::SourceMap)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no source map for debug id {id}"))?;
            let minified =
                artifacts::by_debug_id(&index, self.project, id, FileKind::MinifiedSource)
                    .ok()
                    .flatten();
            return Ok((map, minified));
        }
        let release = file.release.ok_or_else(|| {
            format!(
                "no debug id for {} and the event has no release",
                file.abs_path
            )
        })?;
        let minified = artifacts::by_url(&index, self.project, release, file.dist, file.abs_path)
            .map_err(|e| e.to_string())?;
        let map_url = match &minified {
            Some(m) => m.sourcemap.clone(),
            None => None,
        }
        .unwrap_or_else(|| format!("{}.map", file.abs_path));
        let map_url = artifacts::resolve_url(file.abs_path, &map_url);
        let map = artifacts::by_url(&index, self.project, release, file.dist, &map_url)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no source map for {} in release {release}", file.abs_path))?;
        Ok((map, minified))
    }
}

impl MapLookup for ProjectMaps<'_> {
    fn map_for(&self, file: &FrameFile<'_>) -> Result<Arc<MapFile>, String> {
        let (map, minified) = self.locate(file)?;
        self.s.note_use(self.project, &map.key);
        let key = (self.project, map.key.clone());
        if let Some(m) = self.s.cached(&key) {
            return Ok(m);
        }
        let _parsing = self.s.parsing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = self.s.cached(&key) {
            return Ok(m);
        }
        let files = self
            .txn
            .open_table(ARTIFACT_FILES)
            .map_err(|e| e.to_string())?;
        let map_bytes = artifacts::content(&files, self.project, &map.key)
            .map_err(|e| e.to_string())?
            .ok_or("the source map's file is gone")?;
        let minified_bytes = match &minified {
            Some(m) => artifacts::content(&files, self.project, &m.key)
                .ok()
                .flatten(),
            None => None,
        };
        let parsed = Arc::new(MapFile::parse(&map_bytes, minified_bytes.as_deref())?);
        self.s.parsed.fetch_add(1, Ordering::Relaxed);
        self.s.keep(key, parsed.clone());
        Ok(parsed)
    }
}

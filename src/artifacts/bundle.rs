//! Artifact bundles as sentry-cli builds them: a ZIP holding `manifest.json` and the files it
//! names (minified sources, source maps) with their URL, type and debug id. Read from memory
//! with caps on entries, sizes and the compression ratio; entry names are only keys in the
//! manifest, never paths on disk. Pure over bytes, so it can be fuzzed.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use serde::Deserialize;

use crate::store::artifacts::FileKind;

/// How much a bundle may hold.
#[derive(Debug, Clone, Copy)]
pub struct BundleLimits {
    pub max_entries: usize,
    /// Uncompressed bytes of one file.
    pub max_file: u64,
    /// Uncompressed bytes of all files together.
    pub max_total: u64,
    /// Uncompressed size over compressed size, per entry.
    pub max_ratio: u64,
}

impl Default for BundleLimits {
    fn default() -> Self {
        BundleLimits {
            max_entries: 10_000,
            max_file: 64 << 20,
            max_total: 256 << 20,
            max_ratio: 200,
        }
    }
}

/// Why a bundle was refused; the message is what sentry-cli shows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle is not a ZIP archive: {0}")]
    NotZip(String),
    #[error("the bundle has {0} entries, more than the {1} allowed")]
    TooManyEntries(usize, usize),
    #[error("the bundle has no manifest.json")]
    NoManifest,
    #[error("the bundle's manifest.json is not valid: {0}")]
    BadManifest(String),
    #[error("bundle entry '{0}' is larger than {1} bytes")]
    FileTooLarge(String, u64),
    #[error("the bundle unpacks to more than {0} bytes")]
    TooLarge(u64),
    #[error("bundle entry '{0}' expands more than {1} times (a ZIP bomb?)")]
    Ratio(String, u64),
    #[error("bundle entry '{0}' cannot be read: {1}")]
    Entry(String, String),
    #[error("the manifest names '{0}', which the bundle does not hold")]
    MissingFile(String),
    #[error("bundle entry '{0}' has an unsafe name (absolute, or with ..)")]
    UnsafeName(String),
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Manifest {
    org: Option<String>,
    project: Option<String>,
    projects: Vec<String>,
    release: Option<String>,
    dist: Option<String>,
    files: BTreeMap<String, ManifestFile>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct ManifestFile {
    url: String,
    #[serde(rename = "type")]
    ty: String,
    headers: BTreeMap<String, String>,
}

/// One file of a bundle, with its content.
#[derive(Debug, Clone)]
pub struct BundleFile {
    /// `~/static/app.min.js` or a full URL, as the manifest has it.
    pub url: String,
    pub kind: FileKind,
    /// Lowercase, dashed.
    pub debug_id: Option<String>,
    /// The `Sourcemap` header of a minified file: its map's URL, relative or absolute.
    pub sourcemap: Option<String>,
    pub content: Vec<u8>,
}

/// A bundle, read.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub org: Option<String>,
    /// The projects the manifest names (sentry-cli writes them; they must match the request's).
    pub projects: Vec<String>,
    pub release: Option<String>,
    pub dist: Option<String>,
    pub files: Vec<BundleFile>,
}

/// A debug id written any way (dashed or not, any case) as lowercase dashed hex, if it is one.
pub fn normalize_debug_id(text: &str) -> Option<String> {
    let hex: String = text
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    let hex = hex
        .get(..32)
        .filter(|_| hex.len() == 32 || hex.len() == 33)?;
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// Reads a bundle from its bytes.
pub fn read(bytes: &[u8], limits: &BundleLimits) -> Result<Bundle, BundleError> {
    let mut zip =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| BundleError::NotZip(e.to_string()))?;
    if zip.len() > limits.max_entries {
        return Err(BundleError::TooManyEntries(zip.len(), limits.max_entries));
    }
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| BundleError::Entry(format!("#{i}"), e.to_string()))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry
            .name()
            .map_err(|e| BundleError::Entry(format!("#{i}"), e.to_string()))?
            .into_owned();
        if entry.enclosed_name().is_none() {
            return Err(BundleError::UnsafeName(name));
        }
        // The declared size is only a hint (it can lie); reading is capped either way.
        if entry.size() > limits.max_file {
            return Err(BundleError::FileTooLarge(name, limits.max_file));
        }
        let room = limits.max_file.min(limits.max_total - total);
        let mut content = Vec::new();
        (&mut entry)
            .take(room + 1)
            .read_to_end(&mut content)
            .map_err(|e| BundleError::Entry(name.clone(), e.to_string()))?;
        let len = content.len() as u64;
        if len > limits.max_file {
            return Err(BundleError::FileTooLarge(name, limits.max_file));
        }
        if len > room {
            return Err(BundleError::TooLarge(limits.max_total));
        }
        if len > 1 << 20 && len > entry.compressed_size().max(1) * limits.max_ratio {
            return Err(BundleError::Ratio(name, limits.max_ratio));
        }
        total += len;
        contents.insert(name, content);
    }
    let manifest = contents
        .remove("manifest.json")
        .ok_or(BundleError::NoManifest)?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest).map_err(|e| BundleError::BadManifest(e.to_string()))?;
    let mut projects = manifest.projects;
    if let Some(p) = manifest.project {
        projects.push(p);
    }
    let mut files = Vec::with_capacity(manifest.files.len());
    for (name, file) in manifest.files {
        let content = contents
            .remove(&name)
            .ok_or_else(|| BundleError::MissingFile(name.clone()))?;
        let header = |key: &str| {
            file.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        files.push(BundleFile {
            url: file.url,
            kind: FileKind::of(&file.ty),
            debug_id: header("debug-id").and_then(|d| normalize_debug_id(&d)),
            sourcemap: header("sourcemap").or_else(|| header("x-sourcemap")),
            content,
        });
    }
    Ok(Bundle {
        org: manifest.org,
        projects,
        release: manifest.release.filter(|r| !r.is_empty()),
        dist: manifest.dist.filter(|d| !d.is_empty()),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
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

    #[test]
    fn a_bundle_reads_with_its_manifest() {
        let manifest = br#"{"org":"picket","project":"web","release":"1.0","files":{
            "_/_/app.min.js":{"url":"~/app.min.js","type":"minified_source","headers":{"debug-id":"C3F6A3C2-1D5A-4F3E-9D7B-0A1B2C3D4E5F","Sourcemap":"app.min.js.map"}},
            "_/_/app.min.js.map":{"url":"~/app.min.js.map","type":"source_map","headers":{"debug-id":"c3f6a3c21d5a4f3e9d7b0a1b2c3d4e5f"}}}}"#;
        let bytes = zip_of(&[
            ("manifest.json", manifest),
            ("_/_/app.min.js", b"function a(){throw new Error('x')}"),
            ("_/_/app.min.js.map", b"{}"),
        ]);
        let b = read(&bytes, &BundleLimits::default()).unwrap();
        assert_eq!(
            (b.projects.clone(), b.release.as_deref()),
            (vec!["web".to_string()], Some("1.0"))
        );
        assert_eq!(b.files.len(), 2);
        let js = b
            .files
            .iter()
            .find(|f| f.kind == FileKind::MinifiedSource)
            .unwrap();
        assert_eq!(
            js.debug_id.as_deref(),
            Some("c3f6a3c2-1d5a-4f3e-9d7b-0a1b2c3d4e5f")
        );
        assert_eq!(js.sourcemap.as_deref(), Some("app.min.js.map"));
    }

    #[test]
    fn hostile_bundles_are_refused() {
        let limits = BundleLimits {
            max_file: 4 << 20,
            ..Default::default()
        };
        let bomb = vec![0u8; 8 << 20];
        let bytes = zip_of(&[("manifest.json", b"{}"), ("bomb", &bomb)]);
        assert!(matches!(
            read(&bytes, &limits),
            Err(BundleError::FileTooLarge(..))
        ));
        let ratio = vec![0u8; 3 << 20];
        let bytes = zip_of(&[("manifest.json", b"{}"), ("r", &ratio)]);
        assert!(matches!(read(&bytes, &limits), Err(BundleError::Ratio(..))));
        assert!(matches!(
            read(b"not a zip", &limits),
            Err(BundleError::NotZip(_))
        ));
        let bytes = zip_of(&[("x", b"1")]);
        assert_eq!(read(&bytes, &limits).unwrap_err(), BundleError::NoManifest);
        let bytes = zip_of(&[
            (
                "manifest.json",
                br#"{"files":{"../../x":{"url":"~/x.js","type":"source"}}}"#,
            ),
            ("../../x", b"1"),
        ]);
        assert!(matches!(
            read(&bytes, &limits),
            Err(BundleError::UnsafeName(_))
        ));
    }
}

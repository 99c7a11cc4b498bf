//! Where each followed file was left off: a [`Record`] per path (device, inode, offset and a
//! hash of the file's head, which recognizes the file after copytruncate or compression), kept
//! by a [`Positions`] store: a JSON state file for `picket tail`, the data file inside the
//! server. A position is saved only after everything before it was accepted.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::TailError;

/// Bytes of a file's start hashed to recognize it (after copytruncate, or compressed).
pub(super) const HEAD_BYTES: usize = 4096;

/// Where a file was left off.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Record {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
    /// MD5 of the file's first `head_len` bytes.
    pub head: String,
    pub head_len: u64,
}

/// Where positions are kept: a state file, or the data file.
pub trait Positions {
    fn get(&self, path: &str) -> Option<Record>;
    fn set(&mut self, path: &str, record: Record) -> Result<(), TailError>;
}

/// Positions in a JSON state file (`{"files": {path: record}}`), rewritten atomically.
pub struct StateFile {
    path: PathBuf,
    files: HashMap<String, Record>,
}

#[derive(Serialize, Deserialize, Default)]
struct StateDoc {
    files: HashMap<String, Record>,
}

impl StateFile {
    pub fn open(path: &Path) -> Result<StateFile, TailError> {
        let error = |cause: String| TailError::State {
            path: path.display().to_string(),
            cause,
        };
        let files = match std::fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice::<StateDoc>(&bytes)
                    .map_err(|e| error(format!("not a picket tail state file ({e})")))?
                    .files
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(error(e.to_string())),
        };
        Ok(StateFile {
            path: path.to_path_buf(),
            files,
        })
    }
}

impl Positions for StateFile {
    fn get(&self, path: &str) -> Option<Record> {
        self.files.get(path).cloned()
    }

    fn set(&mut self, path: &str, record: Record) -> Result<(), TailError> {
        self.files.insert(path.to_string(), record);
        let error = |e: std::io::Error| TailError::State {
            path: self.path.display().to_string(),
            cause: e.to_string(),
        };
        let doc = StateDoc {
            files: self.files.clone(),
        };
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(error)?;
            f.write_all(
                serde_json::to_string_pretty(&doc)
                    .unwrap_or_default()
                    .as_bytes(),
            )
            .map_err(error)?;
            f.sync_all().map_err(error)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(error)?;
        Ok(())
    }
}

/// Where `picket tail` keeps positions by default: `$XDG_STATE_HOME/picket/tail.json`, else
/// `~/.local/state/picket/tail.json`.
pub fn default_state_path() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("picket").join("tail.json")
}

/// The first bytes of a file.
pub(super) fn head_of(file: &mut std::fs::File) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0))?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    file.take(HEAD_BYTES as u64).read_to_end(&mut head)?;
    Ok(head)
}

pub(super) fn hash_head(head: &[u8]) -> (String, u64) {
    let head = &head[..head.len().min(HEAD_BYTES)];
    (crate::ids::hex(&Md5::digest(head)), head.len() as u64)
}

/// Whether `head` (a file's first bytes) starts like the file a record was made for.
pub(super) fn head_matches(head: &[u8], record: &Record) -> bool {
    let len = record.head_len as usize;
    head.len() >= len && hash_head(&head[..len]).0 == record.head
}

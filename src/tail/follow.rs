//! Following files: a [`Shipper`] reads what was appended since the saved position (in
//! bounded chunks), finds the unread rest of a rotated file (by inode, or by its head once
//! compressed), parses whole entries, adds source context from disk, delivers a window at a
//! time and saves the position after each accepted window.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};
use serde_json::{Value, json};

use super::delivery::{Delivery, Sink, deliver_all};
use super::parse;
use super::positions::{HEAD_BYTES, Positions, Record, hash_head, head_matches, head_of};
use super::{Options, TailError};

/// Bytes read from a file at a time, so a large backlog does not fill memory.
const READ_CHUNK: usize = 4 * 1024 * 1024;
/// Entries sent at once.
const IN_FLIGHT: usize = 8;
/// Source lines shown around a frame's line.
const CONTEXT_LINES: usize = 5;

/// What a pass over the files came to.
#[derive(Debug, Default)]
pub struct Pass {
    pub delivered: u64,
    pub refused: u64,
    /// The server asked to wait this long; what came before is saved.
    pub waiting: Option<(Duration, String)>,
    /// Files that could not be read.
    pub unreadable: Vec<TailError>,
}

/// Reads, parses and delivers the files' new entries.
pub struct Shipper<S: Sink, P: Positions> {
    pub sink: S,
    pub positions: P,
    pub options: Options,
    pub files: Vec<PathBuf>,
    sources: HashMap<String, Option<Vec<String>>>,
}

/// A stretch of bytes to ship: from which file identity and offset, and whether it is the
/// whole rest of a file that will not grow (a rotated one).
struct Chunk {
    dev: u64,
    ino: u64,
    start: u64,
    bytes: Vec<u8>,
    finished: bool,
    at_eof: bool,
}

impl<S: Sink, P: Positions> Shipper<S, P> {
    pub fn new(sink: S, positions: P, options: Options, files: Vec<PathBuf>) -> Self {
        Shipper {
            sink,
            positions,
            options,
            files,
            sources: HashMap::new(),
        }
    }

    /// One pass: every file's new complete entries, in order. `patient` waits out short
    /// back-off requests (up to this long) instead of stopping.
    pub async fn pass(&mut self, retries: u32, patient: Duration) -> Result<Pass, TailError> {
        let mut pass = Pass::default();
        for path in self.files.clone() {
            match self.ship_file(&path, &mut pass, retries, patient).await {
                Ok(()) => {}
                Err(e @ TailError::Unreadable { .. }) => pass.unreadable.push(e),
                Err(e) => return Err(e),
            }
            if pass.waiting.is_some() {
                break;
            }
        }
        Ok(pass)
    }

    async fn ship_file(
        &mut self,
        path: &Path,
        pass: &mut Pass,
        retries: u32,
        patient: Duration,
    ) -> Result<(), TailError> {
        let key = path.display().to_string();
        let unreadable = |e: std::io::Error| TailError::Unreadable {
            path: key.clone(),
            cause: e.to_string(),
        };
        let saved = self.positions.get(&key);
        let current = match std::fs::metadata(path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(unreadable(e)),
        };
        let mut opened = match &current {
            Some(meta) => {
                let mut file = std::fs::File::open(path).map_err(unreadable)?;
                let head = head_of(&mut file).map_err(unreadable)?;
                Some((meta.clone(), file, head))
            }
            None => None,
        };
        // The file saved last time, if it was rotated away (renamed, or copied and truncated):
        // finish it first.
        if let Some(record) = saved.as_ref().filter(|r| r.head_len > 0) {
            let continues = opened.as_ref().is_some_and(|(m, _, head)| {
                m.dev() == record.dev
                    && m.ino() == record.ino
                    && record.offset <= m.len()
                    && head_matches(head, record)
            });
            if !continues {
                if let Some(old) = find_rotated(path, record) {
                    let chunk = Chunk {
                        dev: record.dev,
                        ino: record.ino,
                        start: record.offset,
                        bytes: old,
                        finished: true,
                        at_eof: true,
                    };
                    if !self
                        .ship_chunk(&key, chunk, record, pass, retries, patient)
                        .await?
                    {
                        return Ok(());
                    }
                } else if current.is_some() {
                    tracing::warn!(
                        "{key} was rotated or truncated and its old content is not found \
                         (looked for {key}.1, {key}-DATE and their .gz); its unread end is lost"
                    );
                }
            }
        }
        let Some((meta, mut file, head)) = opened.take() else {
            return Ok(()); // deleted and not recreated (yet)
        };
        let mut record = match self.positions.get(&key) {
            Some(r)
                if r.dev == meta.dev()
                    && r.ino == meta.ino()
                    && r.offset <= meta.len()
                    && head_matches(&head, &r) =>
            {
                r
            }
            // New, rotated, or truncated (copytruncate): from the start.
            _ => Record {
                dev: meta.dev(),
                ino: meta.ino(),
                offset: 0,
                ..Default::default()
            },
        };
        if record.head_len < HEAD_BYTES as u64 {
            let (hash, len) = hash_head(&head);
            record.head = hash;
            record.head_len = len;
        }
        loop {
            file.seek(SeekFrom::Start(record.offset))
                .map_err(unreadable)?;
            let mut bytes = Vec::new();
            (&mut file)
                .take(READ_CHUNK as u64)
                .read_to_end(&mut bytes)
                .map_err(unreadable)?;
            if bytes.is_empty() {
                break;
            }
            let at_eof = bytes.len() < READ_CHUNK;
            let chunk = Chunk {
                dev: record.dev,
                ino: record.ino,
                start: record.offset,
                bytes,
                finished: false,
                at_eof,
            };
            let before = record.offset;
            if !self
                .ship_chunk(&key, chunk, &record, pass, retries, patient)
                .await?
            {
                return Ok(());
            }
            record = self.positions.get(&key).unwrap_or(record);
            if record.offset == before || at_eof {
                break;
            }
        }
        // Remember the file even when it had nothing new, so a later rotation is recognized.
        if self.positions.get(&key).as_ref() != Some(&record) {
            self.positions.set(&key, record)?;
        }
        Ok(())
    }

    /// Ships a chunk's complete entries, saving the position after each accepted window.
    /// Returns false when the pass must stop here (the server asked to wait).
    async fn ship_chunk(
        &mut self,
        key: &str,
        chunk: Chunk,
        record: &Record,
        pass: &mut Pass,
        retries: u32,
        patient: Duration,
    ) -> Result<bool, TailError> {
        let (mut entries, used) = parse::split(&chunk.bytes, chunk.at_eof);
        if chunk.finished && used < chunk.bytes.len() {
            // A rotated file will not grow: its unterminated last line is complete.
            entries.push((used, chunk.bytes.len()));
        }
        let mut saved = Record {
            dev: chunk.dev,
            ino: chunk.ino,
            ..record.clone()
        };
        let (mut next, mut tries, mut waited) = (0, 0, Duration::ZERO);
        while next < entries.len() {
            let window = &entries[next..(next + IN_FLIGHT).min(entries.len())];
            let events: Vec<Value> = window
                .iter()
                .map(|&(s, e)| self.event(key, &chunk, s, &chunk.bytes[s..e]))
                .collect();
            let mut stop = None;
            let mut done = 0;
            for outcome in deliver_all(&self.sink, &events).await {
                match outcome {
                    Delivery::Accepted => pass.delivered += 1,
                    Delivery::Refused(why) => {
                        pass.refused += 1;
                        eprintln!(
                            "picket tail: the server refused an entry of {key} for good; skipped: {why}"
                        );
                    }
                    other => {
                        stop = Some(other);
                        break;
                    }
                }
                done += 1;
            }
            if done > 0 {
                next += done;
                tries = 0;
                saved.offset = chunk.start + entries[next - 1].1 as u64;
                if chunk.finished && next == entries.len() {
                    // The rotated file is done; the current one is read from its start.
                    saved = Record::default();
                }
                self.positions.set(key, saved.clone())?;
            }
            match stop {
                None => {}
                Some(Delivery::Wait(wait, why)) => {
                    if waited + wait > patient {
                        pass.waiting = Some((wait, why));
                        return Ok(false);
                    }
                    waited += wait;
                    tokio::time::sleep(wait).await;
                }
                Some(Delivery::Retry(why)) => {
                    tries += 1;
                    if tries > retries {
                        return Err(TailError::Unreachable {
                            url: self.sink.describe(),
                            cause: why,
                        });
                    }
                    let backoff = Duration::from_secs(1 << (tries - 1).min(5));
                    tracing::warn!("delivery failed ({why}); trying again in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                }
                Some(Delivery::KeyRefused(why)) => return Err(TailError::KeyRefused(why)),
                Some(Delivery::Accepted | Delivery::Refused(_)) => {}
            }
        }
        if chunk.finished && entries.is_empty() {
            self.positions.set(key, Record::default())?;
        }
        Ok(true)
    }

    /// The event for one entry: what the log says, an id from the file's identity, the
    /// entry's offset and bytes, the caller's fields, and source lines around each frame.
    fn event(&mut self, key: &str, chunk: &Chunk, start: usize, bytes: &[u8]) -> Value {
        let text = String::from_utf8_lossy(bytes);
        let parsed = parse::parse(&text, self.options.format);
        let mut event = parse::to_event(&parsed);
        let mut md5 = Md5::new();
        md5.update(chunk.dev.to_le_bytes());
        md5.update(chunk.ino.to_le_bytes());
        md5.update((chunk.start + start as u64).to_le_bytes());
        md5.update(bytes);
        event["event_id"] = json!(crate::ids::hex(&md5.finalize()));
        event["server_name"] = json!(self.options.server_name.clone().unwrap_or_else(hostname));
        if let Some(e) = &self.options.environment {
            event["environment"] = json!(e);
        }
        if let Some(r) = &self.options.release {
            event["release"] = json!(r);
        }
        event["tags"] = json!({ "log_file": key });
        if let Some(values) = event["exception"]["values"].as_array_mut() {
            for value in values {
                if let Some(frames) = value["stacktrace"]["frames"].as_array_mut() {
                    for frame in frames {
                        self.add_context(frame);
                    }
                }
            }
        }
        event
    }

    /// Source lines around a frame's line, when the file is readable here.
    fn add_context(&mut self, frame: &mut Value) {
        let (Some(file), Some(line)) = (frame["abs_path"].as_str(), frame["lineno"].as_u64())
        else {
            return;
        };
        if line == 0 {
            return;
        }
        if !self.sources.contains_key(file) && self.sources.len() > 256 {
            self.sources.clear();
        }
        let lines = self.sources.entry(file.to_string()).or_insert_with(|| {
            let meta = std::fs::metadata(file).ok()?;
            (meta.is_file() && meta.len() < 4 * 1024 * 1024)
                .then(|| std::fs::read(file).ok())
                .flatten()
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .lines()
                        .map(String::from)
                        .collect()
                })
        });
        let Some(lines) = lines else { return };
        let at = (line - 1) as usize;
        let Some(context) = lines.get(at) else { return };
        frame["context_line"] = json!(context);
        frame["pre_context"] = json!(lines[at.saturating_sub(CONTEXT_LINES)..at]);
        frame["post_context"] = json!(lines[at + 1..(at + 1 + CONTEXT_LINES).min(lines.len())]);
    }
}

/// This host's name, for `server_name`.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: a writable buffer and its length.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if ok {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".into()
    }
}

/// Compressed rotated files are read up to this size.
const MAX_ROTATED: u64 = 1 << 30;

/// The unread rest of a rotated file: found among `FILE.1`, `FILE.0`, `FILE-YYYYMMDD` and the
/// like by its inode, or, once compressed (`.gz`), by its first bytes.
fn find_rotated(path: &Path, record: &Record) -> Option<Vec<u8>> {
    let dir = path.parent()?;
    let name = path.file_name()?.to_str()?;
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix(name))
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('-'))
        })
        .collect();
    candidates.sort();
    for candidate in &candidates {
        let Ok(meta) = std::fs::metadata(candidate) else {
            continue;
        };
        if meta.dev() == record.dev && meta.ino() == record.ino {
            let mut file = std::fs::File::open(candidate).ok()?;
            file.seek(SeekFrom::Start(record.offset.min(meta.len())))
                .ok()?;
            let mut rest = Vec::new();
            file.read_to_end(&mut rest).ok()?;
            return Some(rest);
        }
    }
    // Copied (copytruncate) or compressed: a new inode, recognized by its first bytes.
    for candidate in &candidates {
        let Ok(file) = std::fs::File::open(candidate) else {
            continue;
        };
        let mut whole = Vec::new();
        let read = if candidate.extension().is_some_and(|e| e == "gz") {
            flate2::read::MultiGzDecoder::new(file)
                .take(MAX_ROTATED)
                .read_to_end(&mut whole)
        } else {
            file.take(MAX_ROTATED).read_to_end(&mut whole)
        };
        if read.is_err() {
            continue;
        }
        if record.head_len > 0
            && head_matches(&whole, record)
            && whole.len() as u64 >= record.offset
        {
            return Some(whole.split_off(record.offset as usize));
        }
    }
    None
}

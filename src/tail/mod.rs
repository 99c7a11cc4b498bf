//! Log shipping: `picket tail` follows PHP and php-fpm error logs and sends each complete entry
//! as a grouped event, to any Sentry-compatible server (over HTTP) or, inside the server, to the
//! local pipeline. Positions (device, inode, offset and a hash of the file's head) are saved
//! only after the entries before them were accepted, so a crash or an outage repeats nothing
//! accepted and loses nothing; an entry's `event_id` comes from the file's identity, its offset
//! and its bytes, so an entry sent twice is stored once. Rotation by rename (also when the old
//! file was compressed), copytruncate and deletion are followed.

pub mod local;
pub mod parse;

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ids::Dsn;
use crate::outbound::{Client, OutboundError};
use parse::Format;

/// Bytes read from a file at a time, so a large backlog does not fill memory.
const READ_CHUNK: usize = 4 * 1024 * 1024;
/// Bytes of a file's start hashed to recognize it (after copytruncate, or compressed).
const HEAD_BYTES: usize = 4096;
/// Entries sent at once.
const IN_FLIGHT: usize = 8;
/// Source lines shown around a frame's line.
const CONTEXT_LINES: usize = 5;

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

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("cannot read {path}: {cause}")]
    Unreadable { path: String, cause: String },
    #[error("the server refused the key: {0}")]
    KeyRefused(String),
    #[error("cannot deliver to {url}: {cause}; what was delivered is saved, the next run resumes")]
    Unreachable { url: String, cause: String },
    #[error("cannot save positions in {path}: {cause}")]
    State { path: String, cause: String },
    #[error("{0}")]
    Store(String),
}

/// What one delivery of an event came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Accepted,
    /// The server refused this event for good (400, 413); it is skipped.
    Refused(String),
    /// The server asked to wait (429, 503) this long, then send again.
    Wait(Duration, String),
    /// The key is refused (401, 403): nothing can be delivered.
    KeyRefused(String),
    /// A network error or a server error: try again later.
    Retry(String),
}

/// Where entries go: a Sentry-compatible server, or the local pipeline.
pub trait Sink {
    fn deliver(&self, event: Value) -> impl std::future::Future<Output = Delivery> + Send;
    /// For messages: where this sink delivers.
    fn describe(&self) -> String;
}

/// Where positions are kept: a state file, or the data file.
pub trait Positions {
    fn get(&self, path: &str) -> Option<Record>;
    fn set(&mut self, path: &str, record: Record) -> Result<(), TailError>;
}

/// What an event gets besides what the log says.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub format: Format,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub server_name: Option<String>,
}

/// Sends events as envelopes to a DSN's project.
pub struct HttpSink {
    client: Client,
    dsn: Dsn,
}

impl HttpSink {
    pub fn new(dsn: Dsn, client: Client) -> HttpSink {
        HttpSink { client, dsn }
    }
}

impl Sink for HttpSink {
    async fn deliver(&self, event: Value) -> Delivery {
        let payload = event.to_string();
        let header = json!({
            "event_id": event["event_id"],
            "dsn": self.dsn.public(),
            "sent_at": crate::time::rfc3339(crate::time::now()),
        });
        let item = json!({ "type": "event", "length": payload.len() });
        let body = format!("{header}\n{item}\n{payload}\n");
        let headers = [
            ("content-type", "application/x-sentry-envelope".to_string()),
            (
                "x-sentry-auth",
                self.dsn
                    .auth_header(concat!("picket-tail/", env!("CARGO_PKG_VERSION"))),
            ),
        ];
        let url = self.dsn.envelope_url();
        match self.client.post(&url, &headers, Bytes::from(body)).await {
            Err(e @ (OutboundError::Network(_) | OutboundError::Timeout(_))) => {
                Delivery::Retry(e.to_string())
            }
            Err(e) => Delivery::KeyRefused(e.to_string()),
            Ok(reply) => {
                let text = String::from_utf8_lossy(&reply.body)
                    .chars()
                    .take(300)
                    .collect::<String>();
                let said = format!("HTTP {}: {text}", reply.status);
                match reply.status {
                    200..=299 => Delivery::Accepted,
                    429 | 503 => {
                        let wait = crate::outbound::rate_limit(429, &reply.headers, "error")
                            .unwrap_or(Duration::from_secs(1));
                        Delivery::Wait(wait, said)
                    }
                    401 | 403 => Delivery::KeyRefused(said),
                    400..=499 => Delivery::Refused(said),
                    _ => Delivery::Retry(said),
                }
            }
        }
    }

    fn describe(&self) -> String {
        self.dsn.envelope_url()
    }
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

/// Delivers events at once and returns the outcomes in their order.
async fn deliver_all<S: Sink>(sink: &S, events: &[Value]) -> Vec<Delivery> {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;
    let mut pending: Vec<Pin<Box<dyn Future<Output = Delivery> + Send + '_>>> = events
        .iter()
        .map(|e| {
            Box::pin(sink.deliver(e.clone())) as Pin<Box<dyn Future<Output = Delivery> + Send>>
        })
        .collect();
    let mut out: Vec<Option<Delivery>> = vec![None; events.len()];
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (slot, future) in out.iter_mut().zip(pending.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(d) => *slot = Some(d),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|d| d.unwrap_or_else(|| Delivery::Retry("no outcome".into())))
        .collect()
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

/// The first bytes of a file.
fn head_of(file: &mut std::fs::File) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(0))?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    file.take(HEAD_BYTES as u64).read_to_end(&mut head)?;
    Ok(head)
}

fn hash_head(head: &[u8]) -> (String, u64) {
    let head = &head[..head.len().min(HEAD_BYTES)];
    (crate::ids::hex(&Md5::digest(head)), head.len() as u64)
}

/// Whether `head` (a file's first bytes) starts like the file a record was made for.
fn head_matches(head: &[u8], record: &Record) -> bool {
    let len = record.head_len as usize;
    head.len() >= len && hash_head(&head[..len]).0 == record.head
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

/// `picket tail`, as the command line gives it.
pub struct Command {
    pub dsn: String,
    pub once: bool,
    pub state: Option<PathBuf>,
    pub options: Options,
    pub files: Vec<PathBuf>,
}

/// Back-off requests waited out during `--once` before it stops (saving what was delivered).
const ONCE_PATIENCE: Duration = Duration::from_secs(30);
/// Network failures tried again during `--once` before it gives up.
const ONCE_RETRIES: u32 = 2;
/// How often following looks at the files.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

/// Runs `picket tail`; returns the exit status.
pub fn command(cmd: Command) -> Result<u8, String> {
    let dsn = Dsn::parse(&cmd.dsn).map_err(|e| format!("bad DSN: {e}"))?;
    if dsn.scheme == "udp" {
        return Err("bad DSN: picket tail sends over http or https".into());
    }
    let state = cmd.state.clone().unwrap_or_else(default_state_path);
    if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let lock_path = state.with_extension("lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!(
                "picket tail: another picket tail is running with {}; exiting",
                state.display()
            );
            return Ok(0);
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(format!("cannot lock {}: {e}", lock_path.display()));
        }
    }
    let files = cmd
        .files
        .iter()
        .map(|f| std::path::absolute(f).map_err(|e| format!("bad path {}: {e}", f.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let client = Client::new(None, Duration::from_secs(30), crate::outbound::Policy::AnyAddress)
            .map_err(|e| e.to_string())?;
        let positions = StateFile::open(&state).map_err(|e| e.to_string())?;
        let mut shipper = Shipper::new(HttpSink::new(dsn, client), positions, cmd.options, files);
        if cmd.once {
            let pass = shipper
                .pass(ONCE_RETRIES, ONCE_PATIENCE)
                .await
                .map_err(|e| e.to_string())?;
            eprintln!(
                "picket tail: {} entries delivered{}",
                pass.delivered,
                if pass.refused > 0 {
                    format!(", {} refused by the server and skipped", pass.refused)
                } else {
                    String::new()
                }
            );
            if let Some((wait, why)) = &pass.waiting {
                eprintln!(
                    "picket tail: the server asked to wait {}s ({why}); the rest waits for the next run",
                    wait.as_secs()
                );
            }
            for e in &pass.unreadable {
                eprintln!("picket tail: {e}");
            }
            return Ok(if pass.unreadable.is_empty() { 0 } else { 1 });
        }
        let mut reported: std::collections::HashSet<String> = Default::default();
        loop {
            let pass = shipper
                .pass(u32::MAX, Duration::MAX)
                .await
                .map_err(|e| e.to_string())?;
            for e in &pass.unreadable {
                if reported.insert(e.to_string()) {
                    eprintln!("picket tail: {e}");
                }
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    })
}

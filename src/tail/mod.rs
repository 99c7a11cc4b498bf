//! Log shipping: `picket tail` follows PHP and php-fpm error logs and sends each complete entry
//! as a grouped event, to any Sentry-compatible server (over HTTP) or, inside the server, to the
//! local pipeline. Positions (device, inode, offset and a hash of the file's head) are saved
//! only after the entries before them were accepted, so a crash or an outage repeats nothing
//! accepted and loses nothing; an entry's `event_id` comes from the file's identity, its offset
//! and its bytes, so an entry sent twice is stored once. Rotation by rename (also when the old
//! file was compressed), copytruncate and deletion are followed.

pub mod delivery;
pub mod follow;
pub mod local;
pub mod parse;
pub mod positions;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::LogFormat;
use crate::ids::Dsn;
use crate::outbound::Client;
pub use delivery::{Delivery, HttpSink, Sink};
pub use follow::{Pass, Shipper};
pub use positions::{Positions, Record, StateFile, default_state_path};

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
    Store(#[from] crate::store::StoreError),
    #[error("bad DSN: {0}")]
    Dsn(String),
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    #[error("{0}")]
    Client(#[from] crate::outbound::OutboundError),
    #[error("[[tail]] {path}: {cause}")]
    Source {
        path: String,
        cause: crate::store::StoreError,
    },
}

/// What an event gets besides what the log says.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub format: LogFormat,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub server_name: Option<String>,
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
pub fn command(cmd: Command) -> Result<u8, TailError> {
    let dsn = Dsn::parse(&cmd.dsn).map_err(|e| TailError::Dsn(e.to_string()))?;
    if dsn.scheme == "udp" {
        return Err(TailError::Dsn(
            "picket tail sends over http or https".into(),
        ));
    }
    let io = |what: String| move |cause| TailError::Io { what, cause };
    let state = cmd.state.clone().unwrap_or_else(default_state_path);
    if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    }
    let lock_path = state.with_extension("lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(io(format!("cannot create {}", lock_path.display())))?;
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
            return Err(io(format!("cannot lock {}", lock_path.display()))(e));
        }
    }
    let files = cmd
        .files
        .iter()
        .map(|f| std::path::absolute(f).map_err(io(format!("bad path {}", f.display()))))
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("cannot start the async runtime".into()))?;
    runtime.block_on(async {
        let client = Client::new(None, Duration::from_secs(30), crate::outbound::Policy::AnyAddress)?;
        let positions = StateFile::open(&state)?;
        let mut shipper = Shipper::new(HttpSink::new(dsn, client), positions, cmd.options, files);
        if cmd.once {
            let pass = shipper.pass(ONCE_RETRIES, ONCE_PATIENCE).await?;
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
            let pass = shipper.pass(u32::MAX, Duration::MAX).await?;
            for e in &pass.unreadable {
                if reported.insert(e.to_string()) {
                    eprintln!("picket tail: {e}");
                }
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    })
}

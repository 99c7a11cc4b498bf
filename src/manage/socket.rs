//! The control socket: how the CLI reaches the management layer of a running server. The
//! server holds the data file's lock and listens on a Unix socket in the data directory (mode
//! 0600, so only who may read the file may act); a command sends one JSON [`Request`] line and
//! reads progress lines, then one answer line holding the operation's typed answer or its
//! [`ManageError`]. With no server running, [`call`] opens the file and applies the operation
//! itself, so every command works either way.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Actor, Handle, ManageError, Operation, Request};
use crate::config::Config;
use crate::store::StoreError;
use crate::store::backup::Progress;

/// How long a command waits for a server that holds the file but has no socket up yet.
const STARTING_SERVER_WAIT: Duration = Duration::from_secs(10);

/// The control socket of a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// One line from the server: progress of a long operation, or the answer.
#[derive(Serialize, Deserialize)]
struct Line {
    /// Rows done and total, sent before the answer by long operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<(u64, u64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ok: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ManageError>,
}

impl Line {
    fn answer(result: Result<Value, ManageError>) -> Line {
        let (ok, error) = match result {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e)),
        };
        Line {
            progress: None,
            ok,
            error,
        }
    }
}

/// Applies an operation as the operator: through a running server's socket, or on the file
/// when no server runs. A server that is starting holds the file before its socket is up, so
/// a locked file is tried again for a few seconds.
pub fn call<O: Operation>(
    config: Arc<Config>,
    op: O,
    progress: Progress<'_>,
) -> Result<O::Answer, ManageError> {
    let deadline = Instant::now() + STARTING_SERVER_WAIT;
    loop {
        if let Some(answer) = ask_server(&config.data_dir, op.clone(), progress) {
            return answer;
        }
        match Handle::open_direct(config.clone()) {
            Ok(handle) => return handle.run_with_progress(&Actor::Operator, op, progress),
            Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(ManageError::Storage(e.to_string())),
        }
    }
}

/// Sends an operation to a running server. `None` when no server listens on the socket.
pub fn ask_server<O: Operation>(
    data_dir: &Path,
    op: O,
    progress: Progress<'_>,
) -> Option<Result<O::Answer, ManageError>> {
    let request: Request = op.into();
    let mut stream = UnixStream::connect(socket_path(data_dir)).ok()?;
    let broken =
        |e: std::io::Error| Some(Err(ManageError::Storage(format!("control socket: {e}"))));
    let line = serde_json::to_string(&request).ok()?;
    if let Err(e) = stream
        .write_all(line.as_bytes())
        .and_then(|()| stream.write_all(b"\n"))
    {
        return broken(e);
    }
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if let Err(e) = reader.read_line(&mut line) {
            return broken(e);
        }
        match serde_json::from_str::<Line>(&line) {
            Ok(Line {
                progress: Some((done, total)),
                ..
            }) => progress(done, total),
            Ok(Line { ok: Some(v), .. }) => {
                return Some(serde_json::from_value(v).map_err(|e| {
                    ManageError::Storage(format!("control socket: bad answer: {e}"))
                }));
            }
            Ok(Line { error: Some(e), .. }) => return Some(Err(e)),
            _ => {
                return Some(Err(ManageError::Storage(
                    "the server closed the control socket without an answer".into(),
                )));
            }
        }
    }
}

/// Serves the control socket until the listener is dropped. Each request is applied as the
/// operator on a blocking thread (writes wait for the writer's commit).
pub async fn serve(listener: tokio::net::UnixListener, handle: Handle) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(answer_one(stream, handle.clone()));
    }
}

async fn answer_one(stream: tokio::net::UnixStream, handle: Handle) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    if tokio::io::BufReader::new(read)
        .read_line(&mut line)
        .await
        .is_err()
    {
        return;
    }
    let answer = match serde_json::from_str::<Request>(&line) {
        Err(e) => Line::answer(Err(ManageError::Invalid(format!(
            "bad control request: {e}"
        )))),
        Ok(request) => {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut work = tokio::task::spawn_blocking(move || {
                request.apply(&handle, &Actor::Operator, &move |done, total| {
                    let _ = tx.send((done, total));
                })
            });
            let result = loop {
                tokio::select! {
                    Some(p) = rx.recv() => {
                        let progress = Line { progress: Some(p), ok: None, error: None };
                        let text = serde_json::to_string(&progress).unwrap_or_default() + "\n";
                        if write.write_all(text.as_bytes()).await.is_err() {
                            break (&mut work).await;
                        }
                    }
                    result = &mut work => break result,
                }
            };
            Line::answer(
                result
                    .unwrap_or_else(|e| Err(ManageError::Storage(format!("internal error: {e}")))),
            )
        }
    };
    let text = serde_json::to_string(&answer).unwrap_or_else(|_| "{}".into()) + "\n";
    let _ = write.write_all(text.as_bytes()).await;
}

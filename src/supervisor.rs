//! Supervision, at two levels. Inside the server, every long-running worker (HTTP listener,
//! UDP listener, writer) runs under [`supervise_task`] or [`supervise_thread`]: a worker that
//! panics or fails is restarted with backoff, and its state is kept for `picket status`. Around
//! the server, `picket start` runs a small [`watchdog`] process that keeps the listening
//! sockets, starts `picket serve` as its child on them, restarts it when it dies abnormally, and
//! forwards SIGTERM, SIGINT and SIGHUP to it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Restart delays: 1 s doubling to 30 s, back to 1 s after 60 s of healthy running.
pub struct Backoff {
    next: Duration,
}

const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const HEALTHY_AFTER: Duration = Duration::from_secs(60);

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    /// The delay before the next restart of something that ran for `ran`.
    pub fn after(&mut self, ran: Duration) -> Duration {
        if ran >= HEALTHY_AFTER {
            self.next = BACKOFF_FIRST;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerState {
    pub state: &'static str,
    pub restarts: u64,
    pub last_error: Option<String>,
}

/// The workers of this server and how they are doing.
#[derive(Default)]
pub struct Workers {
    states: Mutex<BTreeMap<&'static str, WorkerState>>,
}

impl Workers {
    fn update(&self, name: &'static str, f: impl FnOnce(&mut WorkerState)) {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let entry = states.entry(name).or_insert(WorkerState {
            state: "starting",
            restarts: 0,
            last_error: None,
        });
        f(entry);
    }

    fn running(&self, name: &'static str) {
        self.update(name, |w| w.state = "running");
    }

    fn failed(&self, name: &'static str, error: String) {
        tracing::error!("worker {name} failed: {error}; restarting");
        self.update(name, |w| {
            w.state = "restarting";
            w.restarts += 1;
            w.last_error = Some(error);
        });
    }

    fn stopped(&self, name: &'static str) {
        self.update(name, |w| w.state = "stopped");
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, WorkerState> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        let now = *stop.borrow_and_update();
        if now || stop.changed().await.is_err() {
            return;
        }
    }
}

/// How a worker's run ended: workers that only stop when asked end with `()`, others with a
/// `Result` whose error says why they failed.
pub trait Ended {
    /// Why the worker failed, if it did.
    fn failure(self) -> Option<String>;
}

impl Ended for () {
    fn failure(self) -> Option<String> {
        None
    }
}

impl<E: std::fmt::Display> Ended for Result<(), E> {
    fn failure(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

/// The loop of a worker that polls for work until `stop`: `round` again at once when it did
/// something, after `idle` when it did not, after a second when it failed (logged as `what`).
pub async fn poll_until_stopped<F, Fut, E>(
    what: &str,
    mut stop: tokio::sync::watch::Receiver<bool>,
    idle: std::time::Duration,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
    E: std::fmt::Display,
{
    loop {
        let pause = match round().await {
            Ok(true) => std::time::Duration::ZERO,
            Ok(false) => idle,
            Err(e) => {
                tracing::warn!("{what}: {e}");
                std::time::Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped(&mut stop) => return,
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// Runs an async worker, restarting it with backoff when it panics, fails or returns, until
/// `stop` turns true.
pub fn supervise_task<F, Fut>(
    workers: Arc<Workers>,
    name: &'static str,
    mut stop: tokio::sync::watch::Receiver<bool>,
    make: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: Ended + Send,
{
    tokio::spawn(async move {
        let mut backoff = Backoff::default();
        loop {
            workers.running(name);
            let started = Instant::now();
            let outcome = tokio::spawn(make()).await;
            if *stop.borrow() {
                workers.stopped(name);
                return;
            }
            let error = match outcome {
                Ok(ended) => ended
                    .failure()
                    .unwrap_or_else(|| "stopped unexpectedly".to_string()),
                Err(join) if join.is_panic() => panic_message(&*join.into_panic()),
                Err(join) => join.to_string(),
            };
            workers.failed(name, error);
            tokio::select! {
                _ = tokio::time::sleep(backoff.after(started.elapsed())) => {}
                _ = stopped(&mut stop) => {
                    workers.stopped(name);
                    return;
                }
            }
        }
    })
}

/// Runs a blocking worker on its own thread, restarting it with backoff when it panics.
/// A worker that returns normally is done (the writer returns once the queue is closed).
pub fn supervise_thread(
    workers: Arc<Workers>,
    name: &'static str,
    work: impl Fn() + Send + Sync + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let work = Arc::new(work);
    std::thread::Builder::new()
        .name(format!("picket-{name}-supervisor"))
        .spawn(move || {
            let mut backoff = Backoff::default();
            loop {
                workers.running(name);
                let started = Instant::now();
                let work = work.clone();
                let outcome = std::thread::Builder::new()
                    .name(format!("picket-{name}"))
                    .spawn(move || work());
                match outcome.map(|handle| handle.join()) {
                    Ok(Ok(())) => {
                        workers.stopped(name);
                        return;
                    }
                    Ok(Err(payload)) => workers.failed(name, panic_message(&*payload)),
                    Err(e) => workers.failed(name, format!("cannot start a thread: {e}")),
                }
                std::thread::sleep(backoff.after(started.elapsed()));
            }
        })
}

/// Exit status of `picket serve` for a failure that restarting cannot fix (the data file is
/// newer than the binary, the address is taken…): the watchdog stops instead of looping.
pub const EXIT_FATAL: i32 = 78;

/// The environment variables through which the watchdog hands its sockets to the server.
pub const INHERITED_HTTP_FD: &str = "PICKET_INHERITED_HTTP_FD";
pub const INHERITED_UDP_FD: &str = "PICKET_INHERITED_UDP_FD";

/// The server's fd numbers for the inherited sockets.
const CHILD_HTTP_FD: RawFd = 3;
const CHILD_UDP_FD: RawFd = 4;

/// Runs `picket serve` (this executable with `serve_args`) as a child on the given sockets and
/// keeps it running. Returns the exit status to leave with.
pub fn watchdog(
    serve_args: Vec<OsString>,
    http: std::net::TcpListener,
    udp: Option<std::net::UdpSocket>,
) -> std::io::Result<i32> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let exe = std::env::current_exe()?;
    let child_pid = Arc::new(AtomicI32::new(0));
    let stopping = Arc::new(AtomicBool::new(false));
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let signal_handle = signals.handle();
    {
        let child_pid = child_pid.clone();
        let stopping = stopping.clone();
        std::thread::Builder::new()
            .name("picket-watchdog-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if sig != SIGHUP {
                        stopping.store(true, Ordering::SeqCst);
                    }
                    let pid = child_pid.load(Ordering::SeqCst);
                    if pid > 0 {
                        // SAFETY: kill(2) with a pid we started; a stale pid at worst gets ESRCH.
                        unsafe { libc::kill(pid, sig) };
                    }
                }
            })?;
    }

    let http_fd = http.as_raw_fd();
    let udp_fd = udp.as_ref().map(AsRawFd::as_raw_fd);
    let mut backoff = Backoff::default();
    loop {
        let mut cmd = Command::new(&exe);
        cmd.args(&serve_args)
            .env(INHERITED_HTTP_FD, CHILD_HTTP_FD.to_string());
        if udp_fd.is_some() {
            cmd.env(INHERITED_UDP_FD, CHILD_UDP_FD.to_string());
        }
        // SAFETY: only async-signal-safe fcntl/dup2 calls between fork and exec. The sockets
        // are first copied above the target numbers (close-on-exec), so that moving one cannot
        // clobber the other; dup2 onto 3 and 4 clears close-on-exec on exactly those two.
        unsafe {
            cmd.pre_exec(move || {
                let high = |fd: RawFd| match libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) {
                    n if n < 0 => Err(std::io::Error::last_os_error()),
                    n => Ok(n),
                };
                // The server must not outlive its watchdog (killed with SIGKILL, say): it
                // would hold the data file's lock with nobody to restart it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let http_copy = high(http_fd)?;
                let udp_copy = udp_fd.map(high).transpose()?;
                if libc::dup2(http_copy, CHILD_HTTP_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if let Some(copy) = udp_copy
                    && libc::dup2(copy, CHILD_UDP_FD) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let mut child = cmd.spawn()?;
        child_pid.store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
        let status = child.wait()?;
        child_pid.store(0, Ordering::SeqCst);
        let code = status.code();
        if stopping.load(Ordering::SeqCst) || code == Some(0) {
            signal_handle.close();
            return Ok(code.unwrap_or(1));
        }
        if code == Some(EXIT_FATAL) {
            eprintln!("picket: the server cannot start (exit status {EXIT_FATAL}); not restarting");
            signal_handle.close();
            return Ok(EXIT_FATAL);
        }
        let what = match (code, status.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => "stopped".to_string(),
        };
        let delay = backoff.after(started.elapsed());
        tracing::error!("the server process {what}; restarting in {delay:?}");
        eprintln!("picket: the server process {what}; restarting in {delay:?}");
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            if stopping.load(Ordering::SeqCst) {
                signal_handle.close();
                return Ok(0);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The `picket start` watchdog running the server `pid`, if one does.
pub fn watchdog_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; the parent pid follows it.
    let parent: u32 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{parent}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_picket = args.first().is_some_and(|a| a.ends_with(b"picket"));
    (is_picket && args.contains(&b"start".as_slice())).then_some(parent)
}

/// Sends SIGTERM to a process.
pub fn terminate(pid: u32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    // SAFETY: kill has no memory effects; a bad pid is an error it returns.
    if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether a process is still there (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_thirty_seconds_and_resets_when_healthy() {
        let mut b = Backoff::default();
        let quick = Duration::from_millis(10);
        let delays: Vec<u64> = (0..7).map(|_| b.after(quick).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(b.after(Duration::from_secs(61)).as_secs(), 1);
    }

    #[tokio::test]
    async fn a_panicking_task_is_restarted_and_counted() {
        let workers = Arc::new(Workers::default());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let counter = runs.clone();
        supervise_task(workers.clone(), "flaky", stop_rx, move || {
            let counter = counter.clone();
            async move {
                if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first run fails");
                }
                std::future::pending::<()>().await;
            }
        });
        // The restart comes after a one-second backoff; a loaded machine may take longer.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let state = loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let state = workers.snapshot()["flaky"].clone();
            if state.state == "running" && state.restarts > 0
                || std::time::Instant::now() > deadline
            {
                break state;
            }
        };
        assert_eq!((state.state, state.restarts), ("running", 1));
        assert!(state.last_error.unwrap().contains("first run fails"));
        stop_tx.send(true).unwrap();
    }
}

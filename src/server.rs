//! The serving process (`picket serve`, and the child of `picket start`): opens the data file,
//! starts the writer, HTTP and UDP listeners and the control socket under supervision, reloads
//! what it can on SIGHUP, and stops in order on SIGTERM/SIGINT (stop accepting, finish the
//! requests in flight, drain the queue, commit, exit 0).

use std::net::SocketAddr;
use std::os::fd::FromRawFd;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use redb::{Database, ReadableDatabase};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use crate::config::{Config, Overrides};
use crate::conn::{Gate, Guarded};
use crate::intake::http::{self, Intake};
use crate::intake::ratelimit::RateLimiter;
use crate::intake::udp;
use crate::manage::{self, Handle, Writes};
use crate::pipeline::{self, Writer};
use crate::status::Live;
use crate::store::dictionary::{self, Codec};
use crate::store::key_cache::KeyCache;
use crate::store::{self, PROJECTS, StoreError, projects};
use crate::supervisor::{self, Workers};

/// Why the server could not run, or a worker of it stopped. [`ServeError::is_fatal`] says
/// which are not worth a restart by the watchdog.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {key} {addr}: {cause}")]
    Listen {
        key: &'static str,
        addr: String,
        cause: std::io::Error,
    },
    #[error("{0}")]
    Open(StoreError),
    /// Damage to the data file found while serving: a restart cannot repair it.
    #[error("{}", StoreError::Damaged(.0.clone()))]
    Damaged(String),
    #[error(
        "{} is in use by another picket server (its control socket answers): stop that one first, or give this one another --data-dir",
        .0.display()
    )]
    InUse(std::path::PathBuf),
    #[error("{what}: {cause}")]
    Store {
        what: &'static str,
        cause: StoreError,
    },
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    #[error("{0}")]
    Outbound(#[from] crate::outbound::OutboundError),
    #[error("{0}")]
    Mail(#[from] crate::alert::mail::MailError),
    #[error("the writer's supervisor panicked while stopping")]
    WriterPanicked,
    #[error("training a compression dictionary failed: {0}")]
    Training(StoreError),
}

impl ServeError {
    /// Whether restarting cannot help: the configuration or the file must change first.
    pub fn is_fatal(&self) -> bool {
        match self {
            ServeError::Listen { .. }
            | ServeError::Outbound(_)
            | ServeError::Mail(_)
            | ServeError::InUse(_)
            | ServeError::Damaged(_) => true,
            ServeError::Open(e) => !matches!(e, StoreError::Locked { .. }),
            ServeError::Store { what, .. } => *what == FIRST_START,
            _ => false,
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |cause| ServeError::Io { what, cause }
}

/// Applies a new log filter to the running process.
pub type SetLogFilter =
    Box<dyn Fn(&str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

/// The listening sockets: inherited from the watchdog, or bound here.
struct Sockets {
    http: std::net::TcpListener,
    udp: Option<std::net::UdpSocket>,
}

fn sockets(config: &Config) -> Result<Sockets, ServeError> {
    let inherited = |var: &str| {
        let fd = std::env::var(var).ok().and_then(|v| v.parse::<i32>().ok());
        // SAFETY: removing our own variable before any other thread reads the environment.
        unsafe { std::env::remove_var(var) };
        fd
    };
    let http = match inherited(supervisor::INHERITED_HTTP_FD) {
        // SAFETY: the watchdog put a listening TCP socket at this descriptor for us alone.
        Some(fd) => unsafe { std::net::TcpListener::from_raw_fd(fd) },
        None => {
            std::net::TcpListener::bind(&config.http_addr).map_err(|cause| ServeError::Listen {
                key: "http_addr",
                addr: config.http_addr.clone(),
                cause,
            })?
        }
    };
    let udp = match inherited(supervisor::INHERITED_UDP_FD) {
        // SAFETY: as above, a bound UDP socket.
        Some(fd) => Some(unsafe { std::net::UdpSocket::from_raw_fd(fd) }),
        None if config.udp_addr.is_empty() => None,
        None => Some(
            std::net::UdpSocket::bind(&config.udp_addr).map_err(|cause| ServeError::Listen {
                key: "udp_addr",
                addr: config.udp_addr.clone(),
                cause,
            })?,
        ),
    };
    http.set_nonblocking(true)
        .map_err(io("cannot make the HTTP socket non-blocking"))?;
    if let Some(u) = &udp {
        u.set_nonblocking(true)
            .map_err(io("cannot make the UDP socket non-blocking"))?;
    }
    Ok(Sockets { http, udp })
}

/// Binds the listening sockets for the watchdog, which hands them to each server it starts.
pub fn bind_for_watchdog(
    config: &Config,
) -> Result<(std::net::TcpListener, Option<std::net::UdpSocket>), ServeError> {
    let s = sockets(config)?;
    Ok((s.http, s.udp))
}

/// Runs the server in the foreground until SIGTERM or SIGINT.
pub fn run(
    mut config: Config,
    overrides: Overrides,
    set_log_filter: SetLogFilter,
) -> Result<(), ServeError> {
    let db = Arc::new(open_store(&config)?);
    let sockets = sockets(&config)?;
    let http_addr = sockets
        .http
        .local_addr()
        .map_err(io("cannot read the HTTP socket's address"))?;
    let udp_addr = match &sockets.udp {
        Some(u) => Some(
            u.local_addr()
                .map_err(io("cannot read the UDP socket's address"))?
                .to_string(),
        ),
        None => None,
    };
    if config.base_url.is_empty() {
        // Port 0 asks for any free port; DSNs must name the one we got.
        config.http_addr = http_addr.to_string();
    }
    let config = Arc::new(config);
    first_start(&db, &config).map_err(|cause| ServeError::Store {
        what: FIRST_START,
        cause,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("picket-worker")
        .build()
        .map_err(io("cannot start the async runtime"))?;

    let workers = Arc::new(Workers::default());
    let (queue, jobs) = pipeline::queue(config.pipeline.queue_capacity);
    let writer_config = pipeline::recover(&db, &config).map_err(|cause| ServeError::Store {
        what: "cannot apply the write-ahead log",
        cause,
    })?;
    let writer_thread = {
        let (db, stats, jobs) = (db.clone(), queue.shared_stats(), jobs.clone());
        supervisor::supervise_thread(workers.clone(), "writer", move || {
            Writer::new(
                db.clone(),
                jobs.clone(),
                stats.clone(),
                writer_config.clone(),
            )
            .run();
        })
        .map_err(io("cannot start the writer"))?
    };

    let loading = |what| move |cause| ServeError::Store { what, cause };
    let keys = Arc::new(KeyCache::load(&db).map_err(loading("cannot load the client keys"))?);
    let codec =
        Arc::new(Codec::load(&db).map_err(loading("cannot load the compression dictionaries"))?);
    let symbolicator = Arc::new(crate::artifacts::Symbolicator::new(db.clone()));
    let intake = Arc::new(Intake {
        keys: keys.clone(),
        queue: queue.clone(),
        limits: config.limits.clone(),
        counters: Default::default(),
        limiter: RateLimiter::new(config.rate_limits.server()),
        default_key_limit: config.rate_limits.per_key(),
        disk: crate::intake::disk::DiskGuard::new(
            &config.data_dir,
            config.retention.min_free_disk.0,
        ),
        codec: codec.clone(),
        symbolicator: symbolicator.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
    });
    let forward_state = Arc::new(crate::forward::State::new(db.clone()));
    let forward_client = {
        let ca = &config.forward.ca_file;
        let ca = (!ca.as_os_str().is_empty()).then_some(ca.as_path());
        crate::outbound::Client::new(
            ca,
            config.forward.timeout.0,
            crate::outbound::Policy::AnyAddress,
        )?
    };
    let alert_state = Arc::new(crate::alert::State::default());
    let alerter = {
        let policy = crate::outbound::Policy::for_webhooks(config.alerts.allow_private_webhooks);
        let webhooks = crate::outbound::Client::new(None, config.alerts.webhook_timeout.0, policy)?;
        crate::alert::Alerter::new(
            db.clone(),
            intake.queue.clone(),
            &config,
            webhooks,
            alert_state.clone(),
        )?
    };
    let unsupported = Arc::new(crate::api::Unsupported::default());
    let live = Arc::new(Live {
        api_unsupported: unsupported.clone(),
        alerts: alert_state,
        mail: crate::alert::mail_state(&config),
        db: db.clone(),
        forward: forward_state.clone(),
        started: Instant::now(),
        pid: std::process::id(),
        workers: workers.clone(),
        intake: intake.clone(),
        http_addr: http_addr.to_string(),
        data_file: store::file_in(&config.data_dir),
        udp_addr,
    });
    let handle = Handle {
        db: db.clone(),
        writes: Writes::Writer(queue),
        config: config.clone(),
        live: Some(live.clone()),
        keys: Some(keys.clone()),
        symbolicator: Some(symbolicator.clone()),
    };
    let web = Arc::new(crate::web::Web::new(
        handle.clone(),
        intake.queue.shared_stats(),
    ));
    let api = Arc::new(crate::api::Api::new(handle.clone(), unsupported));
    drop(jobs);

    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = watch_signals(stop_tx, config.clone(), overrides, set_log_filter)?;
    let socket = manage::socket::socket_path(&config.data_dir);
    let served = runtime.block_on(async {
        let listener = Arc::new(
            TcpListener::from_std(sockets.http).map_err(io("cannot serve the HTTP socket"))?,
        );
        // The data file's lock is ours, so a socket left here is a dead server's.
        let _ = std::fs::remove_file(&socket);
        let control = format!("cannot create the control socket {}", socket.display());
        let control_listener = tokio::net::UnixListener::bind(&socket).map_err(io(&control))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(io(&control))?;
        tokio::spawn(manage::socket::serve(control_listener, handle));

        if let Some(udp_socket) = sockets.udp {
            let udp_socket = Arc::new(
                UdpSocket::from_std(udp_socket).map_err(io("cannot serve the UDP socket"))?,
            );
            if let Ok(addr) = udp_socket.local_addr() {
                tracing::info!("receiving raven UDP datagrams on {addr}");
            }
            let intake = intake.clone();
            supervisor::supervise_task(workers.clone(), "udp", stop_rx.clone(), move || {
                udp::serve(udp_socket.clone(), intake.clone())
            });
        }
        {
            let queue = intake.queue.clone();
            let max_age = config.retention.max_age.0;
            let stop = stop_rx.clone();
            let uploads = crate::janitor::Uploads {
                symbolicator: symbolicator.clone(),
                max_age: config.sourcemaps.max_age.0,
            };
            supervisor::supervise_task(workers.clone(), "janitor", stop_rx.clone(), move || {
                crate::janitor::run(queue.clone(), max_age, uploads.clone(), stop.clone())
            });
        }
        {
            let (db, intake, stop) = (db.clone(), intake.clone(), stop_rx.clone());
            supervisor::supervise_task(workers.clone(), "monitors", stop_rx.clone(), move || {
                crate::monitors::worker::run(db.clone(), intake.clone(), stop.clone())
            });
        }
        {
            let (intake, stop) = (intake.clone(), stop_rx.clone());
            supervisor::supervise_task(workers.clone(), "outcomes", stop_rx.clone(), move || {
                count_outcomes(intake.clone(), stop.clone())
            });
        }
        {
            let (db, queue, codec) = (db.clone(), intake.queue.clone(), codec.clone());
            let stop = stop_rx.clone();
            supervisor::supervise_task(workers.clone(), "trainer", stop_rx.clone(), move || {
                trainer(db.clone(), queue.clone(), codec.clone(), stop.clone())
            });
        }
        {
            let forwarder = crate::forward::Forwarder::new(
                db.clone(),
                intake.queue.clone(),
                forward_client,
                config.forward.clone(),
                forward_state,
            );
            let stop = stop_rx.clone();
            supervisor::supervise_task(workers.clone(), "forwarder", stop_rx.clone(), move || {
                forwarder.clone().run(stop.clone())
            });
        }
        {
            let stop = stop_rx.clone();
            supervisor::supervise_task(workers.clone(), "alerter", stop_rx.clone(), move || {
                alerter.clone().run(stop.clone())
            });
        }
        if !config.tail.is_empty() {
            let (db, intake, sources, stop) = (
                db.clone(),
                intake.clone(),
                config.tail.clone(),
                stop_rx.clone(),
            );
            supervisor::supervise_task(workers.clone(), "tail", stop_rx.clone(), move || {
                crate::tail::local::run(db.clone(), intake.clone(), sources.clone(), stop.clone())
            });
        }
        crate::conn::set_body_budget(config.limits.max_body_bytes_in_flight.0);
        let graceful = Arc::new(GracefulShutdown::new());
        let http_worker = {
            // Moved, not cloned: the writer stops only once every sender of its queue is gone.
            let fronts = Arc::new(FrontEnds {
                intake,
                web,
                api,
                live: live.clone(),
                config: config.clone(),
                gate: Arc::new(Gate::new(crate::conn::GateLimits::of(
                    &config.limits,
                    &config.trusted_proxies,
                ))),
            });
            let graceful = graceful.clone();
            let stop = stop_rx.clone();
            supervisor::supervise_task(workers.clone(), "http", stop_rx.clone(), move || {
                accept_loop(
                    listener.clone(),
                    fronts.clone(),
                    graceful.clone(),
                    stop.clone(),
                )
            })
        };
        // Every page read once in the background: damage the open did not meet stops the
        // server (status 78) before the writer trips over it.
        let scanned = db.clone();
        let stop = stop_rx.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            match store::scan(&scanned, scan_pace(stop)) {
                Ok(Some(rows)) => tracing::info!(
                    "data file read through: {rows} rows in {:.1} s",
                    started.elapsed().as_secs_f64()
                ),
                Ok(None) => {}
                Err(StoreError::Damaged(detail)) => store::report_damage(&detail),
                Err(e) => tracing::warn!("reading the data file through failed: {e}"),
            }
        });
        println!("picket: listening on http://{http_addr}");
        tracing::info!(
            "serving {} from {}",
            config.base_url(),
            store::file_in(&config.data_dir).display()
        );
        // Runs until told to stop, or until the data file turns out to be damaged.
        let mut stopping = stop_rx.clone();
        let damaged = tokio::select! {
            _ = supervisor::stopped(&mut stopping) => None,
            detail = damage_found() => Some(detail),
        };
        // A write waiting for disk space gives up: the server is stopping.
        store::backend::stop_waiting();
        let _ = http_worker.await;
        let grace = config.shutdown_timeout.0;
        match Arc::try_unwrap(graceful) {
            Ok(graceful) => {
                if tokio::time::timeout(grace, graceful.shutdown())
                    .await
                    .is_err()
                {
                    tracing::warn!("requests still in flight after {grace:?}; stopping anyway");
                }
            }
            Err(_) => {
                tracing::warn!("the HTTP worker still runs; not waiting for requests in flight")
            }
        }
        match damaged {
            Some(detail) => Err(ServeError::Damaged(detail)),
            None => Ok::<_, ServeError>(()),
        }
    });
    signals.close();
    let _ = std::fs::remove_file(&socket);
    // Dropping the runtime drops every task and with them the last senders of the queue;
    // the writer then drains what is left, commits, and returns.
    drop(live);
    runtime.shutdown_timeout(Duration::from_secs(1));
    if writer_thread.join().is_err() {
        return Err(ServeError::WriterPanicked);
    }
    tracing::info!("stopped");
    served
}

/// Resolves when damage to the data file has been reported (by the writer or the scan).
async fn damage_found() -> String {
    loop {
        if let Some(detail) = store::damage() {
            return detail.to_string();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The start-up scan's pause between chunks: it reads for at most a quarter of the time (of
/// one core), so that on a large file it neither slows the writer nor crowds its pages out of
/// the cache all at once; and it stops when the server does.
fn scan_pace(stop: watch::Receiver<bool>) -> impl FnMut() -> bool {
    let mut reading_since = Instant::now();
    move || {
        let read = reading_since.elapsed();
        std::thread::sleep((read * 3).min(Duration::from_millis(200)));
        reading_since = Instant::now();
        !*stop.borrow()
    }
}

/// How long startup waits for a management command that holds the data file to finish.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Opens the data file, waiting a little if a management command has it open right now.
/// A file that is too new or needs `upgrade` is fatal: restarting cannot fix it.
fn open_store(config: &Config) -> Result<Database, ServeError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match store::open_cached(&config.data_dir, config.pipeline.page_cache.0 as usize) {
            Ok(db) => return Ok(db),
            // Another server serving the same file: a restart never helps.
            Err(StoreError::Locked { path })
                if std::os::unix::net::UnixStream::connect(crate::manage::socket::socket_path(
                    &config.data_dir,
                ))
                .is_ok() =>
            {
                return Err(ServeError::InUse(path));
            }
            // A command holding it for a moment, or a server still starting.
            Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(ServeError::Open(e)),
        }
    }
}

/// How often what intake dropped is counted in the data file.
const OUTCOMES_INTERVAL: Duration = Duration::from_secs(2);

/// Hands what intake counted as dropped (per project) to the writer every few seconds, and
/// once more when the server stops.
async fn count_outcomes(
    intake: Arc<crate::intake::http::Intake>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(OUTCOMES_INTERVAL) => false,
            _ = supervisor::stopped(&mut stop) => true,
        };
        let counts = intake.counters.take_outcomes();
        if !counts.is_empty()
            && let Err(back) = intake.queue.count_outcomes(counts)
        {
            intake.counters.restore_outcomes(back);
        }
        if stopping {
            return Ok(());
        }
    }
}

/// How often the trainer looks whether a new compression dictionary is due.
const TRAINER_INTERVAL: Duration = Duration::from_secs(1);

/// Trains the store's compression dictionaries when they are due (see `store::dictionary`),
/// commits each through the writer and only then compresses new events with it.
async fn trainer(
    db: Arc<Database>,
    queue: crate::pipeline::Queue,
    codec: Arc<Codec>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(TRAINER_INTERVAL) => {}
            _ = supervisor::stopped(&mut stop) => return Ok(()),
        }
        let (db, queue) = (db.clone(), queue.clone());
        let trained = tokio::task::spawn_blocking(move || {
            let Some(arrived) = dictionary::due(&db)? else {
                return Ok(None);
            };
            let dict = dictionary::train(&db)?;
            let saved = dict.clone();
            queue.write_aside(move |txn| dictionary::save(txn, saved.as_ref(), arrived))?;
            Ok::<_, StoreError>(dict.map(|d| (d, arrived)))
        })
        .await
        .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()));
        match trained {
            Ok(Some((dict, arrived))) => {
                tracing::info!(
                    "compressing new events with dictionary {:016x}, trained at {arrived} events",
                    dict.id
                );
                codec.adopt(dict);
            }
            Ok(None) => {}
            Err(e) => return Err(ServeError::Training(e)),
        }
    }
}

/// What `ServeError::Store` says when the first project cannot be made.
const FIRST_START: &str = "cannot create the first project";

/// On a file with no project yet, creates `default` and says how to begin.
fn first_start(db: &Database, config: &Config) -> Result<(), StoreError> {
    let empty = {
        let txn = db.begin_read()?;
        projects::list(&txn.open_table(PROJECTS)?)?.is_empty()
    };
    if !empty {
        return Ok(());
    }
    let txn = db.begin_write()?;
    let (project, key) = projects::create(&txn, "default", crate::time::now())?;
    txn.commit().map_err(StoreError::from)?;
    println!(
        "picket: created project \"{}\" (id {})",
        project.slug, project.id
    );
    println!(
        "picket: its DSN is {}",
        config.dsn(&key.public_key, project.id)
    );
    // Named in full: run from another directory, a bare `picket createsuperuser` would look
    // for a data file that is not there.
    let data_dir = std::path::absolute(&config.data_dir).unwrap_or(config.data_dir.clone());
    println!(
        "picket: create the first admin user with: picket --data-dir {} createsuperuser --email you@example.com",
        data_dir.display()
    );
    Ok(())
}

/// SIGTERM and SIGINT stop the listeners; SIGHUP reloads the config file.
fn watch_signals(
    stop: watch::Sender<bool>,
    running: Arc<Config>,
    overrides: Overrides,
    set_log_filter: SetLogFilter,
) -> Result<signal_hook::iterator::Handle, ServeError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(io("cannot install signal handlers"))?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("picket-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    reload(&running, &overrides, &set_log_filter);
                    continue;
                }
                tracing::info!("signal {sig}: stopping");
                let _ = stop.send(true);
                return;
            }
        })
        .map_err(io("cannot start the signal thread"))?;
    Ok(handle)
}

/// Re-reads the configuration and applies what can change while running.
fn reload(running: &Config, overrides: &Overrides, set_log_filter: &SetLogFilter) {
    let fresh = match Config::load(overrides) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("SIGHUP: keeping the running configuration: {e}");
            return;
        }
    };
    match set_log_filter(&fresh.log) {
        Ok(()) => tracing::info!("SIGHUP: log filter is now '{}'", fresh.log),
        Err(e) => tracing::error!("SIGHUP: cannot apply log filter '{}': {e}", fresh.log),
    }
    let needs_restart = [
        ("data_dir", fresh.data_dir != running.data_dir),
        ("udp_addr", fresh.udp_addr != running.udp_addr),
        (
            "base_url",
            !fresh.base_url.is_empty() && fresh.base_url != running.base_url,
        ),
        ("limits", fresh.limits != running.limits),
        ("pipeline", fresh.pipeline != running.pipeline),
        ("metrics", fresh.metrics != running.metrics),
        ("organization", fresh.organization != running.organization),
        ("api", fresh.api != running.api),
    ];
    for (key, changed) in needs_restart {
        if changed {
            tracing::warn!(
                "SIGHUP: {key} changed, which takes effect at the next restart; keeping the old value"
            );
        }
    }
}

type Body = Full<Bytes>;

/// Everything that answers HTTP requests: intake, the web UI, the Web API and `/metrics`.
struct FrontEnds {
    intake: Arc<Intake>,
    web: Arc<crate::web::Web>,
    api: Arc<crate::api::Api>,
    live: Arc<Live>,
    config: Arc<Config>,
    /// The connections being served, over restarts of the accept loop.
    gate: Arc<Gate>,
}

/// Streams one HTTP/2 connection may have open at once.
const MAX_STREAMS: u32 = 64;

async fn accept_loop(
    listener: Arc<TcpListener>,
    fronts: Arc<FrontEnds>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    let limits = fronts.config.limits.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout.0)
        .max_buf_size(
            usize::try_from(limits.max_header_size.0)
                .unwrap_or(usize::MAX)
                .max(8192),
        );
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_size.0).unwrap_or(u32::MAX))
        .max_concurrent_streams(MAX_STREAMS);
    let gate = fronts.gate.clone();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: pause rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = supervisor::stopped(&mut stop) => return,
        };
        // A slot for it: at once, by closing the connection doing least, or when one frees up.
        let conn = tokio::select! {
            entered = gate.enter(peer.ip()) => match entered {
                Ok(conn) => conn,
                Err(refused) => {
                    tracing::debug!("connection from {} refused: {refused:?}", peer.ip());
                    continue;
                }
            },
            _ = supervisor::stopped(&mut stop) => return,
        };
        let _ = stream.set_nodelay(true);
        let fronts = fronts.clone();
        let serving = conn.clone();
        let service = service_fn(move |req| {
            let fronts = fronts.clone();
            let in_flight = serving.request();
            async move {
                let resp = route(req, &fronts, peer).await;
                drop(in_flight);
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let stream = Guarded::new(stream, conn.clone(), gate.clone());
        let served = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let served = graceful.watch(served.into_owned());
        let gate = gate.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = served => {}
                _ = conn.shed_notified() => {}
            }
            gate.leave(&conn);
        });
    }
}

/// Which front end answers: `/metrics`, the web UI, intake's routes, else the Web API.
async fn route(
    req: Request<hyper::body::Incoming>,
    fronts: &FrontEnds,
    peer: SocketAddr,
) -> Response<Body> {
    let path = req.uri().path();
    if path == "/metrics" {
        return metrics(&req, &fronts.live, &fronts.config);
    }
    if crate::web::is_ui_path(path) {
        return crate::web::handle(fronts.web.clone(), req, peer.ip()).await;
    }
    if crate::api::is_api_path(path) && !crate::intake::serves(path) {
        return crate::api::handle(fronts.api.clone(), req).await;
    }
    http::handle(fronts.intake.clone(), req, peer.ip()).await
}

fn metrics(req: &Request<hyper::body::Incoming>, live: &Live, config: &Config) -> Response<Body> {
    let text = |status: StatusCode, body: String| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            "content-type",
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        resp
    };
    if !config.metrics.enabled {
        return text(
            StatusCode::NOT_FOUND,
            "metrics are disabled (set metrics.enabled = true)\n".into(),
        );
    }
    if !config.metrics.token.is_empty() {
        let sent = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(config.metrics.token.as_str()) {
            return text(
                StatusCode::UNAUTHORIZED,
                "metrics need Authorization: Bearer <metrics.token>\n".into(),
            );
        }
    }
    text(StatusCode::OK, live.prometheus())
}

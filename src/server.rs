//! The serving process: opens the data file, starts the writer thread, the HTTP listener and
//! the control socket, and stops them in order on SIGTERM/SIGINT (stop accepting, finish the
//! requests in flight, drain the queue, commit, exit).

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use redb::{Database, ReadableDatabase};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::control::{self, Handle, Writes};
use crate::intake::http::{self, Intake};
use crate::intake::keys::KeyCache;
use crate::pipeline::{self, Writer, WriterConfig};
use crate::store::{self, PROJECTS, projects};

/// How long in-flight requests get to finish after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the server in the foreground until SIGTERM or SIGINT.
pub fn run(mut config: Config) -> anyhow::Result<()> {
    let db = Arc::new(store::open(&config.data_dir)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("picket-worker")
        .build()
        .context("cannot start the async runtime")?;
    let std_listener = std::net::TcpListener::bind(&config.http_addr)
        .with_context(|| format!("cannot listen on http_addr {}", config.http_addr))?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    if config.base_url.is_empty() {
        // Port 0 asks for any free port; DSNs must name the one we got.
        config.http_addr = addr.to_string();
    }
    let config = Arc::new(config);
    first_start(&db, &config)?;

    let (queue, jobs) = pipeline::queue(config.pipeline.queue_capacity);
    let writer = Writer::new(
        db.clone(),
        jobs,
        &queue,
        WriterConfig {
            batch_max: config.pipeline.batch_max,
            issue_cache: config.pipeline.issue_cache,
        },
    );
    let writer_thread = std::thread::Builder::new()
        .name("picket-writer".into())
        .spawn(move || writer.run())
        .context("cannot start the writer thread")?;

    let keys = Arc::new(KeyCache::load(&db)?);
    let intake = Arc::new(Intake {
        keys: keys.clone(),
        queue: queue.clone(),
        limits: config.limits.clone(),
        counters: Default::default(),
    });
    let handle = Handle {
        db: db.clone(),
        writes: Writes::Writer(queue.clone()),
        config: config.clone(),
    };
    drop(queue);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signals = watch_stop_signals(stop_tx)?;
    let socket = control::socket_path(&config.data_dir);
    let served = runtime.block_on(async {
        let listener = TcpListener::from_std(std_listener)?;
        // The data file's lock is ours, so a socket left here is a dead server's.
        let _ = std::fs::remove_file(&socket);
        let control_listener = tokio::net::UnixListener::bind(&socket)
            .with_context(|| format!("cannot create the control socket {}", socket.display()))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
        tokio::spawn(control::serve(control_listener, handle, keys));
        println!("picket: listening on http://{addr}");
        tracing::info!(
            "serving {} from {}",
            config.base_url(),
            store::file_in(&config.data_dir).display()
        );
        serve_http(listener, intake, stop_rx).await;
        anyhow::Ok(())
    });
    signals.close();
    let _ = std::fs::remove_file(&socket);
    // Dropping the runtime drops every task and with them the last senders of the queue;
    // the writer then drains what is left, commits, and returns.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if writer_thread.join().is_err() {
        anyhow::bail!("the writer thread panicked while stopping");
    }
    tracing::info!("stopped");
    served
}

/// Turns SIGTERM and SIGINT into a stop request for the listeners.
fn watch_stop_signals(
    stop: tokio::sync::watch::Sender<bool>,
) -> anyhow::Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .context("cannot install signal handlers")?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("picket-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                tracing::info!("signal {sig}: stopping");
                let _ = stop.send(true);
            }
        })?;
    Ok(handle)
}

/// On a file with no project yet, creates `default` and says how to begin.
fn first_start(db: &Database, config: &Config) -> anyhow::Result<()> {
    let empty = {
        let txn = db.begin_read()?;
        projects::list(&txn.open_table(PROJECTS)?)?.is_empty()
    };
    if !empty {
        return Ok(());
    }
    let txn = db.begin_write()?;
    let (project, key) = projects::create(&txn, "default", crate::time::now())?;
    txn.commit()?;
    println!(
        "picket: created project \"{}\" (id {})",
        project.slug, project.id
    );
    println!(
        "picket: its DSN is {}",
        config.dsn(&key.public_key, project.id)
    );
    println!(
        "picket: create the first admin user with: picket createsuperuser --email you@example.com"
    );
    Ok(())
}

async fn serve_http(
    listener: TcpListener,
    intake: Arc<Intake>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let intake = intake.clone();
                let service = service_fn(move |req| {
                    let intake = intake.clone();
                    async move { Ok::<_, std::convert::Infallible>(http::handle(intake, req, peer.ip()).await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; stopping anyway");
    }
}

//! Connections, whichever front end they are for (intake, the web UI, the Web API): how many
//! are served at once and from one address, the deadlines that keep a silent or trickling
//! client from holding one, and request bodies read within a size limit and a minimum rate.
//!
//! A connection must send its first request's headers within `header_read_timeout` of being
//! accepted, and the next request within `idle_timeout` of the last one (hyper also times the
//! headers of each later HTTP/1 request). A body must arrive at `min_body_rate` on average once
//! `header_read_timeout` has passed. When every slot is taken, the connection doing least makes
//! room for the new one: the one waiting longest for a request, else the one sending its body
//! slowest (below the minimum rate), so health checks, the UI and real clients are answered
//! while someone tries to exhaust the slots. A closed connection lingers briefly to drain what
//! the client is still sending, so an early answer (a 413) reaches it instead of a reset.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::ids::IpRange;

/// How long a request must have run before its body counts as slow when making room.
const SLOW_AFTER: Duration = Duration::from_secs(1);
/// How often a connection waiting for a slot looks again for one to close.
const RECHECK: Duration = Duration::from_millis(250);
/// A closed connection drains what the client still sends for at most this long…
const LINGER_TIME: Duration = Duration::from_secs(5);
/// …waiting at most this long for each read…
const LINGER_READ: Duration = Duration::from_secs(1);
/// …and discarding at most this many bytes.
const LINGER_BYTES: u64 = 64 << 20;

/// What the gate and its connections are held to.
#[derive(Clone, Debug)]
pub struct GateLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections at once from one address (0: no cap); peers in `exempt` are not capped.
    pub max_per_address: usize,
    /// Reverse proxies: every client behind one shares its address.
    pub exempt: Vec<IpRange>,
    /// From accept to the first request's headers; also the grace before a body's rate counts.
    pub header_timeout: Duration,
    /// Between requests, and with no byte either way.
    pub idle_timeout: Duration,
    /// Bytes per second a request body must average (0: no minimum).
    pub min_body_rate: u64,
}

impl GateLimits {
    /// From the configuration: `[limits]` and the reverse proxies, which are not capped.
    pub fn of(limits: &crate::config::Limits, trusted_proxies: &[IpRange]) -> GateLimits {
        GateLimits {
            max_connections: limits.max_connections.max(1),
            max_per_address: limits.max_connections_per_address,
            exempt: trusted_proxies.to_vec(),
            header_timeout: limits.header_read_timeout.0,
            idle_timeout: limits.idle_timeout.0,
            min_body_rate: limits.min_body_rate.0,
        }
    }
}

/// Why a connection was not let in.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Its address already holds `max_connections_per_address`.
    PerAddress,
}

/// The connections being served.
pub struct Gate {
    limits: GateLimits,
    registry: Mutex<Registry>,
    freed: Notify,
}

#[derive(Default)]
struct Registry {
    conns: HashMap<u64, Arc<Conn>>,
    per_address: HashMap<IpAddr, usize>,
    next: u64,
}

impl Registry {
    fn remove(&mut self, conn: &Conn) -> bool {
        if self.conns.remove(&conn.id).is_none() {
            return false;
        }
        if let Some(n) = self.per_address.get_mut(&conn.address) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&conn.address);
            }
        }
        true
    }
}

impl Gate {
    pub fn new(limits: GateLimits) -> Gate {
        Gate {
            limits,
            registry: Mutex::new(Registry::default()),
            freed: Notify::new(),
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections being served now.
    pub fn open(&self) -> usize {
        self.registry().conns.len()
    }

    /// Lets a connection from `address` in: at once when a slot is free or one can be made
    /// (closing the connection doing least), else when one frees up or can be made.
    pub async fn enter(&self, address: IpAddr) -> Result<Arc<Conn>, Refused> {
        loop {
            let freed = self.freed.notified();
            {
                let mut reg = self.registry();
                let capped = self.limits.max_per_address > 0
                    && !self.limits.exempt.iter().any(|r| r.contains(address));
                if capped
                    && reg.per_address.get(&address).copied().unwrap_or(0)
                        >= self.limits.max_per_address
                {
                    return Err(Refused::PerAddress);
                }
                if reg.conns.len() >= self.limits.max_connections.max(1)
                    && let Some(victim) = self.least_useful(&reg)
                {
                    tracing::debug!(
                        "all {} connection slots taken: closing one from {} that {}",
                        reg.conns.len(),
                        victim.address,
                        if victim.in_flight.load(Ordering::SeqCst) == 0 {
                            "waits for a request"
                        } else {
                            "sends its body too slowly"
                        }
                    );
                    reg.remove(&victim);
                    victim.shed();
                }
                if reg.conns.len() < self.limits.max_connections.max(1) {
                    reg.next += 1;
                    let conn = Arc::new(Conn::new(reg.next, address));
                    reg.conns.insert(conn.id, conn.clone());
                    *reg.per_address.entry(address).or_default() += 1;
                    return Ok(conn);
                }
            }
            // A slot frees up, or a request in flight may have become slow enough to close.
            let _ = tokio::time::timeout(RECHECK, freed).await;
        }
    }

    /// A connection is done: its slot is free.
    pub fn leave(&self, conn: &Conn) {
        if self.registry().remove(conn) {
            self.freed.notify_one();
        }
    }

    /// The connection that loses least by being closed: the one waiting longest for a request
    /// (a first one, or the next on a kept-alive connection), else the one whose request body
    /// comes slowest, when that is below the minimum rate.
    fn least_useful(&self, reg: &Registry) -> Option<Arc<Conn>> {
        let now = Instant::now();
        let waiting = reg
            .conns
            .values()
            .filter(|c| c.in_flight.load(Ordering::SeqCst) == 0)
            .min_by_key(|c| c.quiet_since());
        if let Some(c) = waiting {
            return Some(c.clone());
        }
        if self.limits.min_body_rate == 0 {
            return None;
        }
        reg.conns
            .values()
            .filter_map(|c| {
                let age = now.saturating_duration_since(c.request_since());
                let rate = c.request_bytes() as f64 / age.as_secs_f64().max(1e-3);
                (age >= SLOW_AFTER && rate < self.limits.min_body_rate as f64).then_some((c, rate))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(c, _)| c.clone())
    }
}

/// One connection as the gate sees it: whether a request is being served, since when it has
/// had none, and how much it has sent.
pub struct Conn {
    id: u64,
    address: IpAddr,
    epoch: Instant,
    in_flight: AtomicU32,
    started: AtomicU64,
    /// Milliseconds after `epoch` when the connection last had no request in flight.
    quiet_ms: AtomicU64,
    /// Milliseconds after `epoch` when the requests in flight began.
    request_ms: AtomicU64,
    bytes_read: AtomicU64,
    bytes_at_request: AtomicU64,
    shed: AtomicBool,
    closed: Notify,
}

impl Conn {
    fn new(id: u64, address: IpAddr) -> Conn {
        Conn {
            id,
            address,
            epoch: Instant::now(),
            in_flight: AtomicU32::new(0),
            started: AtomicU64::new(0),
            quiet_ms: AtomicU64::new(0),
            request_ms: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
            bytes_at_request: AtomicU64::new(0),
            shed: AtomicBool::new(false),
            closed: Notify::new(),
        }
    }

    fn ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: &AtomicU64) -> Instant {
        self.epoch + Duration::from_millis(ms.load(Ordering::SeqCst))
    }

    fn quiet_since(&self) -> Instant {
        self.at(&self.quiet_ms)
    }

    fn request_since(&self) -> Instant {
        self.at(&self.request_ms)
    }

    fn request_bytes(&self) -> u64 {
        self.bytes_read
            .load(Ordering::SeqCst)
            .saturating_sub(self.bytes_at_request.load(Ordering::SeqCst))
    }

    /// A request's headers have arrived; the guard marks it done when dropped.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::SeqCst);
        if self.in_flight.fetch_add(1, Ordering::SeqCst) == 0 {
            self.request_ms.store(self.ms(), Ordering::SeqCst);
            self.bytes_at_request
                .store(self.bytes_read.load(Ordering::SeqCst), Ordering::SeqCst);
        }
        InFlight(self.clone())
    }

    fn shed(&self) {
        self.shed.store(true, Ordering::SeqCst);
        self.closed.notify_one();
    }

    /// Resolves when the gate closes this connection to make room.
    pub async fn shed_notified(&self) {
        if !self.shed.load(Ordering::SeqCst) {
            self.closed.notified().await;
        }
    }

    /// The deadline a read waiting on this connection is held to, besides the idle timeout.
    fn quiet_deadline(&self, limits: &GateLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let wait = if self.started.load(Ordering::SeqCst) == 0 {
            limits.header_timeout
        } else {
            limits.idle_timeout
        };
        Some(self.quiet_since() + wait)
    }
}

/// A request in flight on a connection.
pub struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.quiet_ms.store(self.0.ms(), Ordering::SeqCst);
        }
    }
}

/// A connection's socket held to the gate's deadlines; it counts what it reads and, when
/// dropped, lingers to drain the client's unread bytes.
pub struct Guarded {
    stream: Option<TcpStream>,
    conn: Arc<Conn>,
    gate: Arc<Gate>,
    progress: Instant,
    timer: Pin<Box<Sleep>>,
    timed_out: bool,
}

impl Guarded {
    pub fn new(stream: TcpStream, conn: Arc<Conn>, gate: Arc<Gate>) -> Guarded {
        let now = Instant::now();
        Guarded {
            stream: Some(stream),
            conn,
            timer: Box::pin(tokio::time::sleep_until(now + gate.limits.header_timeout)),
            gate,
            progress: now,
            timed_out: false,
        }
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        // Present until drop.
        Pin::new(self.stream.as_mut().expect("the stream is kept until drop"))
    }

    fn deadline(&self) -> Instant {
        let limits = &self.gate.limits;
        let idle = self.progress + limits.idle_timeout;
        match self.conn.quiet_deadline(limits) {
            Some(quiet) => idle.min(quiet),
            None => idle,
        }
    }

    /// Fails a pending operation once its deadline has passed, else arms the timer for it.
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let deadline = self.deadline();
            if Instant::now() >= deadline {
                self.timed_out = true;
                let why = if self.conn.in_flight.load(Ordering::SeqCst) == 0 {
                    "no request came in time"
                } else {
                    "connection idle for too long"
                };
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, why));
            }
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match self.stream().poll_read(cx, buf) {
            Poll::Ready(result) => {
                let n = buf.filled().len() - before;
                if n > 0 {
                    self.progress = Instant::now();
                    self.conn.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.check(cx).map(Err),
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stream().poll_write(cx, data) {
            Poll::Ready(result) => {
                self.progress = Instant::now();
                Poll::Ready(result)
            }
            Poll::Pending => self.check(cx).map(Err),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

impl Drop for Guarded {
    /// A connection closed by picket (not one that timed out or was closed to make room)
    /// stops sending and drains what the client still sends for a moment, as nginx's
    /// lingering close does: closing with unread bytes would reset the connection and the
    /// client would lose the answer it was just sent.
    fn drop(&mut self) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        if self.timed_out || self.conn.shed.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(linger(stream));
        }
    }
}

async fn linger(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let until = Instant::now() + LINGER_TIME;
    let mut buf = vec![0u8; 16 * 1024];
    let mut drained = 0u64;
    while drained < LINGER_BYTES {
        let wait = LINGER_READ.min(until.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => drained += n as u64,
            _ => return,
        }
    }
}

/// The client's address: the connection's, or behind a trusted reverse proxy the nearest
/// address in `X-Forwarded-For` that is not a trusted proxy itself.
pub fn client_ip(headers: &hyper::HeaderMap, remote: IpAddr, trusted: &[IpRange]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    if !is_trusted(remote) {
        return remote;
    }
    let mut client = remote;
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    if let Some(list) = forwarded {
        for hop in list.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !is_trusted(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
    }
    client
}

/// The pace a request body is held to: after `grace`, the body so far must have come at
/// `min_rate` bytes per second on average (0: any pace).
#[derive(Clone, Copy, Debug)]
pub struct BodyRate {
    pub grace: Duration,
    pub min_rate: u64,
}

impl BodyRate {
    /// `limits.min_body_rate`, after `limits.header_read_timeout`.
    pub fn of(limits: &crate::config::Limits) -> BodyRate {
        BodyRate {
            grace: limits.header_read_timeout.0,
            min_rate: limits.min_body_rate.0,
        }
    }
}

/// The bytes all request bodies being read may hold at once, in KiB permits; unset (tests of
/// the library alone), no limit.
static BODY_BUDGET: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();

/// Bytes of each body not counted against the budget.
const FREE_BODY_BYTES: u64 = 64 << 10;

/// Sets what all request bodies being read may hold together (`limits.max_body_bytes_in_flight`);
/// once per process.
pub fn set_body_budget(bytes: u64) {
    let permits = usize::try_from(bytes / 1024).unwrap_or(usize::MAX).max(1);
    let permits = permits.min(tokio::sync::Semaphore::MAX_PERMITS);
    let _ = BODY_BUDGET.set(Arc::new(tokio::sync::Semaphore::new(permits)));
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BodyError {
    #[error(
        "the server holds as many request bodies as it may (limits.max_body_bytes_in_flight); retry shortly"
    )]
    Busy,
    #[error("the request body is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the request body came slower than {min_rate} bytes per second (limits.min_body_rate)")]
    TooSlow { min_rate: u64 },
    #[error("the request body could not be read: {0}")]
    Broken(String),
}

/// Reads a request body's data frames at no less than a [`BodyRate`], holding its share of
/// the bytes all bodies being read may hold (see [`set_body_budget`]) until it is dropped.
pub struct BodyReader<B> {
    body: B,
    rate: BodyRate,
    started: Instant,
    read: u64,
    held: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl<B> BodyReader<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    pub fn new(body: B, rate: BodyRate) -> BodyReader<B> {
        BodyReader {
            body,
            rate,
            started: Instant::now(),
            read: 0,
            held: None,
        }
    }

    /// Takes the budget's share for `len` more bytes; `Busy` when the budget is spent.
    fn hold(&mut self, len: usize) -> Result<(), BodyError> {
        let Some(budget) = BODY_BUDGET.get() else {
            return Ok(());
        };
        // The first bytes of every body are free: a small event is never refused for the
        // large ones (the connection slots bound what those add up to).
        let counted = |read: u64| read.saturating_sub(FREE_BODY_BYTES).div_ceil(1024);
        let (before, after) = (counted(self.read), counted(self.read + len as u64));
        let more = u32::try_from(after - before).map_err(|_| BodyError::Busy)?;
        if more == 0 {
            return Ok(());
        }
        let permit = budget
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| BodyError::Busy)?;
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        Ok(())
    }

    /// Bytes read so far.
    pub fn read(&self) -> u64 {
        self.read
    }

    /// The next piece of data; `None` at the end of the body.
    pub async fn data(&mut self) -> Option<Result<Bytes, BodyError>> {
        loop {
            let mut next = self.body.frame();
            // A frame already received (most bodies, whole in the first read) needs no timer.
            let ready = futures_util::FutureExt::now_or_never(&mut next);
            let frame = if let Some(frame) = ready {
                frame
            } else if self.rate.min_rate == 0 {
                next.await
            } else {
                let allowed = self.rate.grace
                    + Duration::from_secs_f64(self.read as f64 / self.rate.min_rate as f64);
                match tokio::time::timeout_at(self.started + allowed, next).await {
                    Ok(frame) => frame,
                    Err(_) => {
                        return Some(Err(BodyError::TooSlow {
                            min_rate: self.rate.min_rate,
                        }));
                    }
                }
            };
            match frame? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        if let Err(e) = self.hold(data.len()) {
                            return Some(Err(e));
                        }
                        self.read += data.len() as u64;
                        return Some(Ok(data));
                    }
                }
                Err(e) => return Some(Err(BodyError::Broken(e.to_string()))),
            }
        }
    }

    /// The whole body, when it is at most `limit` bytes. The pieces are joined once at the
    /// end, so a body still arriving holds what it sent and no more.
    pub async fn to_end(mut self, limit: u64) -> Result<Bytes, BodyError> {
        let mut pieces = Vec::new();
        while let Some(data) = self.data().await {
            let data = data?;
            if self.read > limit {
                return Err(BodyError::TooLarge { limit });
            }
            pieces.push(data);
        }
        Ok(Bytes::from(pieces.concat()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use std::net::Ipv4Addr;

    fn limits(max: usize, per_address: usize) -> GateLimits {
        GateLimits {
            max_connections: max,
            max_per_address: per_address,
            exempt: vec![IpRange::try_from("127.0.0.1/8".to_string()).unwrap()],
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            min_body_rate: 1024,
        }
    }

    const OUTSIDE: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[tokio::test(start_paused = true)]
    async fn a_full_gate_closes_the_connection_waiting_longest_for_a_request() {
        let gate = Gate::new(limits(2, 0));
        let oldest = gate.enter(LOOPBACK).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let busy = gate.enter(LOOPBACK).await.unwrap();
        let _request = busy.request();
        tokio::time::advance(Duration::from_secs(1)).await;
        let newest = gate.enter(LOOPBACK).await.unwrap();
        assert!(
            oldest.shed.load(Ordering::SeqCst),
            "the waiting one made room"
        );
        assert!(!busy.shed.load(Ordering::SeqCst));
        assert_eq!(gate.open(), 2);
        oldest.shed_notified().await;
        gate.leave(&oldest);
        assert_eq!(
            gate.open(),
            2,
            "leaving after being shed frees nothing twice"
        );
        drop(newest);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_body_makes_room_and_a_fast_one_waits_its_turn() {
        let gate = Arc::new(Gate::new(limits(1, 0)));
        let uploading = gate.enter(LOOPBACK).await.unwrap();
        let _request = uploading.request();
        uploading.bytes_read.fetch_add(100_000, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(2)).await;
        // 50 KB/s: above the minimum, so the new connection waits.
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter(LOOPBACK).await })
        };
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        assert!(!uploading.shed.load(Ordering::SeqCst));
        gate.leave(&uploading);
        assert!(waiter.await.unwrap().is_ok(), "served once the slot frees");

        let gate = Gate::new(limits(1, 0));
        let trickling = gate.enter(LOOPBACK).await.unwrap();
        let _request = trickling.request();
        trickling.bytes_read.fetch_add(10, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(2)).await;
        gate.enter(LOOPBACK).await.unwrap();
        assert!(trickling.shed.load(Ordering::SeqCst), "5 bytes/s made room");
    }

    #[tokio::test]
    async fn one_address_is_capped_and_a_proxy_is_not() {
        let gate = Gate::new(limits(10, 2));
        let _a = gate.enter(OUTSIDE).await.unwrap();
        let b = gate.enter(OUTSIDE).await.unwrap();
        assert_eq!(gate.enter(OUTSIDE).await.err(), Some(Refused::PerAddress));
        gate.leave(&b);
        assert!(gate.enter(OUTSIDE).await.is_ok());
        for _ in 0..5 {
            gate.enter(LOOPBACK).await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_request_is_due_within_the_header_timeout_then_within_idle() {
        let conn = Arc::new(Conn::new(1, LOOPBACK));
        let l = limits(1, 0);
        assert_eq!(conn.quiet_deadline(&l), Some(conn.epoch + l.header_timeout));
        let request = conn.request();
        assert_eq!(conn.quiet_deadline(&l), None, "no deadline while serving");
        tokio::time::advance(Duration::from_secs(3)).await;
        drop(request);
        let next = conn.quiet_deadline(&l).unwrap();
        assert_eq!(next, conn.epoch + Duration::from_secs(3) + l.idle_timeout);
    }

    /// A body that yields `chunks` with `gap` between them.
    fn paced(
        chunks: Vec<&'static [u8]>,
        gap: Duration,
    ) -> impl hyper::body::Body<Data = Bytes, Error = io::Error> + Unpin {
        let stream = futures_util::stream::unfold(chunks.into_iter(), move |mut it| async move {
            let chunk = it.next()?;
            tokio::time::sleep(gap).await;
            Some((
                Ok::<_, io::Error>(Frame::data(Bytes::from_static(chunk))),
                it,
            ))
        });
        StreamBody::new(Box::pin(stream))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_slower_than_the_minimum_rate_is_refused() {
        let rate = BodyRate {
            grace: Duration::from_secs(10),
            min_rate: 1024,
        };
        let fast = paced(vec![&[1u8; 4096]; 8], Duration::from_secs(1));
        assert_eq!(
            BodyReader::new(fast, rate)
                .to_end(1 << 20)
                .await
                .unwrap()
                .len(),
            32768
        );
        let trickle = paced(vec![b"x"; 10], Duration::from_secs(20));
        assert_eq!(
            BodyReader::new(trickle, rate).to_end(1 << 20).await,
            Err(BodyError::TooSlow { min_rate: 1024 })
        );
        let big = paced(vec![&[0u8; 4096]; 3], Duration::ZERO);
        assert_eq!(
            BodyReader::new(big, rate).to_end(10_000).await,
            Err(BodyError::TooLarge { limit: 10_000 })
        );
    }
}

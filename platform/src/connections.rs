//! Who may hold a connection, and for how long. Every HTTP server of Scoreboard serves through
//! [`serve`]:
//!
//! - a connection is refused at once — a fixed `503` written without reading anything, then
//!   closed — when `CONNECTIONS_MAX` are open, or `CONNECTIONS_PER_ADDRESS_MAX` from its
//!   address; both stay below the descriptor limit, so the process never runs out of
//!   descriptors for its database, NATS or new clients;
//! - it must send its first byte within `FIRST_BYTE_TIMEOUT`, each request head within
//!   `HEADER_READ_TIMEOUT` (hyper's), and each body within `BODY_TIMEOUT` of being asked for
//!   ([`Deadline`]); a client that stops reading is cut off after the write timeout;
//! - a failing `accept` (out of descriptors) is logged at most once a second.

use std::error::Error as StdError;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_io_timeout::TimeoutStream;
use tokio_util::sync::CancellationToken;

use crate::config::HttpConfig;
use crate::limits::{Full, Slots};
use crate::long_lived::{self, LongLived};
use crate::problem::Problem;

/// Descriptors a process keeps for what is not a client: its database and NATS connections,
/// its files, its listener.
pub const RESERVED_DESCRIPTORS: usize = 64;

/// How many descriptors this process may open: the soft limit, raised to the hard one first.
pub fn descriptor_limit() -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(1024);
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// The connection caps of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Connections open at once.
    pub total: usize,
    /// Connections open at once from one client address.
    pub per_address: usize,
}

impl Caps {
    /// The caps for a process that may open `descriptors`: `total` (default: all but
    /// [`RESERVED_DESCRIPTORS`]) and `per_address`; `Err` naming the setting when `total` is
    /// not below the limit or a cap is zero.
    pub fn new(descriptors: usize, total: Option<usize>, per_address: usize) -> Result<Self, String> {
        let available = descriptors.saturating_sub(RESERVED_DESCRIPTORS);
        let total = total.unwrap_or(available);
        if total == 0 || total > available {
            return Err(format!(
                "CONNECTIONS_MAX={total} must lie in 1..={available}: this process may open {descriptors} \
                 descriptors (ulimit -n), {RESERVED_DESCRIPTORS} of which are kept for its database, NATS and \
                 files; raise the limit or lower the setting"
            ));
        }
        if per_address == 0 {
            return Err("CONNECTIONS_PER_ADDRESS_MAX must be at least 1".into());
        }
        Ok(Self { total, per_address: per_address.min(total) })
    }
}

/// Serves `app` on `listener` within `caps` until `shutdown`, then waits for the requests in
/// flight. Handlers extract the client's address as [`crate::client::ClientIp`] (the peer, or
/// behind `http.trusted_proxies` the address they forward for). The paths `long_lived` names
/// (if any) are served without hyper's buffers when they are a connection's first request (see
/// [`crate::long_lived`]).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    http: &HttpConfig,
    caps: Caps,
    write_timeout: Duration,
    long_lived: Option<LongLived>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(http.header_read_timeout);
    builder.http2().timer(hyper_util::rt::TokioTimer::new()).enable_connect_protocol();
    let connection = Arc::new(Connection {
        builder,
        app,
        trusted: http.trusted_proxies.clone(),
        first_byte_timeout: http.first_byte_timeout,
        body_timeout: http.body_timeout,
        write_timeout,
        long_lived,
        open: metrics::gauge!("http_connections"),
    });
    let open = Slots::new(caps.total, caps.per_address);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut accept_failures = Throttle::new(Duration::from_secs(1));
    loop {
        let (socket, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors or similar: wait rather than spin, and say so once a second.
                    if let Some(since) = accept_failures.admit() {
                        tracing::warn!(error.message = %error, failures.since_last_logged = since, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A proxy's connection carries many clients' requests over its life: it counts
        // against the total only (the proxy limits its clients' connections).
        let held = if connection.trusted.contains(peer.ip()) { open.take_unkeyed() } else { open.take(peer.ip()) };
        let held = match held {
            Ok(held) => held,
            Err(full) => {
                refuse(&socket, full);
                continue;
            }
        };
        let (connection, watcher, shutdown) = (connection.clone(), graceful.watcher(), shutdown.clone());
        tokio::spawn(async move {
            let _held = held;
            connection.open.increment(1);
            connection.serve(socket, peer, watcher, shutdown).await;
            connection.open.decrement(1);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// What every connection of one server is served with.
struct Connection {
    builder: hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>,
    app: axum::Router,
    trusted: crate::client::TrustedProxies,
    first_byte_timeout: Duration,
    body_timeout: Duration,
    write_timeout: Duration,
    long_lived: Option<LongLived>,
    /// `http_connections`, registered once.
    open: metrics::Gauge,
}

impl Connection {
    async fn serve(
        &self,
        mut socket: TcpStream,
        peer: SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
        shutdown: CancellationToken,
    ) {
        use tower::ServiceExt as _;

        let mut first = [0u8; 1];
        let spoke = tokio::select! {
            () = shutdown.cancelled() => return,
            spoke = tokio::time::timeout(self.first_byte_timeout, socket.peek(&mut first)) => spoke,
        };
        if spoke.is_err() {
            metrics::counter!("http_timeouts_total", "phase" => "first_byte").increment(1);
            return;
        }
        let _ = socket.set_nodelay(true);
        let head = match self.long_lived {
            Some(streamed) if first[0] == b'G' => stream_head(&mut socket, streamed).await,
            _ => None,
        };
        // Each path's state in a box of its own: the task of a stream, which may stay open for
        // hours, holds no room for the router's futures or hyper's connection.
        if let Some(head) = head {
            let mut request = head.request;
            identify(&mut request, peer, &self.trusted);
            let Ok(response) = Box::pin(self.app.clone().oneshot(request)).await;
            match Box::pin(long_lived::respond(Pin::new(&mut socket), response, head.close, self.write_timeout)).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => {
                    tracing::debug!(error.message = %error, "stream ended with an error");
                    return;
                }
            }
        }
        let mut socket = TimeoutStream::new(socket);
        socket.set_write_timeout(Some(self.write_timeout));
        Box::pin(self.serve_with_hyper(Box::pin(socket), peer, watcher)).await;
    }

    async fn serve_with_hyper(
        &self,
        socket: Pin<Box<TimeoutStream<TcpStream>>>,
        peer: SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        use tower::ServiceExt as _;

        let (trusted, body_timeout) = (self.trusted.clone(), self.body_timeout);
        let service = self.app.clone().map_request(move |mut request: hyper::Request<Incoming>| {
            identify(&mut request, peer, &trusted);
            request.map(|body| axum::body::Body::new(Deadline::new(body, body_timeout)))
        });
        let connection = self
            .builder
            .serve_connection_with_upgrades(
                hyper_util::rt::TokioIo::new(socket),
                hyper_util::service::TowerToHyperService::new(service),
            )
            .into_owned();
        if let Err(error) = watcher.watch(connection).await {
            if error.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_timeout) {
                metrics::counter!("http_timeouts_total", "phase" => "head").increment(1);
            }
            tracing::debug!(error.message = %error, "connection ended with an error");
        }
    }
}

/// The head of a request for one of the paths `streamed` names, when the socket holds it whole
/// (see [`crate::long_lived`]), read off it; `None` leaves the socket as it was.
async fn stream_head(socket: &mut TcpStream, streamed: LongLived) -> Option<long_lived::Head> {
    let mut bytes = vec![0; long_lived::HEAD_MAX];
    let peeked = socket.peek(&mut bytes).await.ok()?;
    let head = long_lived::head(&bytes[..peeked], streamed)?;
    socket.read_exact(&mut bytes[..head.length]).await.ok()?;
    Some(head)
}

/// Tells the handlers who the client is: the peer, or behind a trusted proxy the address it
/// forwards for.
fn identify<B>(request: &mut hyper::Request<B>, peer: SocketAddr, trusted: &crate::client::TrustedProxies) {
    let forwarded = request.headers().get_all("x-forwarded-for").iter();
    let client = crate::client::ClientIp::resolve(peer.ip(), forwarded, trusted);
    request.extensions_mut().insert(client);
}

/// Writes the fixed answer to a connection over a cap, if the socket takes it at once, and
/// closes it (by dropping it): nothing is read, nothing spawned.
fn refuse(socket: &TcpStream, full: Full) {
    static ANSWERS: LazyLock<[Vec<u8>; 2]> = LazyLock::new(|| [refusal(Full::Total), refusal(Full::PerAddress)]);
    metrics::counter!("http_connections_refused_total", "reason" => full.label()).increment(1);
    let answer = match full {
        Full::Total => &ANSWERS[0],
        Full::PerAddress => &ANSWERS[1],
    };
    let _ = socket.try_write(answer);
}

/// The whole HTTP/1.1 answer to a connection refused because of `full`.
fn refusal(full: Full) -> Vec<u8> {
    let detail = match full {
        Full::Total => "too many connections to this server; retry later",
        Full::PerAddress => "too many connections from this address; close one or retry later",
    };
    let body = serde_json::to_string(&Problem::unavailable(detail)).unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Says yes at most once per `interval`, with how many times it said no in between.
struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    fn new(interval: Duration) -> Self {
        Self { interval, last: None, held_back: 0 }
    }

    /// `Some(times held back since the last yes)` when at least `interval` has passed.
    fn admit(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < self.interval) {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

/// A request body that must arrive within a time of the handler first waiting for it. The
/// clock starts only then: a body that came with its head costs no timer.
pub struct Deadline {
    body: Incoming,
    timeout: Duration,
    expires: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// `body`, to arrive within `timeout`.
    pub fn new(body: Incoming, timeout: Duration) -> Self {
        Self { body, timeout, expires: None }
    }
}

/// The error of a body that did not arrive in time: see [`timed_out`].
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within BODY_TIMEOUT")]
pub struct BodyTimedOut;

impl Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|frame| frame.map_err(Into::into))),
            Poll::Pending => {
                let timeout = this.timeout;
                let expires = this.expires.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if expires.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                metrics::counter!("http_timeouts_total", "phase" => "body").increment(1);
                Poll::Ready(Some(Err(BodyTimedOut.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Whether `error` (or what caused it) is a body that did not arrive within `BODY_TIMEOUT`.
pub fn timed_out(error: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<BodyTimedOut>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The caps the HTTP settings give (here, beside the caps: `config` knows no connection).
impl HttpConfig {
    /// The connection caps these settings give on this machine, after raising the soft
    /// descriptor limit to the hard one; `Err` naming the setting and the limit when
    /// `CONNECTIONS_MAX` is not below it or a cap is zero.
    pub fn connection_caps(&self) -> Result<Caps, String> {
        Caps::new(descriptor_limit(), self.connections_max, self.connections_per_address_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_stay_below_the_descriptor_limit() {
        assert_eq!(Caps::new(20_000, None, 256), Ok(Caps { total: 19_936, per_address: 256 }));
        assert_eq!(Caps::new(20_000, Some(1000), 5000), Ok(Caps { total: 1000, per_address: 1000 }));
        let refused = Caps::new(20_000, Some(20_000), 256).unwrap_err();
        assert!(refused.contains("CONNECTIONS_MAX=20000") && refused.contains("1..=19936"), "{refused}");
        assert!(Caps::new(64, None, 256).is_err(), "nothing left for clients");
        assert!(Caps::new(20_000, None, 0).unwrap_err().contains("CONNECTIONS_PER_ADDRESS_MAX"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_says_yes_once_an_interval_and_counts_the_rest() {
        let mut throttle = Throttle::new(Duration::from_secs(1));
        assert_eq!(throttle.admit(), Some(0));
        for _ in 0..19 {
            tokio::time::advance(Duration::from_millis(50)).await;
            assert_eq!(throttle.admit(), None);
        }
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(throttle.admit(), Some(19), "a second later, with the failures held back");
        assert_eq!(throttle.admit(), None);
    }

    #[test]
    fn a_refusal_is_a_whole_problem_answer() {
        let answer = String::from_utf8(refusal(Full::PerAddress)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 ") && head.contains("connection: close"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["code"], "unavailable");
        assert!(problem["detail"].as_str().unwrap().contains("from this address"));
    }
}

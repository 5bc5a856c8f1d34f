//! Connections that never speak, dribble their body or come in crowds cost the server a timer
//! or a refusal, never its service to others. Each test serves a small router through
//! `platform::serve` on a port of its own; other clients come from another loopback address.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::routing::{get, post};
use clap::Parser;
use platform::config::HttpConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    http: HttpConfig,
}

/// A server of `/` (hello) and `POST /echo` (the body's length; 408 when it came too slowly),
/// serving until dropped.
struct Server {
    address: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// [`Server`] with `flags` (as the binaries read them).
async fn serve(flags: &[&str]) -> Server {
    platform::metrics::prometheus();
    let cli = Cli::parse_from(std::iter::once("test").chain(flags.iter().copied()));
    let caps = cli.http.connection_caps().unwrap();
    let app = axum::Router::new().route("/", get(|| async { "hello" })).route(
        "/echo",
        post(|body: Result<Bytes, BytesRejection>| async move {
            match body {
                Ok(body) => (axum::http::StatusCode::OK, body.len().to_string()),
                Err(rejection) if platform::connections::timed_out(&rejection) => {
                    (axum::http::StatusCode::REQUEST_TIMEOUT, "too slow".to_string())
                }
                Err(rejection) => (axum::http::StatusCode::BAD_REQUEST, rejection.body_text()),
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(
        async move { platform::serve(listener, app, &cli.http, caps, Duration::from_secs(10), None, token).await },
    );
    Server { address, stop }
}

/// A connection to `server` from the loopback address `from`.
async fn connect(server: &Server, from: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0)).unwrap();
    socket.connect(server.address).await.unwrap()
}

/// Sends `request` on a new connection from `from`; the whole answer, read until the server
/// closes or 5 s pass.
async fn exchange(server: &Server, from: &str, request: &str) -> String {
    let mut connection = connect(server, from).await;
    connection.write_all(request.as_bytes()).await.unwrap();
    read_until_closed(&mut connection).await
}

async fn read_until_closed(connection: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), connection.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

const HELLO: &str = "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

#[tokio::test]
async fn a_connection_that_never_speaks_is_closed_after_the_first_byte_timeout() {
    let server = serve(&["--first-byte-timeout=300ms"]).await;
    let mut silent = connect(&server, "127.0.0.1").await;
    let started = tokio::time::Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "closed, not still open: {read:?}");
    assert!(started.elapsed() >= Duration::from_millis(250), "by the timeout, not at once: {:?}", started.elapsed());
    assert!(exchange(&server, "127.0.0.1", HELLO).await.ends_with("hello"), "a client that speaks is served");
}

#[tokio::test]
async fn a_body_that_dribbles_is_cut_off_by_the_body_timeout() {
    let server = serve(&["--body-timeout=500ms"]).await;
    let mut connection = connect(&server, "127.0.0.1").await;
    connection
        .write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\nConnection: close\r\n\r\nx")
        .await
        .unwrap();
    let (mut reader, mut writer) = connection.into_split();
    // One byte every 100 ms: each arrives well within any per-read timeout, the whole never.
    let dribbling = tokio::spawn(async move {
        while writer.write_all(b"x").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = tokio::time::Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut answer)).await;
    dribbling.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let whole = "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    assert!(exchange(&server, "127.0.0.1", whole).await.ends_with("\r\n\r\n3"), "a body sent whole is read");
}

#[tokio::test]
async fn connections_beyond_the_per_address_cap_are_refused_and_others_are_served() {
    let server = serve(&["--connections-per-address-max=4", "--first-byte-timeout=60s"]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&server, "127.0.0.1").await);
    }
    // The four silent ones are taken once accepted; give the server a moment to accept them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = exchange(&server, "127.0.0.1", HELLO).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("retry-after: 1") && refused.contains("too many connections from this address"));
    assert!(exchange(&server, "127.0.0.2", HELLO).await.ends_with("hello"), "another address is served");

    drop(held);
    let served = until_served(|| exchange(&server, "127.0.0.1", HELLO)).await;
    assert!(served.ends_with("hello"), "closing a connection frees its place: {served}");
    let metrics = platform::metrics::prometheus().render();
    assert!(metrics.contains("http_connections_refused_total{reason=\"per_address\"}"), "counted");
}

#[tokio::test]
async fn the_total_cap_refuses_beyond_it_whatever_the_address() {
    let server = serve(&["--connections-max=3", "--first-byte-timeout=60s"]).await;
    let _held =
        [connect(&server, "127.0.0.1").await, connect(&server, "127.0.0.2").await, connect(&server, "127.0.0.3").await];
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = exchange(&server, "127.0.0.4", HELLO).await;
    assert!(
        refused.starts_with("HTTP/1.1 503") && refused.contains("too many connections to this server"),
        "{refused}"
    );
}

#[test]
fn a_connection_cap_at_or_above_the_descriptor_limit_is_refused_at_start() {
    let cli = Cli::parse_from(["test", "--connections-max=100000000"]);
    let refused = cli.http.connection_caps().unwrap_err();
    assert!(refused.contains("CONNECTIONS_MAX=100000000") && refused.contains("ulimit"), "{refused}");
}

/// `attempt` until it answers (the server frees a closed connection's place once it sees the
/// close), for at most 5 s.
async fn until_served<F: std::future::Future<Output = String>>(mut attempt: impl FnMut() -> F) -> String {
    let started = tokio::time::Instant::now();
    loop {
        let answer = attempt().await;
        if !answer.starts_with("HTTP/1.1 503") || started.elapsed() > Duration::from_secs(5) {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

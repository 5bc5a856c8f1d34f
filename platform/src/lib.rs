//! What every Scoreboard process shares: tracing setup, shutdown on SIGTERM, RFC 9457 problem
//! documents, the `/healthz` `/readyz` `/metrics` endpoints, reaching PostgreSQL and NATS with
//! retries, and the definition of the JetStream stream that copies the event log.

pub mod backoff;
pub mod client;
pub mod config;
pub mod jetstream;
pub mod limits;
pub mod listener;
pub mod openapi;
pub mod operations;
pub mod params;
pub mod postgres;
pub mod problem;
pub mod shutdown;
pub mod telemetry;

pub use problem::Problem;

/// Every process's allocator: jemalloc. Requests allocate and free many small blocks on every
/// worker thread; glibc's allocator spent a third of query-svc's user time on them, contending
/// on its arena locks. jemalloc serves about 10 % more reads than glibc with the same resident
/// memory at a million players, and a steadier one than mimalloc's (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Serves `app` on `listener` until `shutdown`, then waits for the requests in flight.
///
/// Every connection gets `write_timeout` (see [`listener::StallGuard`]) and must send each
/// request's header within `http.header_read_timeout`, so a client that dribbles its header or
/// stops reading is cut off instead of holding a connection. Handlers extract the client's
/// address as [`client::ClientIp`] (the peer, or behind `http.trusted_proxies` the address
/// they forward for).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    http: &config::HttpConfig,
    write_timeout: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::Listener as _;
    use tower::ServiceExt as _;

    let mut listener = listener::StallGuard::new(listener, write_timeout);
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(http.header_read_timeout);
    builder.http2().timer(hyper_util::rt::TokioTimer::new()).enable_connect_protocol();
    let connections = hyper_util::server::graceful::GracefulShutdown::new();
    let trusted = std::sync::Arc::new(http.trusted_proxies.clone());
    loop {
        let (io, address) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let trusted = trusted.clone();
        let service = app.clone().map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let forwarded = request.headers().get_all("x-forwarded-for").iter();
            let client = client::ClientIp::resolve(address.ip(), forwarded, &trusted);
            request.extensions_mut().insert(client);
            request.map(axum::body::Body::new)
        });
        let connection = builder
            .serve_connection_with_upgrades(
                hyper_util::rt::TokioIo::new(io),
                hyper_util::service::TowerToHyperService::new(service),
            )
            .into_owned();
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(error.message = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
    Ok(())
}

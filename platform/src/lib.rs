//! What every Scoreboard process shares: tracing setup, shutdown on SIGTERM, RFC 9457 problem
//! documents, the `/healthz` `/readyz` `/metrics` endpoints, reaching PostgreSQL and NATS with
//! retries, and the definition of the JetStream stream that copies the event log.

pub mod backoff;
pub mod config;
pub mod jetstream;
pub mod listener;
pub mod operations;
pub mod postgres;
pub mod problem;
pub mod shutdown;
pub mod telemetry;

pub use problem::Problem;

/// Serves `app` on `listener` until `shutdown`, then waits for the requests in flight.
///
/// Every connection gets `write_timeout` (see [`listener::StallGuard`]); handlers can extract
/// the client's address as `ConnectInfo<listener::ClientAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    write_timeout: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener::StallGuard::new(listener, write_timeout),
        app.into_make_service_with_connect_info::<listener::ClientAddr>(),
    )
    .with_graceful_shutdown(shutdown.cancelled_owned())
    .await
}

//! query-svc: serves the leaderboard, players' ranks, the audit log and live SSE and
//! WebSocket streams. The board lives in memory, kept current from the projector's change
//! announcements, so reads and streams never query PostgreSQL per request.

pub mod api;
pub mod listener;
pub mod live;
pub mod streams;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::http::{HeaderName, Method};
use axum::routing::get;
use clap::Args;
use platform::config::{DatabaseConfig, NatsConfig, parse_duration};
use platform::operations::{self, Readiness};
use store::{PgEventLog, PgLeaderboard};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{Any, CorsLayer};

use crate::api::Reader;
use crate::listener::StallGuard;
use crate::live::LiveBoard;
use crate::streams::Streams;

/// Everything `query-svc` needs.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "QUERY_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: std::net::SocketAddr,
    /// The read model and the event log.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The subject the projector announces changes on.
    #[command(flatten)]
    pub nats: NatsConfig,
    /// How long `min_position` waits for the board before answering `503 projection_lagging`.
    #[arg(long, env = "READ_YOUR_WRITES_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub read_your_writes_timeout: Duration,
    /// How often an idle live stream sends a heartbeat.
    #[arg(long, env = "STREAM_HEARTBEAT", default_value = "15s", value_parser = parse_duration)]
    pub stream_heartbeat: Duration,
    /// A client whose socket accepts nothing for this long is disconnected.
    #[arg(long, env = "STREAM_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub stream_write_timeout: Duration,
}

/// The routes of query-svc.
pub fn router(reader: Reader, streams: Streams, readiness: Readiness) -> Router {
    let reads = Router::new()
        .route("/v1/leaderboard", get(api::leaderboard))
        .route("/v1/players/{player_id}", get(api::player))
        .route("/v1/events", get(api::log))
        .route("/v1/players/{player_id}/events", get(api::player_log))
        .with_state(reader);
    let live = Router::new()
        .route("/v1/leaderboard/stream", get(streams::sse))
        .route("/v1/leaderboard/ws", get(streams::websocket))
        .with_state(streams);
    reads
        .merge(live)
        .merge(operations::router(readiness))
        .fallback(platform::problem::not_found)
        .layer(axum::middleware::from_fn(operations::track_http))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET])
                .allow_headers([HeaderName::from_static("last-event-id")]),
        )
}

/// Runs query-svc on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Some(pool) =
        platform::postgres::connect_and_migrate(&config.database, &shutdown).await.context("DATABASE_URL")?
    else {
        return Ok(());
    };
    let nats = platform::jetstream::connect(&config.nats.nats_url, "query-svc").await.context("NATS_URL")?;
    let live = Arc::new(LiveBoard::default());
    let keeper = tokio::spawn(live::keep_current(
        live.clone(),
        PgLeaderboard::new(pool.clone()),
        nats.clone(),
        config.nats.nats_changes_subject.clone(),
        shutdown.clone(),
    ));
    let readiness = Readiness::default()
        .with("board", {
            let live = live.clone();
            move || {
                let loaded = live.is_loaded();
                async move { if loaded { Ok(()) } else { Err("not loaded yet".to_string()) } }
            }
        })
        .with("nats", {
            let nats = nats.clone();
            move || {
                let nats = nats.clone();
                async move { platform::jetstream::is_connected(&nats) }
            }
        });
    let reader = Reader {
        live: live.clone(),
        log: PgEventLog::new(pool),
        read_your_writes_timeout: config.read_your_writes_timeout,
    };
    let streams = Streams { live, heartbeat: config.stream_heartbeat, shutdown: shutdown.clone() };
    let app = router(reader, streams, readiness);

    tracing::info!(addr = %listener.local_addr()?, "query-svc listening");
    axum::serve(StallGuard::new(listener, config.stream_write_timeout), app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .context("serving HTTP")?;
    keeper.await.context("board keeper")?;
    nats.drain().await.ok();
    Ok(())
}

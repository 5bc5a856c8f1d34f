//! projector: folds the JetStream copy of the event log into the leaderboard read model in
//! PostgreSQL, exactly once, and tells the query services what changed.

pub mod audit;
pub mod projection;

use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use clap::Args;
use platform::config::{DatabaseConfig, NatsConfig, parse_duration};
use platform::operations::{self, Readiness};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::projection::{Projection, Settings};

/// Everything `projector` needs.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on (health and metrics).
    #[arg(long, env = "PROJECTOR_ADDR", default_value = "127.0.0.1:8082")]
    pub addr: std::net::SocketAddr,
    /// The read model's database (the event log's).
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The stream to consume and the subject to announce changes on.
    #[command(flatten)]
    pub nats: NatsConfig,
    /// Name of the durable JetStream consumer.
    #[arg(long, env = "PROJECTOR_CONSUMER", default_value = "scoreboard-projector")]
    pub consumer: String,
    /// The most events folded in one transaction.
    #[arg(long, env = "PROJECTOR_BATCH_MAX", default_value_t = 1000)]
    pub batch_max: usize,
    /// How long JetStream waits for an acknowledgement before redelivering.
    #[arg(long, env = "PROJECTOR_ACK_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub ack_wait: Duration,
}

/// Runs the projector on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Some(pool) =
        platform::postgres::connect_and_migrate(&config.database, &shutdown).await.context("DATABASE_URL")?
    else {
        return Ok(());
    };
    let nats = platform::jetstream::connect(&config.nats.nats_url, "projector").await.context("NATS_URL")?;
    let settings = Settings {
        stream: config.nats.log_stream(),
        consumer: config.consumer.clone(),
        batch_max: config.batch_max.max(1),
        ack_wait: config.ack_wait,
        changes_subject: config.nats.nats_changes_subject.clone(),
    };
    let projection = tokio::spawn(Projection::new(pool.clone(), nats.clone(), settings).run(shutdown.clone()));

    let readiness = Readiness::default()
        .with("postgres", move || {
            let pool = pool.clone();
            async move { sqlx::query("SELECT 1").execute(&pool).await.map(drop).map_err(|e| e.to_string()) }
        })
        .with("nats", {
            let nats = nats.clone();
            move || {
                let nats = nats.clone();
                async move { platform::jetstream::is_connected(&nats) }
            }
        });
    let app = Router::new()
        .merge(operations::router(readiness))
        .fallback(platform::problem::not_found)
        .layer(axum::middleware::from_fn(operations::track_http));
    tracing::info!(addr = %listener.local_addr()?, "projector listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await.context("serving HTTP")?;
    projection.await.context("projection task")?;
    nats.drain().await.ok();
    Ok(())
}

//! query-svc: serves the leaderboard, ranks and live streams.

use anyhow::Context as _;
use axum::Router;
use clap::Args;
use platform::config::{DatabaseConfig, NatsConfig};
use platform::operations::{self, Readiness};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Everything `query-svc` needs.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "QUERY_ADDR", default_value = "127.0.0.1:8081")]
    pub addr: std::net::SocketAddr,
    /// The read model's database.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// NATS.
    #[command(flatten)]
    pub nats: NatsConfig,
}

/// Runs query-svc on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let Some(pool) =
        platform::postgres::connect_and_migrate(&config.database, &shutdown).await.context("DATABASE_URL")?
    else {
        return Ok(());
    };
    let nats = platform::jetstream::connect(&config.nats.nats_url, "query-svc").await.context("NATS_URL")?;
    let readiness = Readiness::default()
        .with("postgres", move || {
            let pool = pool.clone();
            async move { sqlx::query("SELECT 1").execute(&pool).await.map(drop).map_err(|e| e.to_string()) }
        })
        .with("nats", move || {
            let nats = nats.clone();
            async move { platform::jetstream::is_connected(&nats) }
        });
    let app = Router::new().merge(operations::router(readiness)).fallback(platform::problem::not_found);
    tracing::info!(addr = %listener.local_addr()?, "query-svc listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await.context("serving HTTP")?;
    Ok(())
}

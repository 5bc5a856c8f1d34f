//! command-svc: verifies action tokens, appends `ScoreAwarded` events to the PostgreSQL event
//! log in group commits, and relays the log to JetStream.
//!
//! `run` is the whole service; `main` only parses configuration and calls it, so tests run the
//! same code in process.

pub mod api;
pub mod append;
pub mod config;
pub mod limits;
pub mod mint;
pub mod relay;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, header};
use axum::routing::post;
use platform::operations::{self, Readiness};
use store::PgEventLog;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{Any, CorsLayer};

pub use api::{ActionAccepted, ActionDesk};
pub use config::{Config, TokenConfig};

use crate::append::Appender;
use crate::limits::RateLimits;
use crate::relay::Relay;

/// The routes of command-svc: `POST /v1/actions` and the operations endpoints.
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: rate limits key on
/// the client's address.
pub fn router(desk: ActionDesk, body_limit: usize, readiness: Readiness) -> Router {
    Router::new()
        .route("/v1/actions", post(api::submit_action))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(desk)
        .merge(operations::router(readiness))
        .fallback(platform::problem::not_found)
        .layer(axum::middleware::from_fn(operations::track_http))
        // Tokens are the credential, not cookies: any origin may submit.
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE]),
        )
}

/// Runs command-svc on `listener` until `shutdown` is cancelled.
///
/// Shutdown order: stop accepting connections and answer every request already accepted;
/// let the group-commit task drain; then give the relay a last chance to publish; exit.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let catalog = config.tokens.catalog().context("loading the action catalog")?;
    let Some(pool) =
        platform::postgres::connect_and_migrate(&config.database, &shutdown).await.context("DATABASE_URL")?
    else {
        return Ok(());
    };
    let log = PgEventLog::new(pool);
    let nats = platform::jetstream::connect(&config.nats.nats_url, "command-svc").await.context("NATS_URL")?;

    let committed = Arc::new(Notify::new());
    let (appender, group_commit) =
        Appender::spawn(log.clone(), config.append_batch_max, config.append_timeout, committed.clone());
    let relay_stop = CancellationToken::new();
    let relay = Relay::new(log.clone(), async_nats::jetstream::new(nats.clone()), config.nats.log_stream(), committed);
    let relay = tokio::spawn(relay.run(relay_stop.clone()));

    let limits = RateLimits::new(config.limits.rate_limit_per_address, config.limits.rate_limit_per_player);
    let housekeeping = tokio::spawn(forget_idle_clients(limits.clone(), shutdown.clone()));
    let desk = ActionDesk {
        keys: Arc::new(config.tokens.action_keys.clone()),
        policy: config.tokens.policy(),
        catalog: Arc::new(catalog),
        limits,
        appender,
    };
    // NATS is reported but does not gate readiness: actions are accepted while it is down.
    let readiness = Readiness::default().with("postgres", {
        let log = log.clone();
        move || {
            let log = log.clone();
            async move { log.ping().await.map_err(|e| e.to_string()) }
        }
    });
    let app = router(desk, config.limits.body_limit_bytes, readiness);

    tracing::info!(addr = %listener.local_addr()?, "command-svc listening");
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .context("serving HTTP")?;
    tracing::info!("stopped accepting; draining the group commit");
    group_commit.await.context("group commit task")?;
    relay_stop.cancel();
    relay.await.context("relay task")?;
    housekeeping.await.context("housekeeping task")?;
    nats.drain().await.ok();
    tracing::info!("command-svc stopped");
    Ok(())
}

async fn forget_idle_clients(limits: RateLimits, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => limits.forget_idle(),
        }
    }
}

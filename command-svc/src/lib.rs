//! command-svc: verifies action tokens, appends `ScoreAwarded` events to the event log in
//! group commits, and relays the log to JetStream.
//!
//! [`command_side`] builds the action endpoint over any [`EventStore`]; [`run`] is the
//! distributed service (PostgreSQL and JetStream); `main` only parses configuration and calls
//! it, so tests run the same code in process.

pub mod actions;
pub mod append;
pub mod checkpoints;
pub mod config;
pub mod desk;
pub mod error;
pub mod limits;
pub mod mint;
pub mod moderation;
pub mod relay;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use platform::metrics::{Kind, Metric};
use platform::probes::Readiness;
use store::{EventStore, PgEventLog};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use actions::ActionAccepted;
pub use config::{AppendConfig, AuditConfig, Config, KeyConfig, LimitConfig, TokenRules};
pub use desk::{ActionDesk, Trust, TrustInForce};
pub use error::ActionError;

use crate::append::Appender;
use crate::limits::RateLimits;
use crate::relay::Relay;

/// The metrics command-svc records, beside those of every HTTP server ([`platform::metrics::SHARED`]).
pub const METRICS: &[Metric] = &[
    ("actions_total", Kind::Counter, "POST /v1/actions answers, by outcome (accepted, retried, or the problem code)."),
    ("append_batch_size", Kind::Histogram, "Events per group-commit transaction."),
    ("append_batch_seconds", Kind::Histogram, "Time of one group-commit append, isolating retries included."),
    ("append_queue_full_total", Kind::Counter, "Actions refused with 503 because the group-commit queue was full."),
    (
        "trust_reloads_total",
        Kind::Counter,
        "Reloads of keys, operators and catalog on SIGHUP, by outcome (applied, refused).",
    ),
    (
        "checkpoints_total",
        Kind::Counter,
        "Checkpoints of the Merkle tree signed, by outcome (signed, failed, unpublished).",
    ),
    ("checkpoint_tree_size", Kind::Gauge, "Tree size of the latest checkpoint this process signed."),
    (
        "moderation_events_total",
        Kind::Counter,
        "Bans, unbans and revocations asked for by operators, by outcome (appended, refused).",
    ),
    ("relay_published_position", Kind::Gauge, "Log position of the last event published to JetStream."),
    ("relay_lag_events", Kind::Gauge, "Events in the log not yet published to JetStream."),
    ("relay_published_total", Kind::Counter, "Events published to JetStream."),
    ("relay_errors_total", Kind::Counter, "Relay rounds interrupted by an error."),
    (
        "relay_foreign_messages_total",
        Kind::Counter,
        "Stream messages the relay stepped over: not written by a relay of this log.",
    ),
    (
        "relay_resynchronisations_total",
        Kind::Counter,
        "Times the relay resynchronised after someone else wrote into the stream.",
    ),
    (
        "relay_diverged",
        Kind::Gauge,
        "1 while the stream holds an event beyond the log's head (the log is behind the stream).",
    ),
];

/// How long a write may stall before the client is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// `POST /v1/actions` and the moderation endpoints, served by `desk`.
pub fn routes(desk: ActionDesk, body_limit: usize) -> Router {
    Router::new()
        .route("/v1/actions", post(actions::submit_action))
        .route("/v1/admin/players/{player_id}/ban", post(moderation::ban))
        .route("/v1/admin/players/{player_id}/unban", post(moderation::unban))
        .route("/v1/admin/revocations", post(moderation::revoke))
        .route("/v1/admin/flags", get(moderation::flags))
        .route("/v1/admin/stats", get(stats::stats))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(desk)
}

/// The routes of [`routes`], described.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        actions::submit_action,
        moderation::ban,
        moderation::unban,
        moderation::revoke,
        moderation::flags,
        stats::stats
    ),
    modifiers(&OperatorCredential)
)]
pub struct Routes;

/// The operators' bearer credential (`ADMIN_TOKENS`) the moderation endpoints require.
struct OperatorCredential;

impl utoipa::Modify for OperatorCredential {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let scheme = Http::builder()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An operator's secret from ADMIN_TOKENS or ADMIN_TOKENS_FILE"))
            .build();
        api.components.get_or_insert_default().add_security_scheme("operator", SecurityScheme::Http(scheme));
    }
}

/// command-svc's OpenAPI description, served at `/openapi.json` and checked in as
/// `docs/openapi/command-svc.json`.
pub fn api_description() -> utoipa::openapi::OpenApi {
    platform::openapi::describe(
        "Scoreboard command-svc",
        "The write side of Scoreboard: signed action tokens in, durable ScoreAwarded events out.",
        <Routes as utoipa::OpenApi>::openapi(),
    )
}

/// The tasks behind the action endpoint, to be finished after HTTP stopped.
pub struct Background {
    group_commit: JoinHandle<()>,
    housekeeping: JoinHandle<()>,
    relay: Option<(CancellationToken, JoinHandle<()>)>,
    checkpoints: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Background {
    /// Adds the relay that publishes the log to JetStream.
    pub fn with_relay(mut self, relay: Relay) -> Self {
        let stop = CancellationToken::new();
        self.relay = Some((stop.clone(), tokio::spawn(relay.run(stop))));
        self
    }

    /// Adds the task that signs checkpoints of `log`; [`Background::finish`] stops it once the
    /// group commit drained, after a last checkpoint that covers every append.
    pub async fn with_checkpoints<S: EventStore>(
        mut self,
        log: S,
        audit: &AuditConfig,
        publisher: Option<checkpoints::Publisher>,
    ) -> anyhow::Result<Self> {
        let signer = checkpoints::signer(audit, &log).await?;
        tracing::info!(verifier = %signer.verifier(), "signing checkpoints");
        let stop = CancellationToken::new();
        let task = checkpoints::sign_periodically(log, signer, audit.checkpoint_interval, publisher, stop.clone());
        self.checkpoints = Some((stop, tokio::spawn(task)));
        Ok(self)
    }

    /// Waits for the group commit to drain (every handle of its desk must be dropped, i.e. the
    /// router stopped serving), then signs a last checkpoint and gives the relay its last chance
    /// to publish.
    pub async fn finish(self) -> anyhow::Result<()> {
        self.group_commit.await.context("group commit task")?;
        self.housekeeping.await.context("housekeeping task")?;
        if let Some((stop, checkpoints)) = self.checkpoints {
            stop.cancel();
            checkpoints.await.context("checkpoint task")?;
        }
        if let Some((stop, relay)) = self.relay {
            stop.cancel();
            relay.await.context("relay task")?;
        }
        Ok(())
    }
}

/// The action desk over `log` and the tasks behind it (serve it with [`routes`]). `committed`
/// is notified after each commit that appended something.
pub fn command_side<S: EventStore>(
    log: S,
    trust: Trust,
    tokens: &TokenRules,
    limits: &LimitConfig,
    append: &AppendConfig,
    committed: Arc<Notify>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(ActionDesk, Background)> {
    let history = desk::History::of(log.clone());
    let (appender, group_commit) =
        Appender::spawn(log, append.append_batch_max, append.append_queue_max, append.append_timeout, committed);
    let rate_limits = RateLimits::new(limits.rate_limit_per_address, limits.rate_limit_per_player);
    let housekeeping = tokio::spawn(forget_idle_clients(rate_limits.clone(), shutdown.clone()));
    let desk =
        ActionDesk { trust: TrustInForce::new(trust), policy: tokens.policy(), limits: rate_limits, appender, history };
    Ok((desk, Background { group_commit, housekeeping, relay: None, checkpoints: None }))
}

/// Runs command-svc on `listener` until `shutdown` is cancelled.
///
/// Shutdown order: stop accepting connections and answer every request already accepted;
/// let the group-commit task drain; then give the relay a last chance to publish; exit.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    // The recorder first, so that what the service records while starting is not lost.
    platform::metrics::install(METRICS);
    let connections = config.http.connection_caps().map_err(anyhow::Error::msg)?;
    let Some(pool) =
        platform::postgres::connect_and_migrate(&config.database, &shutdown).await.context("DATABASE_URL")?
    else {
        return Ok(());
    };
    let log = PgEventLog::new(pool);
    let nats = platform::nats::connect(&config.nats, "command-svc").await.context("NATS_URL")?;
    let committed = Arc::new(Notify::new());
    let trust = config::load_trust(&config.keys, &config.tokens)?;
    let (desk, background) =
        command_side(log.clone(), trust, &config.tokens, &config.limits, &config.append, committed.clone(), &shutdown)?;
    let relay =
        Relay::new(log.clone(), async_nats::jetstream::new(nats.clone()), config.nats.subjects.log_stream(), committed);
    let readiness = relay_ready(Readiness::default().with_store("postgres", log.clone()), &relay);
    let publisher = checkpoints::Publisher {
        js: async_nats::jetstream::new(nats.clone()),
        stream: config.nats.subjects.checkpoint_stream(),
    };
    let background = background.with_relay(relay).with_checkpoints(log.clone(), &config.audit, Some(publisher)).await?;

    let (keys, tokens) = (config.keys.clone(), config.tokens.clone());
    tokio::spawn(reload_on_hangup(desk.trust.clone(), move || config::load_trust(&keys, &tokens), shutdown.clone()));
    tracing::info!(addr = %listener.local_addr()?, "command-svc listening");
    let routes = routes(desk, config.limits.body_limit_bytes);
    platform::serve(
        listener,
        platform::http::service(routes, &api_description(), readiness),
        &config.http,
        connections,
        WRITE_TIMEOUT,
        None,
        shutdown,
    )
    .await
    .context("serving HTTP")?;
    tracing::info!("stopped accepting; draining the group commit");
    background.finish().await?;
    nats.drain().await.ok();
    tracing::info!("command-svc stopped");
    Ok(())
}

/// Adds the check that the relay's stream is a copy of the log. NATS itself is not a readiness
/// check: actions are accepted, and kept in the log, while it is down.
pub fn relay_ready(readiness: Readiness, relay: &Relay) -> Readiness {
    let divergence = relay.divergence();
    readiness.with("relay", move || {
        let state = divergence.check();
        async move { state }
    })
}

/// Re-reads the keys and the catalog with `load` on every `SIGHUP` until `shutdown`, and puts
/// them in force for the requests that follow; connections and requests in flight are
/// untouched. A load that fails is refused with a log line, and what was in force stays.
pub async fn reload_on_hangup(
    trust: TrustInForce,
    load: impl Fn() -> anyhow::Result<Trust>,
    shutdown: CancellationToken,
) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::error!(error.message = %error, "cannot listen for SIGHUP; keys reload only on restart");
            return;
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = hangups.recv() => match load() {
                Ok(loaded) => {
                    let keys = loaded.keys.signing_ids().map(ToString::to_string).collect::<Vec<_>>().join(",");
                    trust.replace(loaded);
                    metrics::counter!("trust_reloads_total", "outcome" => "applied").increment(1);
                    tracing::info!(signing_keys = %keys, "SIGHUP: keys and action catalog reloaded");
                }
                Err(error) => {
                    metrics::counter!("trust_reloads_total", "outcome" => "refused").increment(1);
                    tracing::error!(error.message = %error, "SIGHUP: reload refused; the keys and catalog in force stay");
                }
            },
        }
    }
}

async fn forget_idle_clients(limits: RateLimits, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => limits.forget_idle(),
        }
    }
}

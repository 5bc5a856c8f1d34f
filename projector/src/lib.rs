//! projector: folds the event log into the leaderboard read model, exactly once, and tells the
//! query side what changed. In the distributed deployment it consumes the JetStream copy of the
//! log ([`projection`]); in the all-in-one binary's embedded mode it follows the log directly
//! ([`follow`]).

pub mod announce;
pub mod follow;
pub mod projection;
pub mod results;
pub mod verify;

use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use clap::Args;
use platform::backoff::Backoff;
use platform::config::{BoardsConfig, DatabaseConfig, HttpConfig, NatsConfig, parse_duration};
use platform::metrics::{Kind, Metric};
use platform::probes::Readiness;
use store::{Applied, LeaderboardStore, PgEventLog};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::announce::Announcer;
use crate::projection::{Projection, Settings};

/// The metrics projector records, beside those of every HTTP server ([`platform::metrics::SHARED`]).
pub const METRICS: &[Metric] = &[
    ("anomaly_flags_total", Kind::Counter, "Players flagged for review by the anomaly rules, by rule: the flag rate."),
    ("usage_actions_total", Kind::Counter, "Actions folded into usage analytics, by action (of the catalog)."),
    ("usage_points_total", Kind::Counter, "Points awarded by the actions folded into usage analytics."),
    ("usage_new_players_total", Kind::Counter, "Players folded whose first award ever it was."),
    (
        "usage_active_players",
        Kind::Gauge,
        "Distinct players awarded in the newest UTC hour or day folded, by window (hour, day).",
    ),
    ("projector_checkpoint", Kind::Gauge, "Log position the read model has folded through."),
    (
        "season_results_published_total",
        Kind::Counter,
        "Versions of season results published (a season closed, or moderation amended one).",
    ),
    ("season_results_relayed_total", Kind::Counter, "Versions of season results sent to JetStream."),
    ("projector_lag_events", Kind::Gauge, "Stream messages not yet delivered to the projector."),
    ("projector_events_applied_total", Kind::Counter, "Events folded into the read model."),
    (
        "projector_events_skipped_total",
        Kind::Counter,
        "Delivered messages at or below the checkpoint (redeliveries, duplicates).",
    ),
    ("projector_forged_messages_total", Kind::Counter, "Stream messages the event log contradicts: never folded."),
    ("projector_foreign_messages_total", Kind::Counter, "Stream messages without a position header: not events."),
    ("projector_errors_total", Kind::Counter, "Projection runs interrupted by an error."),
    ("projector_batch_size", Kind::Histogram, "Events folded per transaction."),
    ("projector_batch_seconds", Kind::Histogram, "Time to fold and acknowledge one batch."),
];

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
    /// Batching and redelivery.
    #[command(flatten)]
    pub projection: ProjectionConfig,
    /// The boards to fold besides `global`.
    #[command(flatten)]
    pub boards: BoardsConfig,
    /// HTTP clients.
    #[command(flatten)]
    pub http: HttpConfig,
}

/// How the projector folds.
#[derive(Debug, Clone, Args)]
pub struct ProjectionConfig {
    /// Name of the durable JetStream consumer.
    #[arg(long, env = "PROJECTOR_CONSUMER", default_value = "scoreboard-projector")]
    pub consumer: String,
    /// The most events folded in one transaction.
    #[arg(long, env = "PROJECTOR_BATCH_MAX", default_value_t = 1000)]
    pub batch_max: usize,
    /// How long JetStream waits for an acknowledgement before redelivering.
    #[arg(long, env = "PROJECTOR_ACK_WAIT", default_value = "30s", value_parser = parse_duration)]
    pub ack_wait: Duration,
    /// How many positions apart the fold is snapshotted, for boards at past positions: each
    /// snapshot costs a copy of the read model; a past board folds at most this many events.
    #[arg(long, env = "SNAPSHOT_INTERVAL", default_value_t = store::snapshot::DEFAULT_INTERVAL)]
    pub snapshot_interval: u64,
    /// TOML file of the rules that flag players for review (see
    /// `config/anomaly-rules.example.toml`); unset: more than 60 actions or 10 000 points by one
    /// player within a minute.
    #[arg(long, env = "ANOMALY_RULES")]
    pub anomaly_rules: Option<std::path::PathBuf>,
}

impl ProjectionConfig {
    /// The anomaly rules configured.
    pub fn rules(&self) -> anyhow::Result<events::anomaly::Rules> {
        Ok(match &self.anomaly_rules {
            Some(path) => events::anomaly::Rules::from_file(path)?,
            None => events::anomaly::Rules::defaults(),
        })
    }
}

/// Records what a fold did and announces its new checkpoint: the step shared by the JetStream
/// projection and the log follower.
pub async fn announce_fold(applied: &Applied, announcer: &Announcer) {
    metrics::counter!("projector_events_applied_total").increment(applied.to - applied.from);
    metrics::counter!("projector_events_skipped_total").increment(applied.skipped as u64);
    metrics::gauge!("projector_checkpoint").set(applied.to as f64);
    for rule in &applied.flagged {
        metrics::counter!("anomaly_flags_total", "rule" => rule.clone()).increment(1);
    }
    let usage = &applied.usage;
    for (action, count) in &usage.by_action {
        metrics::counter!("usage_actions_total", "action" => action.clone()).increment(count.actions);
        metrics::counter!("usage_points_total").increment(count.points);
    }
    metrics::counter!("usage_new_players_total").increment(usage.new_players);
    for (window, players) in &usage.active {
        metrics::gauge!("usage_active_players", "window" => window.as_str()).set(*players as f64);
    }
    if !applied.forged.is_empty() {
        metrics::counter!("projector_forged_messages_total").increment(applied.forged.len() as u64);
        tracing::warn!(
            positions = ?applied.forged,
            "messages that the event log contradicts were dropped; the log's own events are folded"
        );
    }
    if applied.to > applied.from {
        announcer.announce(applied.to).await;
    }
}

/// Makes the read model's boards those `read_model` folds into (see
/// [`LeaderboardStore::build_boards`]), retrying until it succeeds or `shutdown`: what the one
/// folder does once it folds, beside its folding.
pub async fn build_boards<R: LeaderboardStore>(read_model: R, shutdown: CancellationToken) {
    let mut backoff = Backoff::default();
    loop {
        let started = std::time::Instant::now();
        match read_model.build_boards(store::BOARD_BUILD_BATCH).await {
            Ok(built) => {
                if !built.built.is_empty() || !built.dropped.is_empty() {
                    tracing::info!(
                        built = ?built.built,
                        dropped = ?built.dropped,
                        events = built.events,
                        seconds = started.elapsed().as_secs_f64(),
                        "boards built from the log"
                    );
                }
                return;
            }
            Err(error) => tracing::warn!(error.message = %error, retry_in = ?backoff.delay(), "cannot build boards"),
        }
        if !backoff.wait(&shutdown).await {
            return;
        }
    }
}

/// The projector's OpenAPI description (its operations endpoints), served at `/openapi.json`
/// and checked in as `docs/openapi/projector.json`.
pub fn api_description() -> utoipa::openapi::OpenApi {
    platform::openapi::describe(
        "Scoreboard projector",
        "Folds the log into the read model; serves only its operations endpoints.",
        utoipa::openapi::OpenApiBuilder::new().build(),
    )
}

/// Runs the projector on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    // The recorder first, so that what the service records while starting is not lost.
    platform::metrics::install(METRICS);
    let connections = config.http.connection_caps().map_err(anyhow::Error::msg)?;
    let Some(pool) =
        platform::postgres::connect_and_migrate(&config.database, &shutdown).await.context("DATABASE_URL")?
    else {
        return Ok(());
    };
    let nats = platform::nats::connect(&config.nats, "projector").await.context("NATS_URL")?;
    let announcer =
        Announcer::Nats { client: nats.clone(), subject: config.nats.subjects.nats_changes_subject.clone() };
    let projection = Projection::new(
        pool.clone(),
        nats.clone(),
        announcer,
        settings(&config.nats, &config.projection, &config.boards)?,
    );
    let projection = tokio::spawn(projection.run(shutdown.clone()));
    let readiness = Readiness::default().with_store("postgres", PgEventLog::new(pool)).with_nats(nats.clone());
    tracing::info!(addr = %listener.local_addr()?, "projector listening");
    platform::serve(
        listener,
        platform::http::service(Router::new(), &api_description(), readiness),
        &config.http,
        connections,
        Duration::from_secs(10),
        None,
        shutdown,
    )
    .await
    .context("serving HTTP")?;
    projection.await.context("projection task")?;
    nats.drain().await.ok();
    Ok(())
}

/// The JetStream projection's settings from the configuration.
pub fn settings(nats: &NatsConfig, projection: &ProjectionConfig, boards: &BoardsConfig) -> anyhow::Result<Settings> {
    Ok(Settings {
        stream: nats.subjects.log_stream(),
        consumer: projection.consumer.clone(),
        batch_max: projection.batch_max.max(1),
        ack_wait: projection.ack_wait,
        snapshot_interval: projection.snapshot_interval,
        rules: projection.rules().context("ANOMALY_RULES")?,
        boards: boards.load().context("BOARDS")?,
        season_grace: boards.season_grace,
        results_stream: nats.subjects.results_stream(),
    })
}

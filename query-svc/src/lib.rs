//! query-svc: serves the leaderboard, players' ranks, the audit log and live SSE and
//! WebSocket streams. The board lives in memory, kept current from the projector's change
//! announcements, so reads and streams never query the database per request.

pub mod admission;
pub mod apart;
pub mod error;
pub mod kept;
pub mod live;
pub mod params;
pub mod past;
pub mod routes;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use clap::Args;
use events::boards::BoardDefs;
use platform::config::{BoardsConfig, DatabaseConfig, HttpConfig, NatsConfig, parse_duration};
use platform::connections::Caps;
use platform::limits::RateLimit;
use platform::metrics::{Kind, Metric};
use platform::probes::Readiness;
use store::{EventStore, LeaderboardStore, PgEventLog, PgLeaderboard};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::apart::Apart;
use crate::kept::Kept;
use crate::live::{ChangeFeed, Clock, LiveBoard, LiveBoards, SystemClock};
use crate::routes::streams::{self, Streams};
use crate::routes::{boards, history, leaderboard, proofs, results};
use crate::state::{Reader, ReaderState};

/// The metrics query-svc records, beside those of every HTTP server ([`platform::metrics::SHARED`]).
pub const METRICS: &[Metric] = &[
    ("query_board_position", Kind::Gauge, "Log position of the board this query service serves."),
    ("query_board_loads_total", Kind::Counter, "Whole-board loads from the read model (start, restore)."),
    (
        "query_projection_lagging_total",
        Kind::Counter,
        "Reads answered 503 projection_lagging (min_position not reached in time).",
    ),
    ("query_announcements_unconfirmed_total", Kind::Counter, "Announcements claiming more than the read model holds."),
    ("query_announcements_ignored_total", Kind::Counter, "Announcements that are not a position."),
    ("query_rate_limited_total", Kind::Counter, "Reads refused with 429 by the per-address limit."),
    (
        "query_database_reads_refused_total",
        Kind::Counter,
        "Reads of the database (past boards, the log, proofs) refused with 503, by reason (per_address, total).",
    ),
    ("query_cache_hits_total", Kind::Counter, "Reads of the database answered from memory, by kind."),
    ("live_connections", Kind::Gauge, "Open live streams, by kind (sse, ws)."),
    ("live_connections_refused_total", Kind::Counter, "Live streams refused with 503, by reason (per_address, total)."),
    (
        "live_boards_conflated_total",
        Kind::Counter,
        "Boards a live stream skipped because a newer one was ready when its client was.",
    ),
];

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
    /// Reads and streams.
    #[command(flatten)]
    pub reads: ReadConfig,
    /// The boards to serve besides `global` (the projector's).
    #[command(flatten)]
    pub boards: BoardsConfig,
    /// HTTP clients.
    #[command(flatten)]
    pub http: HttpConfig,
}

/// How reads wait and streams behave.
#[derive(Debug, Clone, Args)]
pub struct ReadConfig {
    /// How long `min_position` waits for the board before answering `503 projection_lagging`.
    #[arg(long, env = "READ_YOUR_WRITES_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub read_your_writes_timeout: Duration,
    /// How often an idle live stream sends a heartbeat.
    #[arg(long, env = "STREAM_HEARTBEAT", default_value = "15s", value_parser = parse_duration)]
    pub stream_heartbeat: Duration,
    /// A client whose socket accepts nothing for this long is disconnected.
    #[arg(long, env = "STREAM_WRITE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub stream_write_timeout: Duration,
    /// Token bucket of reads (every endpoint of this side) per client address:
    /// `<count>/<s|m|h>` or `off`.
    #[arg(long, env = "RATE_LIMIT_READS_PER_ADDRESS", default_value = "100/s")]
    pub rate_limit_reads_per_address: RateLimit,
    /// The most live streams (SSE and WebSocket) open at once: below `CONNECTIONS_MAX`, so that
    /// streams never take every connection. Unset: nine tenths of `CONNECTIONS_MAX`.
    #[arg(long, env = "STREAMS_MAX")]
    pub streams_max: Option<usize>,
    /// The most live streams open at once from one client address.
    #[arg(long, env = "STREAMS_PER_ADDRESS_MAX", default_value_t = 32)]
    pub streams_per_address_max: usize,
    /// The most reads of the database (past boards and seasons, the log, proofs) in flight at
    /// once, half of them from one client address; as many connections are kept for them,
    /// apart from those the live boards are kept current with. Beyond: `503` with `Retry-After`.
    #[arg(long, env = "DATABASE_READS_MAX", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub database_reads_max: u32,
}

impl ReadConfig {
    /// The most live streams open at once on a server of `connections`; `Err` when
    /// `STREAMS_MAX` would leave no connection for other requests.
    pub fn live_streams_max(&self, connections: Caps) -> Result<usize, String> {
        match self.streams_max {
            None => Ok((connections.total / 10 * 9).max(1)),
            Some(max) if max >= 1 && max < connections.total => Ok(max),
            Some(max) => Err(format!(
                "STREAMS_MAX={max} must lie in 1..{}: below CONNECTIONS_MAX, so that other requests still get \
                 a connection",
                connections.total
            )),
        }
    }
}

/// What a query side serves: the boards, the clock their seasons go by, and how many live
/// streams at most.
pub struct Serving {
    /// The boards.
    pub boards: BoardDefs,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The most live streams open at once ([`ReadConfig::live_streams_max`]).
    pub streams_max: usize,
}

impl Serving {
    /// `boards` by the system's clock, at most `streams_max` live streams.
    pub fn new(boards: BoardDefs, streams_max: usize) -> Self {
        Self { boards, clock: Arc::new(SystemClock), streams_max }
    }
}

/// The read side over `log` and `read_model`: its routes, the board they serve, and the task
/// that keeps the boards current from `feed`.
pub fn query_side<S: EventStore, R: LeaderboardStore>(
    log: S,
    read_model: R,
    feed: ChangeFeed,
    serving: Serving,
    reads: &ReadConfig,
    shutdown: &CancellationToken,
) -> (Router, Arc<LiveBoard>, JoinHandle<()>) {
    let boards = Arc::new(LiveBoards::new(serving.boards, serving.clock));
    let live = boards.global().clone();
    let admission = Admission::new(
        reads.rate_limit_reads_per_address,
        serving.streams_max,
        reads.streams_per_address_max,
        reads.database_reads_max as usize,
    );
    let kept = Kept::default();
    let keeper = tokio::spawn({
        let (keeping, forgetting) = (
            live::keep_current(boards.clone(), read_model.clone(), feed, kept.clone(), shutdown.clone()),
            admission.clone().forget_idle_clients(shutdown.clone()),
        );
        async move {
            tokio::join!(keeping, forgetting);
        }
    });
    let reader = Reader::new(ReaderState {
        live: live.clone(),
        boards: boards.clone(),
        log: Arc::new(log.apart(reads.database_reads_max)),
        read_model: Arc::new(read_model.apart(reads.database_reads_max)),
        admission: admission.clone(),
        kept,
        apart: Apart::start(shutdown.clone()).expect("a thread for heavy reads"),
        read_your_writes_timeout: reads.read_your_writes_timeout,
    });
    let streams =
        Streams { boards, heartbeat: reads.stream_heartbeat, admission: admission.clone(), shutdown: shutdown.clone() };
    let routes = Router::new()
        .route("/v1/leaderboard", get(leaderboard::leaderboard::<S, R>))
        .route("/v1/players/{player_id}", get(leaderboard::player::<S, R>))
        .route("/v1/events", get(history::log::<S, R>))
        .route("/v1/players/{player_id}/events", get(history::player_log::<S, R>))
        .route("/v1/audit/proof/inclusion", get(proofs::inclusion::<S, R>))
        .route("/v1/audit/proof/consistency", get(proofs::consistency::<S, R>))
        .route("/v1/audit/checkpoint", get(proofs::checkpoint::<S, R>))
        .route("/v1/audit/checkpoints", get(proofs::checkpoints::<S, R>))
        .route("/v1/audit/key", get(proofs::key::<S, R>))
        .route("/tile/{*path}", get(proofs::tile::<S, R>))
        .route("/checkpoint", get(proofs::tiles_checkpoint::<S, R>))
        .route("/v1/boards", get(boards::list::<S, R>))
        .route("/v1/boards/{board}/leaderboard", get(boards::leaderboard::<S, R>))
        .route("/v1/boards/{board}/players/{player_id}", get(boards::player::<S, R>))
        .route("/v1/boards/{board}/players/{player_id}/around", get(boards::around::<S, R>))
        .route("/v1/boards/{board}/seasons/{season}/results", get(results::results::<S, R>))
        .with_state(reader)
        .merge(
            Router::new()
                .route("/v1/leaderboard/stream", get(streams::sse))
                .route("/v1/leaderboard/ws", get(streams::websocket))
                .route("/v1/boards/{board}/stream", get(streams::board_sse))
                .route("/v1/boards/{board}/ws", get(streams::board_websocket))
                .with_state(streams),
        )
        .route_layer(axum::middleware::from_fn_with_state(admission, admission::limit_reads));
    (routes, live, keeper)
}

/// The routes of [`query_side`], described.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    leaderboard::leaderboard,
    leaderboard::player,
    history::log,
    history::player_log,
    proofs::inclusion,
    proofs::consistency,
    proofs::checkpoint,
    proofs::checkpoints,
    proofs::key,
    proofs::tile,
    proofs::tiles_checkpoint,
    streams::sse,
    streams::websocket,
    boards::list,
    boards::leaderboard,
    boards::player,
    boards::around,
    results::results,
    streams::board_sse,
    streams::board_websocket
))]
pub struct Routes;

/// query-svc's OpenAPI description, served at `/openapi.json` and checked in as
/// `docs/openapi/query-svc.json`.
pub fn api_description() -> utoipa::openapi::OpenApi {
    platform::openapi::describe(
        "Scoreboard query-svc",
        "The read side of Scoreboard: the board, players' ranks, live streams and the audit log.",
        <Routes as utoipa::OpenApi>::openapi(),
    )
}

/// Whether `request` is one of the hot path's: a current board's top, a page or a player's
/// rank or neighbourhood on it, answered from memory — what every page asks for, again and
/// again. (Past boards and seasons, the log and the proofs read the database: they are not.)
pub fn hot(request: &axum::extract::Request) -> bool {
    let (path, query) = (request.uri().path(), request.uri().query().unwrap_or_default());
    let current = !query.contains("as_of") && !query.contains("season=");
    let on_board = |rest: &str| rest.ends_with("/leaderboard") || rest.contains("/players/");
    let answered_from_memory = path == "/v1/leaderboard"
        || path.strip_prefix("/v1/players/").is_some_and(|player| !player.contains('/'))
        || path.strip_prefix("/v1/boards/").is_some_and(on_board);
    request.method() == axum::http::Method::GET && current && answered_from_memory
}

/// Whether `path` is one of the live event streams, which hold their connection for as long as
/// the client follows the board: served on the lean path ([`platform::long_lived`]).
pub fn streamed(path: &str) -> bool {
    path == "/v1/leaderboard/stream"
        || path
            .strip_prefix("/v1/boards/")
            .and_then(|rest| rest.strip_suffix("/stream"))
            .is_some_and(|board| !board.contains('/'))
}

/// Adds the check that the board has been loaded.
pub fn board_loaded(readiness: Readiness, live: Arc<LiveBoard>) -> Readiness {
    readiness.with("board", move || {
        let loaded = live.is_loaded();
        async move { if loaded { Ok(()) } else { Err("not loaded yet".to_string()) } }
    })
}

/// Runs query-svc on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    // The recorder first, so that what the service records while starting is not lost.
    platform::metrics::install(METRICS);
    let connections = config.http.connection_caps().map_err(anyhow::Error::msg)?;
    let streams_max = config.reads.live_streams_max(connections).map_err(anyhow::Error::msg)?;
    let Some(pool) =
        platform::postgres::connect_and_migrate(&config.database, &shutdown).await.context("DATABASE_URL")?
    else {
        return Ok(());
    };
    let nats = platform::nats::connect(&config.nats, "query-svc").await.context("NATS_URL")?;
    let feed = ChangeFeed::Nats { client: nats.clone(), subject: config.nats.subjects.nats_changes_subject.clone() };
    let serving = Serving::new(config.boards.load().context("BOARDS")?, streams_max);
    let (routes, live, keeper) =
        query_side(PgEventLog::new(pool.clone()), PgLeaderboard::new(pool), feed, serving, &config.reads, &shutdown);
    let readiness = board_loaded(Readiness::default(), live).with_nats(nats.clone());

    tracing::info!(addr = %listener.local_addr()?, "query-svc listening");
    platform::serve(
        listener,
        platform::http::service_with_hot(routes, &api_description(), readiness, hot),
        &config.http,
        connections,
        config.reads.stream_write_timeout,
        Some(streamed),
        shutdown,
    )
    .await
    .context("serving HTTP")?;
    keeper.await.context("board keeper")?;
    nats.drain().await.ok();
    Ok(())
}

//! Scoreboard in one process: command side, projector and query side on one address, with the
//! scoreboard website at `/`.
//!
//! With no `DATABASE_URL` and no `NATS_URL` it keeps the event log and the read model in one
//! SQLite file under `SCOREBOARD_DATA` and passes events in process; with both, it runs on
//! PostgreSQL and JetStream exactly as the three services do. The API, invariants and errors
//! are the same either way: the same code serves them.

pub mod site;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use axum::Router;
use clap::Parser;
use command_svc::{ActionDesk, AppendConfig, AuditConfig, Background, KeyConfig, LimitConfig, TokenRules, Trust};
use events::KeySet;
use platform::config::{BoardsConfig, DatabaseConfig, HttpConfig, NatsAuth, NatsConfig, PoolConfig, SubjectConfig};
use platform::connections::Caps;
use platform::probes::Readiness;
use projector::ProjectionConfig;
use projector::announce::Announcer;
use query_svc::live::ChangeFeed;
use query_svc::{ReadConfig, Serving};
use store::{PgEventLog, PgLeaderboard};
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::site::DemoKey;

/// Everything `scoreboard` needs; every field has an environment variable.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "scoreboard",
    version,
    about = "Scoreboard in one process: API, projector, live leaderboard and website"
)]
pub struct Config {
    /// Address to serve everything on.
    #[arg(long, env = "SCOREBOARD_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Folder of the embedded SQLite database (used without `DATABASE_URL` and `NATS_URL`).
    #[arg(long, env = "SCOREBOARD_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// PostgreSQL URL: with `NATS_URL`, run on PostgreSQL and JetStream instead of SQLite.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// PostgreSQL connections (distributed mode).
    #[command(flatten)]
    pub pool: PoolConfig,
    /// NATS URL: with `DATABASE_URL`, run on PostgreSQL and JetStream instead of SQLite.
    #[arg(long, env = "NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// How to authenticate to NATS (distributed mode).
    #[command(flatten)]
    pub nats_auth: NatsAuth,
    /// Stream and subjects (distributed mode).
    #[command(flatten)]
    pub subjects: SubjectConfig,
    /// Trusted signing keys. Required outside demo mode.
    #[command(flatten)]
    pub keys: KeyConfig,
    /// Catalog and time rules.
    #[command(flatten)]
    pub tokens: TokenRules,
    /// Admission limits.
    #[command(flatten)]
    pub limits: LimitConfig,
    /// Group commit.
    #[command(flatten)]
    pub append: AppendConfig,
    /// Signed checkpoints.
    #[command(flatten)]
    pub audit: AuditConfig,
    /// Reads and streams.
    #[command(flatten)]
    pub reads: ReadConfig,
    /// Folding.
    #[command(flatten)]
    pub projection: ProjectionConfig,
    /// Boards besides `global`.
    #[command(flatten)]
    pub boards: BoardsConfig,
    /// HTTP clients.
    #[command(flatten)]
    pub http: HttpConfig,
    /// Demo mode: the website lets visitors complete actions, with tokens the server mints with
    /// a key that exists only for this run.
    #[arg(long, env = "SCOREBOARD_DEMO")]
    pub demo: bool,
    /// In demo mode, this many simulated players complete actions so the board moves by itself.
    #[arg(long, env = "SCOREBOARD_SIMULATE", default_value_t = 0)]
    pub simulate: usize,
}

impl Config {
    /// The action desk over `log`, with this configuration's rules, limits and group commit.
    fn command_side<S: store::EventStore>(
        &self,
        log: S,
        trust: Trust,
        committed: Arc<Notify>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<(ActionDesk, Background)> {
        command_svc::command_side(log, trust, &self.tokens, &self.limits, &self.append, committed, shutdown)
    }
}

/// The read side and everything that runs behind the routes, to stop in order after HTTP.
struct Sides {
    query_routes: Router,
    readiness: Readiness,
    background: Background,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    nats: Option<async_nats::Client>,
}

impl Sides {
    async fn finish(self) -> anyhow::Result<()> {
        self.background.finish().await?;
        for (name, task) in self.tasks {
            task.await.with_context(|| format!("{name} task"))?;
        }
        if let Some(nats) = self.nats {
            nats.drain().await.ok();
        }
        Ok(())
    }
}

/// Runs Scoreboard on `listener` until `shutdown` is cancelled.
pub async fn run(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_with_clock(config, Arc::new(query_svc::live::SystemClock), listener, shutdown).await
}

/// [`run`], the boards' seasons going by `clock` (a test's, which must never wait for midnight).
pub async fn run_with_clock(
    config: Config,
    clock: Arc<dyn query_svc::live::Clock>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Some(scoreboard) = start_with_clock(&config, clock, &shutdown).await? else { return Ok(()) };
    tracing::info!(addr = %listener.local_addr()?, demo = config.demo, "scoreboard listening");
    let (app, connections, write_timeout) =
        (scoreboard.app.clone(), scoreboard.connections, config.reads.stream_write_timeout);
    platform::serve(listener, app, &config.http, connections, write_timeout, Some(query_svc::streamed), shutdown)
        .await
        .context("serving HTTP")?;
    scoreboard.finish().await?;
    tracing::info!("scoreboard stopped");
    Ok(())
}

/// Scoreboard started but not yet served: its whole router and what runs behind it.
pub struct Scoreboard {
    /// Every route, with the operations endpoints and the layers every response passes.
    pub app: Router,
    connections: Caps,
    simulation: Option<JoinHandle<()>>,
    sides: Sides,
}

impl Scoreboard {
    /// Waits, once the router is dropped (HTTP stopped), for everything behind it to finish.
    pub async fn finish(self) -> anyhow::Result<()> {
        drop(self.app);
        if let Some(simulation) = self.simulation {
            simulation.await.context("simulation task")?;
        }
        self.sides.finish().await
    }
}

/// Opens the stores, starts the tasks behind the routes and builds the router, ready to serve;
/// `None` when `shutdown` came while waiting for a dependency.
pub async fn start(config: &Config, shutdown: &CancellationToken) -> anyhow::Result<Option<Scoreboard>> {
    start_with_clock(config, Arc::new(query_svc::live::SystemClock), shutdown).await
}

/// [`start`], the boards' seasons going by `clock` (a test's, which must never wait for midnight).
pub async fn start_with_clock(
    config: &Config,
    clock: Arc<dyn query_svc::live::Clock>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Scoreboard>> {
    // The recorder first, so that what the service records while starting is not lost.
    for own in [command_svc::METRICS, projector::METRICS, query_svc::METRICS] {
        platform::metrics::install(own);
    }
    let connections = config.http.connection_caps().map_err(anyhow::Error::msg)?;
    let streams_max = config.reads.live_streams_max(connections).map_err(anyhow::Error::msg)?;
    let serving = Serving { boards: config.boards.load().context("BOARDS")?, clock, streams_max };
    if config.simulate > 0 && !config.demo {
        bail!("--simulate needs --demo: simulated players use the demo key");
    }
    let demo_key = config.demo.then(DemoKey::generate);
    // Loaded at start and again on every SIGHUP, under the same rules.
    let load_trust = {
        let (key_config, tokens, demo_key) = (config.keys.clone(), config.tokens.clone(), demo_key.clone());
        move || {
            let keys = match (key_config.load().map_err(anyhow::Error::msg)?, &demo_key) {
                // The demo mints a token for anyone who asks: never beside keys that count for real.
                (Some(_), Some(_)) => bail!("--demo refuses to run with ACTION_KEYS: it would mint tokens for anyone"),
                (Some(keys), None) => keys,
                (None, Some(demo)) => KeySet::single(demo.kid.clone(), demo.secret.clone()),
                (None, None) => bail!(
                    "ACTION_KEYS is required (or ACTION_KEYS_FILE, or run with --demo to try Scoreboard with a \
                     generated key)"
                ),
            };
            command_svc::config::trust_in(keys, &key_config, &tokens)
        }
    };
    let trust = load_trust()?;
    let catalog = trust.catalog.clone();
    let committed = Arc::new(Notify::new());
    let started = match (config.database_url.clone(), config.nats_url.clone()) {
        (None, None) => Some(embedded(config, trust, serving, committed, shutdown).await?),
        (Some(database_url), Some(nats_url)) => {
            distributed(config, trust, serving, database_url, nats_url, committed, shutdown).await?
        }
        _ => bail!(
            "set both DATABASE_URL and NATS_URL to run on PostgreSQL and JetStream, or neither for the embedded SQLite"
        ),
    };
    let Some((desk, sides)) = started else { return Ok(None) };
    tokio::spawn(command_svc::reload_on_hangup(desk.trust.clone(), load_trust, shutdown.clone()));

    let demo = demo_key.map(|key| site::Demo { desk: desk.clone(), key, catalog: catalog.clone() });
    let simulation = match &demo {
        Some(demo) if config.simulate > 0 => {
            Some(tokio::spawn(site::simulate(demo.clone(), config.simulate, shutdown.clone())))
        }
        _ => None,
    };
    let routes = command_svc::routes(desk, config.limits.body_limit_bytes)
        .merge(sides.query_routes.clone())
        .merge(site::routes(&catalog, demo));
    let app = platform::http::service_with_hot(routes, &api_description(), sides.readiness.clone(), query_svc::hot);
    Ok(Some(Scoreboard { app, connections, simulation, sides }))
}

/// The all-in-one's OpenAPI description: command-svc's and query-svc's routes and the page,
/// served at `/openapi.json` and checked in as `docs/openapi.json`. (`POST
/// /demo/actions` exists only with `--demo` and is left out.)
pub fn api_description() -> utoipa::openapi::OpenApi {
    let mut routes = <command_svc::Routes as utoipa::OpenApi>::openapi();
    routes.merge(<query_svc::Routes as utoipa::OpenApi>::openapi());
    routes.merge(<site::Page as utoipa::OpenApi>::openapi());
    platform::openapi::describe(
        "Scoreboard",
        "The whole of Scoreboard in one process: actions in, the board, live streams and the audit log out.",
        routes,
    )
}

/// The embedded default: one SQLite file, events passed in process.
async fn embedded(
    config: &Config,
    trust: Trust,
    serving: Serving,
    committed: Arc<Notify>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(ActionDesk, Sides)> {
    let (log, read_model) = store::sqlite::open(&config.data)
        .await
        .with_context(|| format!("opening the database in {}", config.data.display()))?;
    let read_model = read_model
        .folding(config.projection.snapshot_interval, config.projection.rules().context("ANOMALY_RULES")?)
        .boards(serving.boards.clone());
    tracing::info!(data = %config.data.display(), "embedded mode: SQLite, events passed in process");
    let (desk, background) = config.command_side(log.clone(), trust, committed.clone(), shutdown)?;
    let background = background.with_checkpoints(log.clone(), &config.audit, None).await?;
    let (changes, heard) = broadcast::channel(1024);
    let batch_max = u32::try_from(config.projection.batch_max.max(1)).unwrap_or(u32::MAX);
    let projector = tokio::spawn(projector::follow::follow_log(
        read_model.clone(),
        committed,
        Announcer::InProcess(changes),
        batch_max,
        shutdown.clone(),
    ));
    let building = tokio::spawn(projector::build_boards(read_model.clone(), shutdown.clone()));
    let clock = serving.clock.clone();
    let results = tokio::spawn(projector::results::publish_periodically(
        read_model.clone(),
        config.boards.season_grace,
        move || clock.now(),
        None,
        shutdown.clone(),
    ));
    let (query_routes, live, keeper) =
        query_svc::query_side(log.clone(), read_model, ChangeFeed::InProcess(heard), serving, &config.reads, shutdown);
    let readiness = query_svc::board_loaded(Readiness::default().with_store("sqlite", log), live);
    let tasks = vec![
        ("projector", projector),
        ("board builder", building),
        ("season results", results),
        ("board keeper", keeper),
    ];
    Ok((desk, Sides { query_routes, readiness, background, tasks, nats: None }))
}

/// The distributed mode in one process: PostgreSQL and JetStream, as the three services use them.
async fn distributed(
    config: &Config,
    trust: Trust,
    serving: Serving,
    database_url: String,
    nats_url: String,
    committed: Arc<Notify>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<(ActionDesk, Sides)>> {
    let database = DatabaseConfig { database_url, pool: config.pool.clone() };
    let nats_config = NatsConfig { nats_url, auth: config.nats_auth.clone(), subjects: config.subjects.clone() };
    let Some(pool) = platform::postgres::connect_and_migrate(&database, shutdown).await.context("DATABASE_URL")? else {
        return Ok(None);
    };
    let nats = platform::nats::connect(&nats_config, "scoreboard").await.context("NATS_URL")?;
    tracing::info!("distributed mode: PostgreSQL and JetStream");
    let log = PgEventLog::new(pool.clone());
    let (desk, background) = config.command_side(log.clone(), trust, committed.clone(), shutdown)?;
    let js = async_nats::jetstream::new(nats.clone());
    let relay = command_svc::relay::Relay::new(log.clone(), js, config.subjects.log_stream(), committed);
    let readiness = command_svc::relay_ready(Readiness::default().with_store("postgres", log.clone()), &relay);
    let publisher = command_svc::checkpoints::Publisher {
        js: async_nats::jetstream::new(nats.clone()),
        stream: config.subjects.checkpoint_stream(),
    };
    let background = background.with_relay(relay).with_checkpoints(log.clone(), &config.audit, Some(publisher)).await?;
    let announcer = Announcer::Nats { client: nats.clone(), subject: config.subjects.nats_changes_subject.clone() };
    let projection = projector::projection::Projection::new(
        pool.clone(),
        nats.clone(),
        announcer,
        projector::settings(&nats_config, &config.projection, &config.boards)?,
    );
    let projector = tokio::spawn(projection.run(shutdown.clone()));
    let feed = ChangeFeed::Nats { client: nats.clone(), subject: config.subjects.nats_changes_subject.clone() };
    let (query_routes, live, keeper) =
        query_svc::query_side(log.clone(), PgLeaderboard::new(pool), feed, serving, &config.reads, shutdown);
    let readiness = query_svc::board_loaded(readiness, live).with_nats(nats.clone());
    let tasks = vec![("projector", projector), ("board keeper", keeper)];
    Ok(Some((desk, Sides { query_routes, readiness, background, tasks, nats: Some(nats) })))
}

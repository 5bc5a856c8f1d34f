//! `loadgen`: the load generator of `scripts/bench` (see `BENCHMARKS.md`). Each command measures
//! one scenario and prints its figures as `name=value` lines; progress goes to standard error.
//!
//! ```sh
//! ACTION_KEYS=k1=<secret> cargo run --release -p loadgen -- write --target http://127.0.0.1:8080 --rate 25000
//! cargo run --release -p loadgen -- read --target http://127.0.0.1:8081 --path '/v1/players/player-{player}' --rate 10000
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use events::{ActionName, KeySet};
use futures::StreamExt as _;
use loadgen::http::{self, Load};
use loadgen::tokens::{self, Players};
use loadgen::{Figures, sse};
use platform::config::parse_duration;
use tokio_util::sync::CancellationToken;

platform::jemalloc!();

#[derive(Parser)]
#[command(name = "loadgen", about = "Load generator for Scoreboard's benchmarks")]
enum Command {
    /// Signed actions against `POST /v1/actions`: accepted rate, latency, and how long after the
    /// load the board showed the last accepted action.
    Write {
        #[command(flatten)]
        writes: Writes,
        /// How many actions to mint ahead in closed loop (open loop mints rate × duration).
        #[arg(long, default_value_t = 500_000)]
        tokens: usize,
    },
    /// `GET <path>` against the query service; `{player}` in the path is replaced by a player
    /// `player-0` … `player-<players - 1>` drawn uniformly for each request.
    Read {
        #[command(flatten)]
        load: LoadArgs,
        /// The path of every request.
        #[arg(long, default_value = "/v1/leaderboard?limit=10")]
        path: String,
        /// Players the `{player}` of the path is drawn from.
        #[arg(long, default_value_t = 1_000_000)]
        players: u64,
    },
    /// Signed actions at a fixed rate while SSE clients follow the board: the time from an
    /// action's 201 to each client receiving a board at or past its position — for every action
    /// (a board is sent when the top 10 changes, so this includes waiting for the next change),
    /// and for the actions of the five most active players, which are on the top 10 and so
    /// change it.
    Propagation {
        #[command(flatten)]
        writes: Writes,
        /// SSE clients.
        #[arg(long, default_value_t = 1_000)]
        clients: usize,
        /// Every how many accepted actions one is followed to every client.
        #[arg(long, default_value_t = 10)]
        sample: usize,
    },
    /// Many SSE clients on one query service: its resident memory per client, and the time for
    /// an update to reach all of them.
    Fanout {
        /// Where `POST /v1/actions` goes (the updates are actions of `load-0`).
        #[arg(long)]
        target: String,
        /// The query service.
        #[arg(long)]
        query: String,
        /// The query service's process id, whose resident memory is read.
        #[arg(long)]
        pid: u32,
        /// The keys to sign with (the first signing key is used).
        #[arg(long, env = "ACTION_KEYS", hide_env_values = true, value_parser = platform::config::Keys("ACTION_KEYS"))]
        keys: KeySet,
        /// SSE clients.
        #[arg(long, default_value_t = 20_000)]
        clients: usize,
        /// Actions sent once every client is connected, 100 ms apart.
        #[arg(long, default_value_t = 20)]
        updates: usize,
    },
    /// Baseline: pipelined JetStream publishes of fixed-size messages to a file-backed stream of
    /// its own (deleted afterwards).
    Publish {
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long, default_value_t = 200_000)]
        messages: usize,
        #[arg(long, default_value_t = 200)]
        size: usize,
        /// Publishes awaiting their acknowledgement at once.
        #[arg(long, default_value_t = 1024)]
        window: usize,
    },
    /// Baseline: an axum hello-world, this machine's HTTP ceiling under the same load generator.
    Hello {
        #[arg(long, default_value = "127.0.0.1:8090")]
        addr: String,
    },
    /// Writes a log of awards into an empty database through the event store's own append, then
    /// folds it into the (empty) read model as the projector catches up (in its batches, memory
    /// loaded once), then rebuilds the read model from it (`scoreboard-admin rebuild`).
    Seed {
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Distinct players (event `n` is `player-<n mod players>`).
        #[arg(long, default_value_t = 1_000_000)]
        players: u64,
        /// Events folded per transaction.
        #[arg(long, default_value_t = 1000)]
        batch: u32,
    },
    /// Scoreboard on PostgreSQL and a three-node JetStream cluster, two of each service, under
    /// steady load, hostile clients and a fault every 20–40 s; then proves that nothing
    /// acknowledged was lost or counted twice (exits 1 if anything was). See `scripts/soak`.
    Soak(loadgen::soak::Settings),
    /// Boards and seasons at scale: `build` writes and folds a log, then times building each
    /// board of a `BOARDS` file from it; `memory` measures the bytes a player costs per board.
    /// See `scripts/bench-boards`.
    #[command(subcommand)]
    Boards(loadgen::boards::Boards),
    /// The verifiable log and past boards at scale: `build` writes, folds and signs a log,
    /// comparing the append with the pre-tree one; `measure` times inclusion proofs, past boards
    /// and the live board. See `scripts/bench-audit`.
    #[command(subcommand)]
    Proofs(loadgen::proofs::Proofs),
}

#[derive(clap::Args, Clone)]
struct LoadArgs {
    /// The service (`http://host:port`).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Requests per second (open loop); unset, each connection sends as soon as it is answered.
    #[arg(long)]
    rate: Option<f64>,
    /// How long to send.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
}

impl LoadArgs {
    fn load(&self) -> anyhow::Result<Load> {
        Ok(Load {
            authority: http::authority(&self.target)?,
            connections: self.connections,
            rate: self.rate,
            duration: self.duration,
        })
    }
}

#[derive(clap::Args, Clone)]
struct Writes {
    #[command(flatten)]
    load: LoadArgs,
    /// The keys to sign with (the first signing key is used), as the service reads them.
    #[arg(long, env = "ACTION_KEYS", hide_env_values = true, value_parser = platform::config::Keys("ACTION_KEYS"))]
    keys: KeySet,
    /// Distinct players, `load-0` …
    #[arg(long, default_value_t = 100_000)]
    players: u64,
    /// Zipf exponent of the players' activity (0: uniform).
    #[arg(long, default_value_t = 1.0)]
    skew: f64,
    /// The action every token names.
    #[arg(long, default_value = "complete_task")]
    action: ActionName,
    /// Where the board is read and followed (query-svc); the target when left out.
    #[arg(long)]
    query: Option<String>,
}

impl Writes {
    fn query(&self) -> &str {
        self.query.as_deref().unwrap_or(&self.load.target)
    }
}

/// The position a `201` of `POST /v1/actions` names.
/// The position of an accepted action, and its player.
fn accepted(body: &Bytes) -> Option<(u64, String)> {
    #[derive(serde::Deserialize)]
    struct Accepted {
        position: u64,
        player_id: String,
    }
    serde_json::from_slice::<Accepted>(body).ok().map(|a| (a.position, a.player_id))
}

/// Mints `count` actions, timing it.
fn mint(writes: &Writes, count: usize, figures: &mut Figures) -> anyhow::Result<Arc<Vec<Bytes>>> {
    let started = Instant::now();
    let players = Players { count: writes.players, skew: writes.skew };
    let bodies = tokens::mint(&writes.keys, &writes.action, players, count)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    eprintln!("minted {count} actions in {:.1?} on {cores} cores", started.elapsed());
    figures.add("minted", count).add("mint_s", format!("{:.1}", started.elapsed().as_secs_f64()));
    Ok(Arc::new(bodies))
}

/// Sends the minted actions under `load`; `on_accepted(position, player, when)` is told of every
/// 201.
async fn send_actions(
    load: &Load,
    bodies: Arc<Vec<Bytes>>,
    on_accepted: impl Fn(u64, &str, Instant) + Send + Sync + 'static,
) -> anyhow::Result<http::Outcome> {
    let authority = load.authority.clone();
    http::drive(
        load,
        move |n| bodies.get(n as usize).map(|body| http::post_json(&authority, "/v1/actions", body.clone())),
        move |status, body, at| {
            if status == 201
                && let Some((position, player)) = accepted(body)
            {
                on_accepted(position, &player, at);
            }
        },
    )
    .await
}

fn outcome_figures(figures: &mut Figures, prefix: &str, outcome: &http::Outcome) {
    let others: u64 = outcome.statuses.values().sum();
    figures
        .add(&format!("{prefix}_ok"), outcome.succeeded)
        .add(&format!("{prefix}_ok_per_s"), format!("{:.0}", outcome.succeeded_per_second()))
        .add(&format!("{prefix}_other"), others)
        .add(&format!("{prefix}_failed"), outcome.failed)
        .latencies(prefix, &outcome.latency);
    if others > 0 {
        eprintln!("{prefix}: answers other than 2xx: {:?}", outcome.statuses);
    }
}

/// One action of `load-<k>`, sent on its own; its position.
async fn act(http: &reqwest::Client, target: &str, keys: &KeySet, k: u64) -> anyhow::Result<u64> {
    let body = tokens::mint_one(keys, &"complete_task".parse()?, k);
    let response = http
        .post(format!("{target}/v1/actions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?
        .error_for_status()?;
    Ok(response.json::<serde_json::Value>().await?["position"].as_u64().unwrap_or(0))
}

/// How long until the board at `query` showed `position`.
async fn caught_up(http: &reqwest::Client, query: &str, position: u64, since: Instant) -> anyhow::Result<Duration> {
    loop {
        let url = format!("{query}/v1/leaderboard?limit=1&min_position={position}");
        if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(since.elapsed());
        }
        anyhow::ensure!(since.elapsed() < Duration::from_secs(120), "the board did not reach {position} in 120 s");
    }
}

async fn write(writes: Writes, tokens: usize) -> anyhow::Result<Figures> {
    let mut figures = Figures::new();
    let load = writes.load.load()?;
    let count = load.rate.map_or(tokens, |rate| (rate * load.duration.as_secs_f64()).ceil() as usize);
    let bodies = mint(&writes, count, &mut figures)?;
    let last = Arc::new(AtomicU64::new(0));
    let outcome = {
        let last = last.clone();
        send_actions(&load, bodies, move |position, _, _| {
            last.fetch_max(position, Ordering::Relaxed);
        })
        .await?
    };
    let ended = Instant::now();
    let client = reqwest::Client::new();
    let catch_up = caught_up(&client, writes.query(), last.load(Ordering::Relaxed), ended).await?;
    if let Some(rate) = load.rate {
        figures.add("offered_per_s", rate);
    }
    outcome_figures(&mut figures, "write", &outcome);
    figures.add("catch_up_ms", catch_up.as_millis());
    Ok(figures)
}

async fn read(load: LoadArgs, path: String, players: u64) -> anyhow::Result<Figures> {
    let load = load.load()?;
    let authority = load.authority.clone();
    let outcome = http::drive(
        &load,
        move |n| {
            // splitmix64 of n: a uniform draw, the same for every run.
            let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let player = (z ^ (z >> 31)) % players.max(1);
            Some(http::get(&authority, &path.replace("{player}", &player.to_string())))
        },
        |_, _, _| {},
    )
    .await?;
    let mut figures = Figures::new();
    if let Some(rate) = load.rate {
        figures.add("offered_per_s", rate);
    }
    outcome_figures(&mut figures, "read", &outcome);
    Ok(figures)
}

/// SSE clients following a board: each one's task and the last position it received.
type Followers = Vec<(tokio::task::JoinHandle<anyhow::Result<sse::Seen>>, Arc<AtomicU64>)>;

/// Opens `clients` SSE streams of `path`, in waves, and waits until each has its snapshot.
async fn open_streams(
    authority: &str,
    path: &str,
    clients: usize,
    stop: &CancellationToken,
) -> anyhow::Result<Followers> {
    let (opened, mut snapshots) = tokio::sync::mpsc::channel(clients.max(1));
    let mut followers = Vec::with_capacity(clients);
    for wave in (0..clients).collect::<Vec<_>>().chunks(500) {
        for _ in wave {
            let latest = Arc::new(AtomicU64::new(0));
            let follower = sse::follow(authority.into(), path.into(), stop.clone(), opened.clone(), latest.clone());
            followers.push((tokio::spawn(follower), latest));
        }
        for _ in wave {
            tokio::time::timeout(Duration::from_secs(30), snapshots.recv())
                .await
                .map_err(|_| anyhow::anyhow!("an SSE client got no snapshot within 30 s"))?;
        }
    }
    Ok(followers)
}

/// Waits until every client has received a board at or past `position` (at most `limit`), then
/// stops them and returns what each received.
async fn stop_at(
    followers: Followers,
    stop: CancellationToken,
    position: u64,
    limit: Duration,
) -> anyhow::Result<Vec<sse::Seen>> {
    let waited = Instant::now();
    while waited.elapsed() < limit && followers.iter().any(|(_, latest)| latest.load(Ordering::Relaxed) < position) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let mut seen = Vec::with_capacity(followers.len());
    for (follower, _) in followers {
        seen.push(follower.await??);
    }
    Ok(seen)
}

async fn propagation(writes: Writes, clients: usize, sample: usize) -> anyhow::Result<Figures> {
    let mut figures = Figures::new();
    let load = writes.load.load()?;
    let rate = load.rate.ok_or_else(|| anyhow::anyhow!("propagation needs --rate"))?;
    let bodies = mint(&writes, (rate * load.duration.as_secs_f64()).ceil() as usize, &mut figures)?;
    let stop = CancellationToken::new();
    let followers =
        open_streams(&http::authority(writes.query())?, "/v1/leaderboard/stream?limit=10", clients, &stop).await?;
    eprintln!("{clients} SSE clients following the board");
    let acks = Arc::new(Mutex::new(Vec::new()));
    let outcome = {
        let acks = acks.clone();
        // The five most active players are on the top 10: their actions change it.
        let top: Vec<String> = (0..5).map(tokens::player).collect();
        send_actions(&load, bodies, move |position, player, at| {
            acks.lock().expect("acks").push((position, at, top.iter().any(|p| p == player)));
        })
        .await?
    };
    // One more action by the most active player, which moves the top 10, so that a board past
    // every accepted action is sent.
    let client = reqwest::Client::new();
    let last = act(&client, &writes.load.target, &writes.keys, 0).await?;
    let seen = stop_at(followers, stop, last, Duration::from_secs(10)).await?;
    let mut acks = std::mem::take(&mut *acks.lock().expect("acks"));
    acks.sort_unstable();
    let (mut latency, mut top_latency) = (loadgen::histogram(), loadgen::histogram());
    let mut unseen = 0u64;
    for &(position, acknowledged, top) in acks.iter().step_by(sample.max(1)) {
        for client in &seen {
            match sse::first_at(client, position) {
                Some(at) => {
                    let micros = at.saturating_duration_since(acknowledged).as_micros().max(1) as u64;
                    latency.saturating_record(micros);
                    if top {
                        top_latency.saturating_record(micros);
                    }
                }
                None => unseen += 1,
            }
        }
    }
    figures.add("offered_per_s", rate).add("clients", clients);
    outcome_figures(&mut figures, "write", &outcome);
    figures.latencies("propagation", &latency).add("propagation_samples", latency.len()).add("unseen", unseen);
    figures.latencies("top_propagation", &top_latency).add("top_propagation_samples", top_latency.len());
    Ok(figures)
}

async fn fanout(
    target: String,
    query: String,
    pid: u32,
    keys: KeySet,
    clients: usize,
    updates: usize,
) -> anyhow::Result<Figures> {
    let before = loadgen::resident_bytes(pid)?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let followers = open_streams(&http::authority(&query)?, "/v1/leaderboard/stream?limit=10", clients, &stop).await?;
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = loadgen::resident_bytes(pid)?;
    eprintln!("{clients} SSE clients connected in {opened_in:.1?}; query-svc {} → {} MB", before >> 20, after >> 20);
    let client = reqwest::Client::new();
    let mut last = (0, Instant::now());
    for _ in 0..updates {
        last = (act(&client, &target, &keys, 0).await?, Instant::now());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = stop_at(followers, stop, last.0, Duration::from_secs(15)).await?;
    let mut delivery = loadgen::histogram();
    let mut missed = 0;
    let mut boards = 0;
    for client in &seen {
        boards += client.len();
        match sse::first_at(client, last.0) {
            Some(at) => delivery.saturating_record(at.saturating_duration_since(last.1).as_micros().max(1) as u64),
            None => missed += 1,
        }
    }
    let mut figures = Figures::new();
    figures
        .add("clients", clients)
        .add("connect_s", format!("{:.1}", opened_in.as_secs_f64()))
        .add("rss_before_mb", before >> 20)
        .add("rss_after_mb", after >> 20)
        .add("kb_per_client", format!("{:.1}", after.saturating_sub(before) as f64 / 1024.0 / clients.max(1) as f64))
        .add("boards_per_client", format!("{:.1}", boards as f64 / clients.max(1) as f64))
        .add("missed_last_update", missed)
        .latencies("last_update", &delivery);
    Ok(figures)
}

async fn publish(nats_url: String, messages: usize, size: usize, window: usize) -> anyhow::Result<Figures> {
    let client = async_nats::connect(&nats_url).await?;
    let jetstream = async_nats::jetstream::new(client);
    let name = format!("BENCH_PUBLISH_{}", std::process::id());
    let subject = format!("bench.publish.{}", std::process::id());
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    let payload = Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    let mut pending = futures::stream::FuturesUnordered::new();
    for _ in 0..messages {
        if pending.len() >= window {
            pending.next().await.expect("a pending publish")?;
        }
        pending.push(jetstream.publish(subject.clone(), payload.clone()).await?.into_future());
    }
    while let Some(ack) = pending.next().await {
        ack?;
    }
    let seconds = started.elapsed().as_secs_f64();
    jetstream.delete_stream(&name).await?;
    let mut figures = Figures::new();
    figures.add("published_per_s", format!("{:.0}", messages as f64 / seconds));
    Ok(figures)
}

async fn hello(addr: String) -> anyhow::Result<()> {
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, World!" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn seed(database_url: String, events: u64, players: u64, batch: u32) -> anyhow::Result<Figures> {
    use store::LeaderboardStore as _;
    let mut figures = Figures::new();
    let started = Instant::now();
    let pool = loadgen::log::write(&database_url, events, players).await?;
    figures.add("appended_per_s", format!("{:.0}", events as f64 / started.elapsed().as_secs_f64()));
    eprintln!("log of {events} events written in {:.1?}; folding it", started.elapsed());
    // An empty read model (a log written before is reused, with what was folded of it).
    for statement in [
        "TRUNCATE leaderboard, board_standings, board_changes, board_snapshots, anomaly_flags",
        "UPDATE projection_checkpoints SET position = 0, generation = generation + 1",
    ] {
        sqlx::query(statement).execute(&pool).await?;
    }
    let read_model = store::PgLeaderboard::new(pool);
    let started = Instant::now();
    while read_model.fold_next(batch).await?.to < events {}
    figures.add("folded_per_s", format!("{:.0}", events as f64 / started.elapsed().as_secs_f64()));
    eprintln!("folded in {:.1?}; rebuilding", started.elapsed());
    let started = Instant::now();
    let rebuilt = read_model.rebuild(10_000, |_| {}).await?;
    anyhow::ensure!(rebuilt.position == events, "rebuilt through {} of {events}", rebuilt.position);
    figures.add("rebuilt_per_s", format!("{:.0}", events as f64 / started.elapsed().as_secs_f64()));
    Ok(figures)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let figures = match Command::parse() {
        Command::Write { writes, tokens } => write(writes, tokens).await?,
        Command::Read { load, path, players } => read(load, path, players).await?,
        Command::Propagation { writes, clients, sample } => propagation(writes, clients, sample).await?,
        Command::Fanout { target, query, pid, keys, clients, updates } => {
            fanout(target, query, pid, keys, clients, updates).await?
        }
        Command::Publish { nats_url, messages, size, window } => publish(nats_url, messages, size, window).await?,
        Command::Hello { addr } => return hello(addr).await,
        Command::Seed { database_url, events, players, batch } => seed(database_url, events, players, batch).await?,
        Command::Boards(command) => return loadgen::boards::run(command).await,
        Command::Proofs(command) => return loadgen::proofs::run(command).await,
        Command::Soak(settings) => {
            let (figures, failures) = loadgen::soak::run(settings).await?;
            figures.print();
            for failure in &failures {
                eprintln!("soak: FAILED: {failure}");
            }
            anyhow::ensure!(failures.is_empty(), "the soak run lost or miscounted something (above)");
            eprintln!("soak: nothing acknowledged was lost or counted twice");
            return Ok(());
        }
    };
    figures.print();
    Ok(())
}

//! The soak run (`loadgen soak`, driven by `scripts/soak`): Scoreboard deployed as in
//! production — PostgreSQL, a three-node JetStream cluster with the log's stream on three
//! replicas, two command-svc, two projectors (one folding, one standing by) and two query-svc —
//! under steady signed writes, every kind of reader, live SSE and WebSocket clients and hostile
//! clients (silent connections, cold-path floods, forged NATS messages), while a chaos loop
//! kills a service with SIGKILL, restarts a NATS node or cuts PostgreSQL every 20–40 s.
//!
//! At the end, with every fault healed: every action answered 201 (or 200 on a retry) is in the
//! log exactly once, the log verifies against its signed checkpoints, every board and season is
//! the fold of the log, every live client's last frame shows the board, no forged message
//! changed a score, and no process's memory grew without bound. Anything else is a failure.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use events::{ActionName, KeySet};
use futures::{SinkExt as _, StreamExt as _};
use platform::config::parse_duration;
use rand::Rng as _;
use serde_json::Value;
use testkit::{NatsServer, Process, Proxy, TestDb};
use tokio::io::AsyncReadExt as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::Figures;

/// What a soak run does, and for how long.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// The folder of the command-svc, projector, query-svc and scoreboard-admin binaries.
    #[arg(long, default_value = "target/release")]
    pub bin: PathBuf,
    /// How long the load and the faults last.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Actions offered per second.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Players the actions are spread over.
    #[arg(long, default_value_t = 5_000)]
    pub players: u64,
    /// Live SSE clients (and a quarter as many WebSocket clients).
    #[arg(long, default_value_t = 200)]
    pub live_clients: usize,
    /// Silent connections each hostile address keeps open to each HTTP service.
    #[arg(long, default_value_t = 300)]
    pub silent_connections: usize,
    /// Where each service's log is written (`<name>.log`, appended).
    #[arg(long, default_value = ".scoreboard/soak")]
    pub logs: PathBuf,
    /// The shortest time between two faults.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub fault_every_min: Duration,
    /// The longest time between two faults.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    pub fault_every_max: Duration,
}

/// Where normal clients, silent connections and the cold-path flood come from: three loopback
/// addresses, so the per-address caps tell them apart.
const NORMAL: &str = "127.0.0.1";
const SILENT: &str = "127.0.0.2";
const FLOOD: &str = "127.0.0.3";

/// How long a writer retries one action (the same token) before giving up on it.
const RETRY_FOR: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Command,
    Projector,
    Query,
}

impl Role {
    fn binary(self) -> &'static str {
        match self {
            Self::Command => "command-svc",
            Self::Projector => "projector",
            Self::Query => "query-svc",
        }
    }

    fn addr_variable(self) -> &'static str {
        match self {
            Self::Command => "COMMAND_ADDR",
            Self::Projector => "PROJECTOR_ADDR",
            Self::Query => "QUERY_ADDR",
        }
    }
}

/// One service process, restarted on the port it had.
struct Service {
    name: String,
    role: Role,
    port: u16,
    process: Mutex<Process>,
    /// Resident memory samples of the current incarnation: (seconds into the run, KiB).
    rss: Mutex<Vec<(u64, u64)>>,
    rss_max_kib: AtomicU64,
}

impl Service {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The deployment under test.
struct Deployment {
    bin: PathBuf,
    logs: PathBuf,
    settings: Vec<(&'static str, String)>,
    db: TestDb,
    postgres: Proxy,
    nats: tokio::sync::Mutex<Vec<NatsServer>>,
    nats_urls: String,
    services: Vec<Service>,
    started: Instant,
}

impl Deployment {
    async fn start(bin: PathBuf, logs: PathBuf, keys: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&logs)?;
        let nats = NatsServer::cluster(3).await;
        let nats_urls = nats.iter().map(NatsServer::url).collect::<Vec<_>>().join(",");
        let db = TestDb::new().await;
        let upstream: reqwest::Url = db.url.parse()?;
        let upstream =
            tokio::net::lookup_host((upstream.host_str().unwrap_or("127.0.0.1"), upstream.port().unwrap_or(5432)))
                .await?
                .next()
                .ok_or_else(|| anyhow::anyhow!("the database's host has no address"))?;
        let postgres = Proxy::start(upstream).await;
        let settings = vec![
            ("DATABASE_URL", db.url_via(postgres.port())),
            ("NATS_URL", nats_urls.clone()),
            ("NATS_STREAM", "SOAK".into()),
            ("NATS_SUBJECT_PREFIX", "soak.events".into()),
            ("NATS_CHANGES_SUBJECT", "soak.changes".into()),
            ("NATS_CHECKPOINT_SUBJECT", "soak.checkpoints".into()),
            ("NATS_STREAM_REPLICAS", "3".into()),
            ("ACTION_KEYS", keys.into()),
            ("RATE_LIMIT_PER_PLAYER", "off".into()),
            ("RATE_LIMIT_PER_ADDRESS", "off".into()),
            ("RATE_LIMIT_READS_PER_ADDRESS", "1000/s".into()),
            // Below the silent clients' connections, so that the cap is seen to hold.
            ("CONNECTIONS_PER_ADDRESS_MAX", "256".into()),
            // The live clients all come from one address, standing for many browsers.
            ("STREAMS_PER_ADDRESS_MAX", "1000".into()),
            ("CHECKPOINT_INTERVAL", "2s".into()),
        ];
        let mut services = Vec::new();
        for (role, name) in [
            (Role::Command, "command-1"),
            (Role::Command, "command-2"),
            (Role::Projector, "projector-1"),
            (Role::Projector, "projector-2"),
            (Role::Query, "query-1"),
            (Role::Query, "query-2"),
        ] {
            let port = testkit::free_port();
            let log = log_file(&logs, name)?;
            let process = Process::spawn_on(&binary(&bin, role.binary()), &settings, role.addr_variable(), port, log);
            services.push(Service {
                name: name.into(),
                role,
                port,
                process: Mutex::new(process),
                rss: Mutex::default(),
                rss_max_kib: AtomicU64::new(0),
            });
        }
        let deployment = Self {
            bin,
            logs,
            settings,
            db,
            postgres,
            nats: tokio::sync::Mutex::new(nats),
            nats_urls,
            services,
            started: Instant::now(),
        };
        deployment.all_ready(Duration::from_secs(120)).await?;
        Ok(deployment)
    }

    fn urls(&self, role: Role) -> Vec<String> {
        self.services.iter().filter(|s| s.role == role).map(Service::url).collect()
    }

    /// Waits until every service answers `/readyz`.
    async fn all_ready(&self, within: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        for service in &self.services {
            loop {
                let ready = client.get(format!("{}/readyz", service.url())).send().await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "{} is not ready after {within:?}", service.name);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Kills `service` with SIGKILL and starts it again on its port a moment later.
    async fn kill_and_restart(&self, service: &Service) {
        service.process.lock().unwrap_or_else(std::sync::PoisonError::into_inner).signal("KILL");
        let down = Duration::from_millis(rand::rng().random_range(500..2000));
        tokio::time::sleep(down).await;
        let log = log_file(&self.logs, &service.name).map_or_else(|_| std::process::Stdio::null(), Into::into);
        let restarted = Process::spawn_on(
            &binary(&self.bin, service.role.binary()),
            &self.settings,
            service.role.addr_variable(),
            service.port,
            log,
        );
        *service.process.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = restarted;
        service.rss.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// Every service's resident memory, noted.
    fn sample_memory(&self) {
        let at = self.started.elapsed().as_secs();
        for service in &self.services {
            let pid = service.process.lock().unwrap_or_else(std::sync::PoisonError::into_inner).id();
            if let Ok(bytes) = crate::resident_bytes(pid) {
                let kib = bytes / 1024;
                service.rss.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((at, kib));
                service.rss_max_kib.fetch_max(kib, Ordering::Relaxed);
            }
        }
    }
}

/// `<logs>/<name>.log`, to append to.
fn log_file(logs: &std::path::Path, name: &str) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().create(true).append(true).open(logs.join(format!("{name}.log")))
}

fn binary(bin: &std::path::Path, name: &str) -> String {
    bin.join(name).display().to_string()
}

/// Each live client's last frame, with the query service (its index) that sent it.
type LastFrames = Mutex<Vec<Option<(usize, Value)>>>;

/// What the clients saw, counted as it happens.
#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    accepted_on_retry: AtomicU64,
    write_errors: AtomicU64,
    writes_given_up: AtomicU64,
    writes_refused: AtomicU64,
    head: AtomicU64,
    reads_ok: AtomicU64,
    read_errors: AtomicU64,
    live_frames: AtomicU64,
    live_reconnects: AtomicU64,
    silent_opened: AtomicU64,
    silent_refused: AtomicU64,
    silent_closed: AtomicU64,
    flood_ok: AtomicU64,
    flood_refused: AtomicU64,
    flood_other: AtomicU64,
    forged: AtomicU64,
    kills: AtomicU64,
    nats_restarts: AtomicU64,
    postgres_cuts: AtomicU64,
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Runs the soak; the figures, and what failed (nothing, if nothing was lost).
pub async fn run(settings: Settings) -> anyhow::Result<(Figures, Vec<String>)> {
    let secret: String = (0..32).map(|_| format!("{:02x}", rand::rng().random::<u8>())).collect();
    let keys = format!("soak={secret}");
    eprintln!("soak: starting PostgreSQL's database, three NATS nodes and six services");
    let deployment = Arc::new(Deployment::start(settings.bin.clone(), settings.logs.clone(), &keys).await?);
    let keys = KeySet::parse(&keys)?;
    let tally = Arc::new(Tally::default());
    let acked: Arc<Mutex<Vec<Uuid>>> = Arc::default();
    let propagation = Arc::new(Mutex::new(crate::histogram()));
    let (load, live, faults) = (CancellationToken::new(), CancellationToken::new(), CancellationToken::new());
    let frames: Arc<LastFrames> = Arc::new(Mutex::new(vec![None; settings.live_clients + settings.live_clients / 4]));

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(write_steadily(
        deployment.clone(),
        keys,
        settings.clone(),
        tally.clone(),
        acked.clone(),
        propagation.clone(),
        load.clone(),
    ));
    for _ in 0..4 {
        tasks.spawn(read_steadily(deployment.urls(Role::Query), settings.players, tally.clone(), load.clone()));
    }
    for _ in 0..16 {
        tasks.spawn(flood_the_cold_path(deployment.urls(Role::Query), tally.clone(), load.clone()));
    }
    for service in &deployment.services {
        let address: SocketAddr = ([127, 0, 0, 1], service.port).into();
        for _ in 0..settings.silent_connections {
            tasks.spawn(stay_silent(address, tally.clone(), load.clone()));
        }
    }
    tasks.spawn(forge(deployment.nats_urls.clone(), tally.clone(), load.clone()));
    let mut live_tasks = tokio::task::JoinSet::new();
    let queries = deployment.urls(Role::Query);
    for client in 0..frames.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len() {
        let websocket = client >= settings.live_clients;
        let follow = follow_live(queries.clone(), client, websocket, frames.clone(), tally.clone(), live.clone());
        live_tasks.spawn(follow);
    }
    let chaos = tokio::spawn(inject_faults(deployment.clone(), settings.clone(), tally.clone(), faults.clone()));
    let sampler = tokio::spawn({
        let (deployment, load) = (deployment.clone(), load.clone());
        async move {
            while !load.is_cancelled() {
                deployment.sample_memory();
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    });

    let started = Instant::now();
    while started.elapsed() < settings.duration {
        tokio::time::sleep(Duration::from_secs(10).min(settings.duration.saturating_sub(started.elapsed()))).await;
        eprintln!(
            "soak: {:>4} s  {} accepted, {} write errors, {} faults",
            started.elapsed().as_secs(),
            tally.accepted.load(Ordering::Relaxed),
            tally.write_errors.load(Ordering::Relaxed),
            tally.kills.load(Ordering::Relaxed)
                + tally.nats_restarts.load(Ordering::Relaxed)
                + tally.postgres_cuts.load(Ordering::Relaxed),
        );
    }
    eprintln!("soak: healing every fault, then letting the writes in flight finish");
    faults.cancel();
    chaos.await?;
    deployment.all_ready(Duration::from_secs(120)).await?;
    load.cancel();
    while let Some(task) = tasks.join_next().await {
        task?;
    }
    sampler.await?;

    let failures = check(&deployment, &tally, &acked, &frames).await?;
    live.cancel();
    while live_tasks.join_next().await.is_some() {}
    Ok((figures(&deployment, &tally, &propagation, &settings, started.elapsed()), failures))
}

/// Signed actions at `settings.rate` per second, from `settings.players` players, to both
/// command services in turn; each is retried with the same token until answered.
async fn write_steadily(
    deployment: Arc<Deployment>,
    keys: KeySet,
    settings: Settings,
    tally: Arc<Tally>,
    acked: Arc<Mutex<Vec<Uuid>>>,
    propagation: Arc<Mutex<hdrhistogram::Histogram<u64>>>,
    stop: CancellationToken,
) {
    let targets = Arc::new(deployment.urls(Role::Command));
    let queries = Arc::new(deployment.urls(Role::Query));
    let client = client(NORMAL);
    let action: ActionName = "complete_task".parse().unwrap_or_else(|_| unreachable!("a valid action name"));
    // Fewer than the per-address connection cap, even when every one waits on a fault.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(200));
    let mut tick = tokio::time::interval(Duration::from_secs(1) / settings.rate.max(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for k in 0u64.. {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
        let player = rand::rng().random_range(0..settings.players.max(1));
        let body = crate::tokens::mint_one(&keys, &action, player);
        let (client, targets, queries, tally, acked, propagation) =
            (client.clone(), targets.clone(), queries.clone(), tally.clone(), acked.clone(), propagation.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let Some(position) = submit(&client, &targets, k as usize, body, &tally, &acked).await else { return };
            // One action in fifty: how long until both query services show it.
            if k % 50 == 0 {
                let accepted = Instant::now();
                for query in queries.iter() {
                    if shown(&client, query, position, RETRY_FOR).await {
                        let micros = accepted.elapsed().as_micros() as u64;
                        let _ = propagation.lock().unwrap_or_else(std::sync::PoisonError::into_inner).record(micros);
                    }
                }
            }
        });
    }
    let _ = in_flight.acquire_many(200).await;
}

/// Posts `body` until a command service answers 201 or 200 (or [`RETRY_FOR`] passes); the
/// position of the award when it was acknowledged.
async fn submit(
    client: &reqwest::Client,
    targets: &[String],
    first: usize,
    body: Bytes,
    tally: &Tally,
    acked: &Mutex<Vec<Uuid>>,
) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Accepted {
        action_id: Uuid,
        position: u64,
    }
    let started = Instant::now();
    for attempt in 0usize.. {
        let target = &targets[(first + attempt) % targets.len()];
        let answer = client
            .post(format!("{target}/v1/actions"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match answer {
            Ok(response) if response.status() == 201 || response.status() == 200 => {
                if let Ok(accepted) = response.json::<Accepted>().await {
                    acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(accepted.action_id);
                    add(&tally.accepted);
                    if attempt > 0 {
                        add(&tally.accepted_on_retry);
                    }
                    tally.head.fetch_max(accepted.position, Ordering::Relaxed);
                    return Some(accepted.position);
                }
                add(&tally.write_errors);
            }
            // A refusal that a retry cannot mend: the token itself is wrong.
            Ok(response) if response.status().is_client_error() && response.status() != 429 => {
                add(&tally.writes_refused);
                return None;
            }
            Ok(_) | Err(_) => add(&tally.write_errors),
        }
        if started.elapsed() > RETRY_FOR {
            add(&tally.writes_given_up);
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100 * (attempt as u64 + 1).min(10))).await;
    }
    None
}

/// Whether `query` shows a board at or past `position` within `within`.
async fn shown(client: &reqwest::Client, query: &str, position: u64, within: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if let Some(board) = board(client, query, "/v1/leaderboard?limit=1").await
            && board["position"].as_u64().is_some_and(|p| p >= position)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn board(client: &reqwest::Client, query: &str, path: &str) -> Option<Value> {
    let response = client.get(format!("{query}{path}")).send().await.ok()?;
    if response.status() != 200 {
        return None;
    }
    response.json().await.ok()
}

/// A client from `address`, whose requests give up after 5 s.
fn client(address: &str) -> reqwest::Client {
    let address: IpAddr = address.parse().unwrap_or_else(|_| unreachable!("a loopback address"));
    reqwest::Client::builder()
        .local_address(address)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_else(|error| panic!("an HTTP client: {error}"))
}

/// The reads a page makes: the top, a page further down, a player, a player's neighbourhood.
async fn read_steadily(queries: Vec<String>, players: u64, tally: Arc<Tally>, stop: CancellationToken) {
    let client = client(NORMAL);
    while !stop.is_cancelled() {
        let (query, player) =
            (&queries[rand::rng().random_range(0..queries.len())], rand::rng().random_range(0..players.max(1)));
        let path = match rand::rng().random_range(0..4) {
            0 => "/v1/leaderboard".to_string(),
            1 => "/v1/leaderboard?limit=100&offset=100".to_string(),
            2 => format!("/v1/players/{}", crate::tokens::player(player)),
            _ => format!("/v1/boards/global/players/{}/around", crate::tokens::player(player)),
        };
        match client.get(format!("{query}{path}")).send().await {
            // A player who has not played yet is a 404.
            Ok(response) if response.status() == 200 || response.status() == 404 => add(&tally.reads_ok),
            _ => add(&tally.read_errors),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client of the live board (SSE, or WebSocket), reconnecting with the last position it
/// showed whenever its stream ends; its last frame is kept in `frames[slot]` with the query
/// service that sent it.
async fn follow_live(
    queries: Vec<String>,
    slot: usize,
    websocket: bool,
    frames: Arc<LastFrames>,
    tally: Arc<Tally>,
    stop: CancellationToken,
) {
    let http = reqwest::Client::new();
    let mut last: Option<u64> = None;
    for attempt in 0usize.. {
        let query = (slot + attempt) % queries.len();
        let keep = |frame: Value| {
            add(&tally.live_frames);
            frame["position"].as_u64().inspect(|_| {
                frames.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[slot] = Some((query, frame.clone()))
            })
        };
        let ended = tokio::select! {
            () = stop.cancelled() => return,
            ended = async {
                if websocket {
                    follow_websocket(&queries[query], &mut last, keep).await
                } else {
                    follow_sse(&http, &queries[query], &mut last, keep).await
                }
            } => ended,
        };
        add(&tally.live_reconnects);
        // Refused or cut off: back off as a browser's EventSource does.
        let wait = if ended.is_err() { Duration::from_secs(1) } else { Duration::from_millis(250) };
        tokio::time::sleep(wait).await;
    }
}

async fn follow_sse(
    http: &reqwest::Client,
    query: &str,
    last: &mut Option<u64>,
    mut keep: impl FnMut(Value) -> Option<u64>,
) -> anyhow::Result<()> {
    let mut request = http.get(format!("{query}/v1/leaderboard/stream"));
    if let Some(last) = last {
        request = request.header("last-event-id", last.to_string());
    }
    let response = request.send().await?;
    anyhow::ensure!(response.status() == 200, "{}", response.status());
    let mut body = response.bytes_stream();
    let mut line = Vec::new();
    while let Some(chunk) = body.next().await {
        for &byte in chunk?.iter() {
            if byte != b'\n' {
                line.push(byte);
                continue;
            }
            if let Some(data) = line.strip_prefix(b"data: ")
                && let Ok(frame) = serde_json::from_slice::<Value>(data)
                && let Some(position) = keep(frame)
            {
                *last = Some(position);
            }
            line.clear();
        }
    }
    Ok(())
}

async fn follow_websocket(
    query: &str,
    last: &mut Option<u64>,
    mut keep: impl FnMut(Value) -> Option<u64>,
) -> anyhow::Result<()> {
    let resume = last.map(|p| format!("?last_event_id={p}")).unwrap_or_default();
    let url = format!("{}/v1/leaderboard/ws{resume}", query.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await?;
    while let Some(message) = socket.next().await {
        match message? {
            tokio_tungstenite::tungstenite::Message::Text(text) => {
                if let Ok(frame) = serde_json::from_str::<Value>(&text)
                    && let Some(position) = keep(frame)
                {
                    *last = Some(position);
                }
            }
            tokio_tungstenite::tungstenite::Message::Ping(data) => {
                socket.send(tokio_tungstenite::tungstenite::Message::Pong(data)).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A connection from the silent address that never sends a byte, opened again whenever the
/// server closes it (its first-byte timeout) or refuses it (its connection caps).
async fn stay_silent(address: SocketAddr, tally: Arc<Tally>, stop: CancellationToken) {
    let from: IpAddr = SILENT.parse().unwrap_or_else(|_| unreachable!("a loopback address"));
    while !stop.is_cancelled() {
        let connected = async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind((from, 0).into())?;
            socket.connect(address).await
        };
        let Ok(mut connection) = connected.await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        add(&tally.silent_opened);
        let mut answer = [0u8; 12];
        tokio::select! {
            () = stop.cancelled() => return,
            read = connection.read(&mut answer) => match read {
                Ok(n) if answer[..n].starts_with(b"HTTP/1.1 503") => {
                    add(&tally.silent_refused);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ => add(&tally.silent_closed),
            },
        }
    }
}

/// Past boards at random positions, as fast as answered, from the flood address.
async fn flood_the_cold_path(queries: Vec<String>, tally: Arc<Tally>, stop: CancellationToken) {
    let client = client(FLOOD);
    while !stop.is_cancelled() {
        let query = &queries[rand::rng().random_range(0..queries.len())];
        let position = rand::rng().random_range(1..=tally.head.load(Ordering::Relaxed).max(1));
        match client.get(format!("{query}/v1/leaderboard?as_of_position={position}")).send().await {
            Ok(response) if response.status() == 200 => add(&tally.flood_ok),
            Ok(response) if response.status() == 429 || response.status() == 503 => {
                add(&tally.flood_refused);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => add(&tally.flood_other),
        }
    }
}

/// Every few seconds, a message on the log's stream that no relay wrote: an award of a million
/// points to `forger`, claiming the next position.
async fn forge(nats_urls: String, tally: Arc<Tally>, stop: CancellationToken) {
    let servers: Vec<async_nats::ServerAddr> = nats_urls.split(',').filter_map(|url| url.parse().ok()).collect();
    let Ok(client) = async_nats::connect(servers).await else { return };
    let js = async_nats::jetstream::new(client);
    while !stop.is_cancelled() {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let position = tally.head.load(Ordering::Relaxed) + 1;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(platform::nats::POSITION_HEADER, position.to_string().as_str());
        headers.insert(platform::nats::EVENT_TYPE_HEADER, "ScoreAwarded");
        headers.insert(platform::nats::EVENT_VERSION_HEADER, "1");
        let payload = serde_json::json!({
            "event_id": Uuid::now_v7(), "action_id": Uuid::now_v7(), "player_id": "forger",
            "action": "complete_task", "points": 1_000_000, "recorded_at": "2026-01-01T00:00:00Z",
        });
        let published = js.publish_with_headers("soak.events.ScoreAwarded", headers, payload.to_string().into()).await;
        if published.is_ok() {
            add(&tally.forged);
        }
    }
}

/// Every `fault_every_min`..`fault_every_max`, one fault: a service killed (SIGKILL) and
/// restarted, a NATS node killed and restarted, or PostgreSQL cut off for 2–6 s.
async fn inject_faults(deployment: Arc<Deployment>, settings: Settings, tally: Arc<Tally>, stop: CancellationToken) {
    let every = settings.fault_every_min.as_millis() as u64..=settings.fault_every_max.as_millis().max(1) as u64;
    loop {
        let wait = Duration::from_millis(rand::rng().random_range(every.clone()));
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let at = deployment.started.elapsed().as_secs();
        let fault = rand::rng().random_range(0..3);
        match fault {
            0 => {
                let service = &deployment.services[rand::rng().random_range(0..deployment.services.len())];
                eprintln!("soak: {at:>4} s  fault: SIGKILL {}", service.name);
                deployment.kill_and_restart(service).await;
                add(&tally.kills);
            }
            1 => {
                let node = rand::rng().random_range(0..3);
                eprintln!("soak: {at:>4} s  fault: NATS node n{} killed and restarted", node + 1);
                let mut nats = deployment.nats.lock().await;
                nats[node].kill();
                tokio::time::sleep(Duration::from_secs(3)).await;
                nats[node].restart().await;
                add(&tally.nats_restarts);
            }
            _ => {
                let cut = Duration::from_millis(rand::rng().random_range(2000..6000));
                eprintln!("soak: {at:>4} s  fault: PostgreSQL cut off for {:.1} s", cut.as_secs_f64());
                deployment.postgres.cut();
                tokio::time::sleep(cut).await;
                deployment.postgres.restore();
                add(&tally.postgres_cuts);
            }
        }
    }
}

/// The checks of the end, once every fault is healed and the load has stopped.
async fn check(
    deployment: &Deployment,
    tally: &Tally,
    acked: &Mutex<Vec<Uuid>>,
    frames: &LastFrames,
) -> anyhow::Result<Vec<String>> {
    let mut failures = Vec::new();
    let pool = deployment.db.pool().await;
    let head: i64 = sqlx::query_scalar("SELECT COALESCE(max(position), 0) FROM events").fetch_one(&pool).await?;
    let head = head as u64;
    let client = client(NORMAL);
    let queries = deployment.urls(Role::Query);
    eprintln!("soak: the log's head is {head}; waiting for both query services to show it");
    for query in &queries {
        if !shown(&client, query, head, Duration::from_secs(120)).await {
            failures.push(format!("{query} does not show the log's head {head} after 120 s"));
        }
    }

    let acked: Vec<Uuid> = acked.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let distinct: HashSet<Uuid> = acked.iter().copied().collect();
    if distinct.len() != acked.len() {
        failures.push(format!("{} actions were acknowledged twice", acked.len() - distinct.len()));
    }
    let distinct: Vec<Uuid> = distinct.into_iter().collect();
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE action_id = ANY($1)")
        .bind(&distinct)
        .fetch_one(&pool)
        .await?;
    if logged as usize != distinct.len() {
        failures.push(format!("{} acknowledged actions are missing from the log", distinct.len() - logged as usize));
    }
    pool.close().await;

    let admin = binary(&deployment.bin, "scoreboard-admin");
    for (what, args) in [
        ("the log against its signed checkpoints", vec!["verify-log", "--url", queries[0].as_str()]),
        (
            "the read model against the fold of the log",
            vec!["verify-read-model", "--database-url", deployment.db.url.as_str()],
        ),
    ] {
        let output = tokio::process::Command::new(&admin).args(&args).output().await?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned();
            failures.push(format!("verifying {what} failed: {said}"));
        }
    }

    // Every live client's last frame shows its query service's board (they may take a moment
    // to get the last update).
    let mut stale = 0;
    for _ in 0..100 {
        let mut boards = Vec::new();
        for query in &queries {
            boards.push(board(&client, query, "/v1/leaderboard").await.map(|b| b["entries"].clone()));
        }
        let frames = frames.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        stale = frames
            .iter()
            .filter(|frame| match frame {
                Some((query, frame)) => boards[*query].as_ref() != Some(&frame["entries"]),
                None => true,
            })
            .count();
        if stale == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if stale > 0 {
        failures.push(format!("{stale} live clients' last frame is not the board"));
    }

    for query in &queries {
        let forger = client.get(format!("{query}/v1/players/forger")).send().await?;
        if forger.status() != 404 {
            failures.push(format!("{query}: a forged NATS message gave `forger` a standing ({})", forger.status()));
        }
    }
    if tally.accepted.load(Ordering::Relaxed) == 0 {
        failures.push("no action was accepted".into());
    }

    // Memory: a service that lived through most of the run without a restart must not have
    // kept growing (the last sample against the one a third of the way in).
    for service in &deployment.services {
        let samples = service.rss.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let (Some(&(from, _)), Some(&(to, last))) = (samples.first(), samples.last()) else { continue };
        if to - from < 120 {
            continue;
        }
        let third = samples[samples.len() / 3].1;
        if last > third * 3 / 2 && last - third > 100 * 1024 {
            failures.push(format!("{}'s memory grew from {} MB to {} MB", service.name, third / 1024, last / 1024));
        }
    }
    Ok(failures)
}

fn figures(
    deployment: &Deployment,
    tally: &Tally,
    propagation: &Mutex<hdrhistogram::Histogram<u64>>,
    settings: &Settings,
    ran: Duration,
) -> Figures {
    let mut figures = Figures::default();
    let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed).to_string();
    figures.add("soak_seconds", ran.as_secs());
    figures.add("offered_actions_per_s", settings.rate);
    figures.add("actions_accepted", count(&tally.accepted));
    figures.add("actions_accepted_on_a_retry", count(&tally.accepted_on_retry));
    figures.add("write_errors_seen_by_clients", count(&tally.write_errors));
    figures.add("writes_given_up_after_60s", count(&tally.writes_given_up));
    figures.add("writes_refused", count(&tally.writes_refused));
    figures.add("reads_ok", count(&tally.reads_ok));
    figures.add("read_errors_seen_by_clients", count(&tally.read_errors));
    figures.add("faults_sigkill", count(&tally.kills));
    figures.add("faults_nats_node_restart", count(&tally.nats_restarts));
    figures.add("faults_postgres_cut", count(&tally.postgres_cuts));
    let propagation = propagation.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    figures.add("propagation_samples", propagation.len());
    figures.latencies("propagation", &propagation);
    figures.add("live_clients", settings.live_clients + settings.live_clients / 4);
    figures.add("live_frames", count(&tally.live_frames));
    figures.add("live_reconnects", count(&tally.live_reconnects));
    figures.add("silent_connections_opened", count(&tally.silent_opened));
    figures.add("silent_connections_refused", count(&tally.silent_refused));
    figures.add("silent_connections_closed_by_timeout", count(&tally.silent_closed));
    figures.add("cold_flood_answered", count(&tally.flood_ok));
    figures.add("cold_flood_refused_429_503", count(&tally.flood_refused));
    figures.add("cold_flood_other", count(&tally.flood_other));
    figures.add("forged_nats_messages", count(&tally.forged));
    for service in &deployment.services {
        figures.add(&format!("max_rss_mb_{}", service.name), service.rss_max_kib.load(Ordering::Relaxed) / 1024);
    }
    figures
}

//! Test support for Scoreboard's integration tests, which talk to real PostgreSQL and real
//! NATS JetStream: a fresh database and a fresh stream per test (both removed afterwards),
//! private nats-server processes that a test can kill, a TCP proxy that a test can cut to make
//! a dependency unreachable, and signing keys with a token minter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use events::{ActionClaims, KeyId, KeySecret, KeySet};
use futures::StreamExt as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Executor as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use uuid::Uuid;

/// The PostgreSQL server tests create their databases on: `TEST_DATABASE_URL`, else
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The shared NATS server: `TEST_NATS_URL`, else `nats://127.0.0.1:4222`.
pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A fresh, empty database, dropped (with its connections) when this value is dropped.
pub struct TestDb {
    /// Its name.
    pub name: String,
    /// A URL to it, for configuration.
    pub url: String,
    admin: PgConnectOptions,
}

impl TestDb {
    /// Creates `sbt_<uuid>` on the admin server.
    pub async fn new() -> Self {
        let admin: PgConnectOptions = admin_database_url().parse().expect("TEST_DATABASE_URL is a PostgreSQL URL");
        let name = format!("sbt_{}", Uuid::new_v4().simple());
        let mut connection = admin.connect().await.expect("PostgreSQL is reachable (see README: scripts/test)");
        connection.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.unwrap();
        let url = with_path(&admin_database_url(), &name);
        Self { name, url, admin }
    }

    /// The URL of this database reached through `port` on 127.0.0.1 (a [`Proxy`]).
    pub fn url_via(&self, port: u16) -> String {
        let mut url = reqwest::Url::parse(&self.url).unwrap();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(port)).unwrap();
        url.to_string()
    }

    /// A pool on this database.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new().max_connections(8).connect_with(self.admin.clone().database(&self.name)).await.unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a fresh thread may block on its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
                let mut connection = admin.connect().await?;
                connection.execute(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) {
            eprintln!("testkit: could not drop test database {}", self.name);
        }
    }
}

fn with_path(url: &str, database: &str) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    url.set_path(database);
    url.to_string()
}

/// A JetStream stream name and subject prefix of a test's own, deleted on drop.
pub struct TestStream {
    /// The stream name.
    pub name: String,
    /// The subject prefix.
    pub subject_prefix: String,
    /// The core NATS subject of board changes (outside the stream's subjects).
    pub changes_subject: String,
    /// The subject prefix of signed checkpoints (in the stream `<name>_CHECKPOINTS`).
    pub checkpoint_subject: String,
    /// The subject prefix of season results (in the stream `<name>_RESULTS`).
    pub results_subject: String,
    /// The NATS server it lives on.
    pub nats_url: String,
}

impl TestStream {
    /// Names on the shared NATS server.
    pub fn new() -> Self {
        Self::on(&nats_url())
    }

    /// Names on the NATS server at `nats_url`.
    pub fn on(nats_url: &str) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        Self {
            name: format!("SBT_{id}"),
            subject_prefix: format!("sbt.{id}"),
            changes_subject: format!("sbtc.{id}"),
            checkpoint_subject: format!("sbtk.{id}"),
            results_subject: format!("sbtr.{id}"),
            nats_url: nats_url.to_string(),
        }
    }

    /// The names the services use by default (those `config/nats-server.conf` grants), on the
    /// NATS server at `nats_url`.
    pub fn defaults(nats_url: &str) -> Self {
        Self {
            name: "SCOREBOARD_EVENTS".into(),
            subject_prefix: "scoreboard.events".into(),
            changes_subject: "scoreboard.leaderboard.changes".into(),
            checkpoint_subject: "scoreboard.checkpoints".into(),
            results_subject: "scoreboard.results".into(),
            nats_url: nats_url.to_string(),
        }
    }

    /// Every message of the stream, in sequence order.
    pub async fn messages(&self) -> Vec<StreamedEvent> {
        self.messages_in(&self.name).await
    }

    /// Every message of the stream of season results (`<name>_RESULTS`), in sequence order.
    pub async fn results(&self) -> Vec<StreamedEvent> {
        self.messages_in(&format!("{}_RESULTS", self.name)).await
    }

    async fn messages_in(&self, name: &str) -> Vec<StreamedEvent> {
        let client = async_nats::connect(&self.nats_url).await.unwrap();
        let js = jetstream::new(client);
        let mut stream = match js.get_stream(name).await {
            Ok(stream) => stream,
            Err(_) => return Vec::new(),
        };
        let last = stream.info().await.unwrap().state.last_sequence;
        if last == 0 {
            return Vec::new();
        }
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                ack_policy: jetstream::consumer::AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut out = Vec::new();
        let mut messages = consumer.messages().await.unwrap();
        while out.len() < last as usize {
            let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
                .await
                .expect("stream messages arrive")
                .unwrap()
                .unwrap();
            let header = |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.to_string());
            out.push(StreamedEvent {
                sequence: message.info().unwrap().stream_sequence,
                subject: message.subject.to_string(),
                message_id: header("Nats-Msg-Id").unwrap_or_default(),
                position: header("Scoreboard-Position").and_then(|p| p.parse().ok()).unwrap_or_default(),
                payload: message.payload.to_vec(),
            });
        }
        out
    }
}

impl Default for TestStream {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        let (url, name) = (self.nats_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
                let options = async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(2));
                if let Ok(client) = options.connect(&url).await {
                    let js = jetstream::new(client);
                    let _ = js.delete_stream(&name).await;
                    let _ = js.delete_stream(format!("{name}_CHECKPOINTS")).await;
                    let _ = js.delete_stream(format!("{name}_RESULTS")).await;
                }
            });
        })
        .join();
    }
}

/// One message of a stream, as a test inspects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedEvent {
    /// Stream sequence.
    pub sequence: u64,
    /// Its subject.
    pub subject: String,
    /// `Nats-Msg-Id`.
    pub message_id: String,
    /// `Scoreboard-Position`.
    pub position: u64,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// The settings every service of a test shares, as `(ENVIRONMENT_VARIABLE, value)`: the
/// database, NATS, the stream and subjects, the test signing key, and no rate limits.
pub fn settings(database_url: &str, stream: &TestStream) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.to_string()),
        ("NATS_URL", stream.nats_url.clone()),
        ("NATS_STREAM", stream.name.clone()),
        ("NATS_SUBJECT_PREFIX", stream.subject_prefix.clone()),
        ("NATS_CHANGES_SUBJECT", stream.changes_subject.clone()),
        ("NATS_CHECKPOINT_SUBJECT", stream.checkpoint_subject.clone()),
        ("NATS_RESULTS_SUBJECT", stream.results_subject.clone()),
    ]
}

/// [`settings`] plus what command-svc needs: the test signing key, and no rate limits.
pub fn command_settings(database_url: &str, stream: &TestStream) -> Vec<(&'static str, String)> {
    let mut settings = settings(database_url, stream);
    settings.extend([
        ("ACTION_KEYS", action_keys()),
        ("RATE_LIMIT_PER_PLAYER", "off".to_string()),
        ("RATE_LIMIT_PER_ADDRESS", "off".to_string()),
    ]);
    settings
}

/// A service's configuration as its binary would read it from `settings` plus `extra` flags
/// (later flags win).
pub fn config<C: clap::Args>(settings: &[(&'static str, String)], extra: &[&str]) -> C {
    #[derive(clap::Parser)]
    #[command(args_override_self = true)]
    struct Cli<C: clap::Args> {
        #[command(flatten)]
        config: C,
    }
    // Each setting becomes the flag that reads the same environment variable.
    let command = <Cli<C> as clap::CommandFactory>::command();
    let flag = |variable: &str| {
        command
            .get_arguments()
            .find(|arg| arg.get_env() == Some(std::ffi::OsStr::new(variable)))
            .and_then(clap::Arg::get_long)
            .unwrap_or_else(|| panic!("{variable} is not a setting of this service"))
    };
    let mut args = vec!["service".to_string()];
    args.extend(settings.iter().map(|(variable, value)| format!("--{}={value}", flag(variable))));
    args.extend(extra.iter().map(ToString::to_string));
    <Cli<C> as clap::Parser>::try_parse_from(args).expect("test configuration parses").config
}

/// A service running inside the test process on a port of its own.
pub struct InProcess {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    /// Starts `run(listener, shutdown)` on a free port and waits until `/readyz` answers 200.
    pub async fn start<F, Fut>(run: F) -> Self
    where
        F: FnOnce(TcpListener, tokio_util::sync::CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), run).await
    }

    /// Starts `run(listener, shutdown)` on `listener` and waits until `/readyz` answers 200.
    pub async fn start_on<F, Fut>(listener: TcpListener, run: F) -> Self
    where
        F: FnOnce(TcpListener, tokio_util::sync::CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let service = Self::spawn_on(listener, run);
        wait_ready(&service.url).await;
        service
    }

    /// Starts `run(listener, shutdown)` on a free port and waits until it answers `/healthz`
    /// (live), whether it is ready or not.
    pub async fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(TcpListener, tokio_util::sync::CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let service = Self::spawn_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), run);
        let client = reqwest::Client::new();
        eventually(Duration::from_secs(15), || async {
            client.get(format!("{}/healthz", service.url)).send().await.ok().filter(|r| r.status().is_success())
        })
        .await;
        service
    }

    fn spawn_on<F, Fut>(listener: TcpListener, run: F) -> Self
    where
        F: FnOnce(TcpListener, tokio_util::sync::CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(run(listener, stop.clone()));
        Self { url, stop, task }
    }

    /// Graceful shutdown; returns what the service's `run` returned.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.unwrap()
    }
}

/// A service running as its own process.
pub struct Process {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    child: Child,
}

impl Process {
    /// Spawns `binary` with `settings`, listening on a free port through `addr_variable`, and
    /// waits until it is ready.
    pub async fn start(binary: &str, settings: &[(&'static str, String)], addr_variable: &str) -> Self {
        let process = Self::spawn_on(binary, settings, addr_variable, free_port(), Stdio::inherit());
        wait_ready(&process.url).await;
        process
    }

    /// Spawns `binary` with `settings`, listening on `port` through `addr_variable`, its log
    /// going to `log`, without waiting for it (a restart on the port it had, say).
    pub fn spawn_on(
        binary: &str,
        settings: &[(&'static str, String)],
        addr_variable: &str,
        port: u16,
        log: impl Into<Stdio>,
    ) -> Self {
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(binary)
            .envs(settings.iter().map(|(name, value)| (*name, value.as_str())))
            .env(addr_variable, &addr)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { url: format!("http://{addr}"), child }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends `signal` (e.g. `TERM`, `KILL`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns whether it exited successfully.
    pub async fn wait(mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(tokio::time::Instant::now() < deadline, "the process did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident memory of the process, in KiB (Linux).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `<url>/readyz` answers 200 (at most 15 s).
pub async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} did not become ready in 15 s");
}

/// Polls `check` every 50 ms until it returns `Some`, for at most `within`.
pub async fn eventually<T, Fut: Future<Output = Option<T>>>(within: Duration, mut check: impl FnMut() -> Fut) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not reached within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; tests use it at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs `binary` with `args` and only the environment `envs` until it exits (a refusal at
/// start): its exit code, and everything it wrote, errors and log alike.
pub fn run_to_exit(binary: &str, args: &[&str], envs: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = std::process::Command::new(binary)
        .args(args)
        .env_clear()
        .envs(envs.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (output.status.code(), String::from_utf8_lossy(&[output.stderr, output.stdout].concat()).into_owned())
}

/// A private nats-server with JetStream, on its own port and store directory, that a test
/// may kill and start again (same port, same store).
pub struct NatsServer {
    port: u16,
    store: tempfile::TempDir,
    config: Option<(std::path::PathBuf, Vec<(String, String)>)>,
    args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts one and waits until it accepts connections.
    pub async fn start() -> Self {
        let mut server = Self {
            port: free_port(),
            store: tempfile::tempdir().unwrap(),
            config: None,
            args: Vec::new(),
            child: None,
        };
        server.restart().await;
        server
    }

    /// A cluster of `size` JetStream servers named `n1`, `n2`, … on ports of their own, routed
    /// to each other; returns once each accepts clients (the cluster may still be electing).
    pub async fn cluster(size: usize) -> Vec<Self> {
        let cluster_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let routes = cluster_ports.iter().map(|port| format!("nats://127.0.0.1:{port}")).collect::<Vec<_>>().join(",");
        let mut servers = Vec::new();
        for (index, cluster_port) in cluster_ports.iter().enumerate() {
            let args = [
                "--server_name",
                &format!("n{}", index + 1),
                "--cluster_name",
                "sbt",
                "--cluster",
                &format!("nats://127.0.0.1:{cluster_port}"),
                "--routes",
                &routes,
            ];
            let mut server = Self {
                port: free_port(),
                store: tempfile::tempdir().unwrap(),
                config: None,
                args: args.iter().map(ToString::to_string).collect(),
                child: None,
            };
            server.restart().await;
            servers.push(server);
        }
        servers
    }

    /// Starts one with the configuration file `config` (its `$VARIABLES` from `environment`),
    /// on a port of its own and with its `store_dir` moved into the test's own directory.
    pub async fn with_config(config: &std::path::Path, environment: &[(&str, &str)]) -> Self {
        let store = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(config).unwrap();
        let store_line = text.lines().find(|line| line.trim_start().starts_with("store_dir:")).unwrap_or_default();
        let text = text.replace(store_line, &format!("store_dir: {:?}", store.path().join("jetstream")));
        let copy = store.path().join("nats-server.conf");
        std::fs::write(&copy, text).unwrap();
        let environment = environment.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut server =
            Self { port: free_port(), store, config: Some((copy, environment)), args: Vec::new(), child: None };
        server.restart().await;
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and store.
    pub async fn restart(&mut self) {
        self.kill();
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| {
            ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .unwrap_or("nats-server")
                .to_string()
        });
        let mut command = Command::new(binary);
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        match &self.config {
            Some((config, environment)) => command.arg("-c").arg(config).envs(environment.iter().map(|(k, v)| (k, v))),
            None => command.args(["-js", "-sd"]).arg(self.store.path()),
        };
        command.args(&self.args);
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server can be started (see README: scripts/test installs it)");
        self.child = Some(child);
        wait_for_port(self.port).await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub async fn wait_for_port(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on port {port} after 5 s");
}

/// A TCP proxy to `upstream` that a test can cut (every connection dropped, new ones refused)
/// and restore: the dependency behind it becomes unreachable exactly as after a network
/// failure, while the real server keeps running for everyone else. It can also freeze: the
/// connections stay open at both ends but carry nothing more, as when a network goes silent
/// and neither side hears of it.
pub struct Proxy {
    port: u16,
    open: Arc<AtomicBool>,
    frozen: tokio_util::sync::CancellationToken,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let frozen = tokio_util::sync::CancellationToken::new();
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accept = tokio::spawn({
            let (open, frozen, connections) = (open.clone(), frozen.clone(), connections.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        continue;
                    }
                    let frozen = frozen.clone();
                    let forward = tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(upstream).await {
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                // Both sockets stay open, silent, until the proxy is dropped.
                                () = frozen.cancelled() => std::future::pending::<()>().await,
                            }
                        }
                    });
                    connections.lock().unwrap().push(forward.abort_handle());
                }
            }
        })
        .abort_handle();
        Self { port, open, frozen, connections, accept }
    }

    /// Every connection, open or new, stops carrying data, without closing.
    pub fn freeze(&self) {
        self.frozen.cancel();
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// `GET <base><path>`: the status and the JSON body (`null` when there is none).
pub async fn get_json(client: &reqwest::Client, base: &str, path: &str) -> (u16, serde_json::Value) {
    let response = client.get(format!("{base}{path}")).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

/// `(rank, player, score)` of each entry of a leaderboard body.
pub fn ranking(body: &serde_json::Value) -> Vec<(u64, String, u64)> {
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["rank"].as_u64().unwrap(), e["player_id"].as_str().unwrap().to_string(), e["score"].as_u64().unwrap())
        })
        .collect()
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// `event:`
    pub event: String,
    /// `id:`
    pub id: u64,
    /// `data:`, parsed.
    pub data: serde_json::Value,
}

/// A client of `GET /v1/leaderboard/stream` over a real socket.
pub struct SseClient {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseClient {
    /// Opens the stream of `base` with `query`, resuming from `last_event_id`.
    pub async fn open(base: &str, query: &str, last_event_id: Option<u64>) -> Self {
        Self::open_at(base, "/v1/leaderboard/stream", query, last_event_id).await
    }

    /// Opens the stream at `path` of `base` with `query`, resuming from `last_event_id`.
    pub async fn open_at(base: &str, path: &str, query: &str, last_event_id: Option<u64>) -> Self {
        let mut request = reqwest::Client::new().get(format!("{base}{path}{query}"));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self { body: response.bytes_stream().boxed(), buffer: String::new() }
    }

    /// The next event within `within`, skipping heartbeats; `None` if none came.
    pub async fn next_within(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame.lines().find_map(|line| line.strip_prefix(name)).map(|v| v.trim_start().to_string())
                };
                if let (Some(event), Some(id), Some(data)) = (field("event:"), field("id:"), field("data:")) {
                    return Some(SseEvent {
                        event,
                        id: id.parse().unwrap(),
                        data: serde_json::from_str(&data).unwrap(),
                    });
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await.ok()??;
            self.buffer.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }

    /// The next event within 10 s.
    pub async fn next(&mut self) -> SseEvent {
        self.next_within(Duration::from_secs(10)).await.expect("an event within 10 s")
    }

    /// Reads events until one at `position` or later arrives.
    pub async fn until_position(&mut self, position: u64) -> SseEvent {
        loop {
            let event = self.next().await;
            if event.id >= position {
                return event;
            }
        }
    }
}

/// The key id tests sign with.
pub const TEST_KID: &str = "test";
/// The secret tests sign with.
pub const TEST_SECRET: &str = "testkit-secret-key-of-at-least-32-bytes";

/// `ACTION_KEYS` for tests.
pub fn action_keys() -> String {
    format!("{TEST_KID}={TEST_SECRET}")
}

/// The test key set.
pub fn keys() -> KeySet {
    KeySet::parse(&action_keys()).unwrap()
}

/// Claims for `player` completing `action`, issued now, valid five minutes, fresh `jti`.
pub fn claims(player: &str, action: &str) -> ActionClaims {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    ActionClaims {
        jti: Uuid::now_v7(),
        sub: player.parse().unwrap(),
        act: action.parse().unwrap(),
        name: None,
        score: None,
        iat: now,
        exp: now + 300,
    }
}

/// A `ScoreAwarded` event as the command side would have recorded it at `at`: `player` completed
/// `action` for `points`, with the test key, a fresh event and action id and no name.
pub fn award(player: &str, action: &str, points: i64, at: time::OffsetDateTime) -> events::Event {
    events::Event::ScoreAwarded(events::ScoreAwarded {
        event_id: Uuid::now_v7(),
        action_id: Uuid::new_v4(),
        player_id: player.parse().unwrap(),
        display_name: None,
        action: action.parse().unwrap(),
        points: events::Points::new(points).unwrap(),
        token_issued_at: at.unix_timestamp(),
        key_id: TEST_KID.parse().unwrap(),
        recorded_at: at,
    })
}

/// `claims` signed with the test key.
pub fn sign(claims: &ActionClaims) -> String {
    events::mint(&KeyId::parse(TEST_KID).unwrap(), &KeySecret::new(TEST_SECRET.as_bytes()).unwrap(), claims)
}

/// A signed token for `player` completing `action`.
pub fn token(player: &str, action: &str) -> String {
    sign(&claims(player, action))
}

/// Fails unless the file at `path` (relative to the workspace) holds exactly `current`, the
/// text the code generates now; with `SCOREBOARD_UPDATE_DOCS=1` it writes `current` there
/// instead, to regenerate what is checked in.
pub fn assert_checked_in(path: &str, current: &str) {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    if std::env::var_os("SCOREBOARD_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, current).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        checked_in == current,
        "{path} differs from what the code generates; regenerate it with \
         `SCOREBOARD_UPDATE_DOCS=1 cargo test --workspace openapi` and review the change"
    );
}

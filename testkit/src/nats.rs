//! NATS for tests: a JetStream stream of a test's own (deleted afterwards), and private
//! nats-server processes a test can kill and start again.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use futures::StreamExt as _;
use uuid::Uuid;

use crate::ports::{free_port, wait_for_port};

/// The shared NATS server: `TEST_NATS_URL`, else `nats://127.0.0.1:4222`.
pub fn nats_url() -> String {
    std::env::var("TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
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

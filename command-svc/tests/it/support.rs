//! Starting command-svc for a test: in process (shares the test's runtime) or as a real
//! process (for signals and for several replicas).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::Parser;
use command_svc::Config;
use serde_json::Value;
use testkit::{TestDb, TestStream};
use tokio_util::sync::CancellationToken;

/// The environment a command-svc of a test runs with.
pub fn env(database_url: &str, stream: &TestStream, addr: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", database_url.to_string()),
        ("NATS_URL", stream.nats_url.clone()),
        ("NATS_STREAM", stream.name.clone()),
        ("NATS_SUBJECT_PREFIX", stream.subject_prefix.clone()),
        ("ACTION_KEYS", testkit::action_keys()),
        ("COMMAND_ADDR", addr.to_string()),
        ("RATE_LIMIT_PER_PLAYER", "off".into()),
        ("RATE_LIMIT_PER_ADDRESS", "off".into()),
    ]
}

/// A `Config` as `command-svc serve` would read it from `env` plus `extra` flags.
pub fn config(database_url: &str, stream: &TestStream, extra: &[&str]) -> Config {
    #[derive(Parser)]
    #[command(args_override_self = true)]
    struct Args {
        #[command(flatten)]
        config: Config,
    }
    let mut args = vec!["command-svc".to_string()];
    for (name, value) in env(database_url, stream, "127.0.0.1:0".parse().unwrap()) {
        args.push(format!("--{}={value}", name.to_lowercase().replace('_', "-").replace("command-addr", "addr")));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    Args::try_parse_from(args).expect("test configuration parses").config
}

/// A command-svc running inside the test process.
pub struct InProcess {
    pub url: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    pub async fn start(config: Config) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let task = tokio::spawn(command_svc::run(config, listener, stop.clone()));
        wait_ready(&url).await;
        Self { url, stop, task }
    }

    /// Graceful shutdown; returns what `run` returned.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.unwrap()
    }
}

/// A command-svc running as its own process (the binary cargo built for these tests).
pub struct Process {
    pub url: String,
    child: Child,
}

impl Process {
    pub async fn start(database_url: &str, stream: &TestStream) -> Self {
        let addr: SocketAddr = format!("127.0.0.1:{}", testkit::free_port()).parse().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_command-svc"))
            .envs(env(database_url, stream, addr))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://{addr}");
        wait_ready(&url).await;
        Self { url, child }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns whether it exited successfully.
    pub async fn wait(mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(tokio::time::Instant::now() < deadline, "command-svc did not exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn wait_ready(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await
            && response.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} did not become ready in 10 s");
}

/// Posts `token` and returns the status, the `Retry-After` header and the JSON body.
pub async fn submit(client: &reqwest::Client, url: &str, token: &str) -> (u16, Option<String>, Value) {
    post_body(client, url, serde_json::json!({ "token": token }).to_string()).await
}

pub async fn post_body(client: &reqwest::Client, url: &str, body: String) -> (u16, Option<String>, Value) {
    let response = client
        .post(format!("{url}/v1/actions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body)
}

/// Every event of the log: (position, action id, event id), in order.
pub async fn log_rows(db: &TestDb) -> Vec<(i64, uuid::Uuid, uuid::Uuid)> {
    sqlx::query_as("SELECT position, action_id, event_id FROM events ORDER BY position")
        .fetch_all(&db.pool().await)
        .await
        .unwrap()
}

/// Asserts positions are exactly 1..=n.
pub fn assert_dense(rows: &[(i64, uuid::Uuid, uuid::Uuid)]) {
    for (expected, (position, _, _)) in (1..).zip(rows) {
        assert_eq!(*position, expected, "positions must be dense and increasing");
    }
}

/// Waits until the stream holds `count` messages, then returns them.
pub async fn stream_with(stream: &TestStream, count: usize, within: Duration) -> Vec<testkit::StreamedEvent> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let messages = stream.messages().await;
        if messages.len() >= count || tokio::time::Instant::now() > deadline {
            return messages;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts the stream is an exact copy of the log: same length, sequence = position, same
/// event ids in the same order.
pub async fn assert_stream_copies_log(db: &TestDb, stream: &TestStream) {
    let rows = log_rows(db).await;
    let messages = stream_with(stream, rows.len(), Duration::from_secs(20)).await;
    assert_eq!(messages.len(), rows.len(), "every event in the stream exactly once");
    for ((position, _, event_id), message) in rows.iter().zip(&messages) {
        assert_eq!(message.sequence, *position as u64);
        assert_eq!(message.position, *position as u64);
        assert_eq!(message.message_id, event_id.to_string());
    }
}

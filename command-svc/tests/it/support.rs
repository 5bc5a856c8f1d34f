//! Starting command-svc for a test, and reading what it wrote.

use std::time::Duration;

use command_svc::Config;
use serde_json::Value;
use testkit::{InProcess, Process, TestDb, TestStream};

/// command-svc's configuration for a test, plus `extra` flags.
pub fn config(database_url: &str, stream: &TestStream, extra: &[&str]) -> Config {
    testkit::config(&testkit::command_settings(database_url, stream), extra)
}

/// command-svc inside the test process.
pub async fn start(config: Config) -> InProcess {
    InProcess::start(|listener, stop| command_svc::run(config, listener, stop)).await
}

/// command-svc as its own process (the binary cargo built for these tests).
pub async fn start_process(database_url: &str, stream: &TestStream) -> Process {
    Process::start(env!("CARGO_BIN_EXE_command-svc"), &testkit::command_settings(database_url, stream), "COMMAND_ADDR")
        .await
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

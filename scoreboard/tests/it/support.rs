//! Running `scoreboard` for a test.

use std::path::Path;

use serde_json::Value;
use testkit::{InProcess, Process};
pub use testkit::{get_json as get, ranking};

/// The embedded default on `data`, with the test key and no rate limits.
pub fn settings(data: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("SCOREBOARD_DATA", data.display().to_string()),
        ("ACTION_KEYS", testkit::action_keys()),
        ("RATE_LIMIT_PER_PLAYER", "off".into()),
        ("RATE_LIMIT_PER_ADDRESS", "off".into()),
    ]
}

pub async fn start(settings: &[(&'static str, String)], extra: &[&str]) -> InProcess {
    let config: scoreboard::Config = testkit::config(settings, extra);
    InProcess::start(|listener, stop| scoreboard::run(config, listener, stop)).await
}

pub async fn start_process(settings: &[(&'static str, String)]) -> Process {
    Process::start(env!("CARGO_BIN_EXE_scoreboard"), settings, "SCOREBOARD_ADDR").await
}

/// Posts a token to `/v1/actions`: status and body.
pub async fn submit(client: &reqwest::Client, base: &str, token: &str) -> (u16, Value) {
    post(client, base, "/v1/actions", serde_json::json!({ "token": token })).await
}

pub async fn post(client: &reqwest::Client, base: &str, path: &str, body: Value) -> (u16, Value) {
    let response = client.post(format!("{base}{path}")).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Every event of the log through the audit endpoint: `(position, action_id, player, points)`.
pub async fn audit_log(client: &reqwest::Client, base: &str) -> Vec<(u64, String, String, u64)> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = get(client, base, &format!("/v1/events?after={after}&limit=1000")).await;
        assert_eq!(status, 200);
        let page_events = page["events"].as_array().unwrap();
        if page_events.is_empty() {
            return events;
        }
        for event in page_events {
            events.push((
                event["position"].as_u64().unwrap(),
                event["data"]["action_id"].as_str().unwrap().to_string(),
                event["data"]["player_id"].as_str().unwrap().to_string(),
                event["data"]["points"].as_u64().unwrap(),
            ));
        }
        after = page["next_after"].as_u64().unwrap();
    }
}

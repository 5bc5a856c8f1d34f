//! Reading the services over HTTP: JSON answers and live streams (Server-Sent Events).

use std::time::Duration;

use futures::StreamExt as _;

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

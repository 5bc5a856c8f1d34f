//! The whole system in one test process, and clients for its live streams.

use serde_json::Value;
use testkit::{InProcess, TestDb, TestStream};
pub use testkit::{get_json as get, ranking};

/// command-svc, projector and query-svc on a fresh database and stream.
pub struct Stack {
    pub db: TestDb,
    pub stream: TestStream,
    pub command: InProcess,
    pub projector: Option<InProcess>,
    pub query: InProcess,
    pub client: reqwest::Client,
}

impl Stack {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// The stack, with `query_extra` flags for query-svc.
    pub async fn start_with(query_extra: &[&str]) -> Self {
        let db = TestDb::new().await;
        let stream = TestStream::new();
        let command: command_svc::Config = testkit::config(&testkit::command_settings(&db.url, &stream), &[]);
        let command = InProcess::start(|listener, stop| command_svc::run(command, listener, stop)).await;
        let projector = Some(start_projector(&db, &stream, &[]).await);
        let query = start_query(&db, &stream, query_extra).await;
        Self { db, stream, command, projector, query, client: reqwest::Client::new() }
    }

    /// Another query-svc replica on the same database and subjects.
    pub async fn replica(&self, extra: &[&str]) -> InProcess {
        start_query(&self.db, &self.stream, extra).await
    }

    /// Submits an action; returns command-svc's `201` body.
    pub async fn submit(&self, player: &str, action: &str) -> Value {
        let mut claims = testkit::claims(player, action);
        claims.name = Some(format!("Player {player}").parse().unwrap());
        let response = self
            .client
            .post(format!("{}/v1/actions", self.command.url))
            .json(&serde_json::json!({ "token": testkit::sign(&claims) }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// Submits an action and waits until query-svc shows it; returns its position.
    pub async fn submit_seen(&self, player: &str, action: &str) -> u64 {
        let position = self.submit(player, action).await["position"].as_u64().unwrap();
        let (status, _) = self.get(&format!("/v1/leaderboard?min_position={position}")).await;
        assert_eq!(status, 200);
        position
    }

    /// `GET` on query-svc: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        get(&self.client, &self.query.url, path).await
    }
}

pub async fn start_projector(db: &TestDb, stream: &TestStream, extra: &[&str]) -> InProcess {
    let config: projector::Config = testkit::config(&testkit::settings(&db.url, stream), extra);
    InProcess::start(|listener, stop| projector::run(config, listener, stop)).await
}

pub async fn start_query(db: &TestDb, stream: &TestStream, extra: &[&str]) -> InProcess {
    let config: query_svc::Config = testkit::config(&testkit::settings(&db.url, stream), extra);
    InProcess::start(|listener, stop| query_svc::run(config, listener, stop)).await
}

//! A write path and a projector for a test.

use std::time::Duration;

use async_nats::jetstream;
use store::{EventStore as _, LeaderboardStore as _, PgEventLog, PgLeaderboard};
use testkit::{InProcess, Process, TestDb, TestStream};

/// The shipped example boards: daily, weekly, and `matches` (one action, monthly).
const BOARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/boards.example.toml");

/// A command-svc (in process) on a fresh database and stream.
pub struct WritePath {
    pub db: TestDb,
    pub stream: TestStream,
    pub command: InProcess,
    pub client: reqwest::Client,
}

impl WritePath {
    pub async fn start() -> Self {
        let db = TestDb::new().await;
        let stream = TestStream::new();
        let config: command_svc::Config = testkit::config(&testkit::command_settings(&db.url, &stream), &[]);
        let command = InProcess::start(|listener, stop| command_svc::run(config, listener, stop)).await;
        Self { db, stream, command, client: reqwest::Client::new() }
    }

    /// Submits an action; returns the HTTP status.
    pub async fn submit(&self, player: &str, action: &str) -> u16 {
        let response = self
            .client
            .post(format!("{}/v1/actions", self.command.url))
            .json(&serde_json::json!({ "token": testkit::token(player, action) }))
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    }

    /// The projector's settings: folding the example boards besides `global`.
    fn projector_settings(&self) -> Vec<(&'static str, String)> {
        let mut settings = testkit::settings(&self.db.url, &self.stream);
        settings.push(("BOARDS", BOARDS.into()));
        settings
    }

    pub fn projector_config(&self, extra: &[&str]) -> projector::Config {
        testkit::config(&self.projector_settings(), extra)
    }

    pub async fn projector(&self, extra: &[&str]) -> InProcess {
        let config = self.projector_config(extra);
        InProcess::start(|listener, stop| projector::run(config, listener, stop)).await
    }

    pub async fn projector_process(&self) -> Process {
        Process::start(env!("CARGO_BIN_EXE_projector"), &self.projector_settings(), "PROJECTOR_ADDR").await
    }

    pub async fn log_head(&self) -> u64 {
        PgEventLog::new(self.db.pool().await).head().await.unwrap()
    }

    pub async fn checkpoint(&self) -> u64 {
        PgLeaderboard::new(self.db.pool().await).checkpoint().await.unwrap()
    }

    /// Waits until the read model folded the whole log.
    pub async fn wait_projected(&self) {
        let head = self.log_head().await;
        let pool = self.db.pool().await;
        testkit::eventually(Duration::from_secs(30), || {
            let read_model = PgLeaderboard::new(pool.clone());
            async move { (read_model.checkpoint().await.unwrap() >= head).then_some(()) }
        })
        .await;
    }

    /// Asserts the read model equals the fold of the log, player by player, on `global` and on
    /// every season of every other board.
    pub async fn assert_read_model_is_the_fold_of_the_log(&self) {
        let pool = self.db.pool().await;
        let (log, read_model) = (PgEventLog::new(pool.clone()), PgLeaderboard::new(pool));
        let report = projector::verify::verify_read_model(&log, &read_model).await.unwrap();
        assert_eq!(report.position, self.log_head().await, "the read model folded the whole log");
        assert!(report.differences.is_empty(), "read model differs from the log: {:#?}", report.differences);
        assert!(report.players > 0);
        let boards = events::boards::BoardDefs::from_file(std::path::Path::new(BOARDS)).unwrap();
        // A projector builds the boards beside its folding when it starts.
        let report = testkit::eventually(Duration::from_secs(10), || async {
            let report = projector::verify::verify_boards(&log, &read_model, &boards).await.unwrap();
            report.not_ready.is_empty().then_some(report)
        })
        .await;
        assert_eq!(report.position, self.log_head().await, "the boards folded the whole log");
        assert!(report.differences.is_empty(), "boards differ from the log: {:#?}", report.differences);
        assert!(report.standings > 0);
        let usage = projector::verify::verify_usage(&log, &read_model, &boards).await.unwrap();
        assert_eq!(usage.position, self.log_head().await);
        assert!(usage.differences.is_empty(), "usage differs from the log: {:#?}", usage.differences);
        assert!(usage.buckets >= 2 * 4, "hours and days of global and three boards: {}", usage.buckets);
    }

    pub async fn jetstream(&self) -> jetstream::Context {
        jetstream::new(async_nats::connect(&self.stream.nats_url).await.unwrap())
    }

    /// The projector's durable consumer, as JetStream sees it.
    pub async fn consumer_info(&self) -> jetstream::consumer::Info {
        let stream = self.jetstream().await.get_stream(&self.stream.name).await.unwrap();
        let mut consumer: jetstream::consumer::PullConsumer =
            stream.get_consumer("scoreboard-projector").await.unwrap();
        consumer.info().await.unwrap().clone()
    }
}

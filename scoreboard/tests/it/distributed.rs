//! With DATABASE_URL and NATS_URL, the same binary runs on PostgreSQL and JetStream.

use testkit::{TestDb, TestStream, token};

use crate::support::{get, ranking, start, submit};

#[tokio::test]
async fn with_database_url_and_nats_url_it_runs_on_postgres_and_jetstream() {
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let mut settings = testkit::command_settings(&db.url, &stream);
    settings.push(("SCOREBOARD_DATA", "/nonexistent/never-used".into()));
    let scoreboard = start(&settings, &[]).await;
    let client = reqwest::Client::new();

    submit(&client, &scoreboard.url, &token("alice", "win_match")).await;
    let (status, last) = submit(&client, &scoreboard.url, &token("bob", "find_secret")).await;
    assert_eq!(status, 201);
    let (_, board) = get(&client, &scoreboard.url, "/v1/leaderboard?min_position=2").await;
    assert_eq!(ranking(&board), [(1, "bob".into(), 250), (2, "alice".into(), 100)]);

    let events: Vec<i64> =
        sqlx::query_scalar("SELECT position FROM events ORDER BY position").fetch_all(&db.pool().await).await.unwrap();
    assert_eq!(events, [1, 2], "the log is in PostgreSQL");
    let messages = testkit::eventually(std::time::Duration::from_secs(10), || async {
        let messages = stream.messages().await;
        (messages.len() == 2).then_some(messages)
    })
    .await;
    assert_eq!(messages[1].message_id, last["event_id"].as_str().unwrap(), "and copied to JetStream");
    let (_, ready) = get(&client, &scoreboard.url, "/readyz").await;
    assert_eq!((ready["checks"]["postgres"].as_str(), ready["checks"]["nats"].as_str()), (Some("ok"), Some("ok")));
    scoreboard.stop().await.unwrap();
}

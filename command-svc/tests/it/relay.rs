//! The JetStream copy of the log: exact, ordered, complete — across NATS outages and replicas.

use std::time::Duration;

use futures::future::join_all;
use testkit::{NatsServer, TestDb, TestStream, token};

use crate::support::{assert_dense, assert_stream_copies_log, config, log_rows, start, start_process, submit};

#[tokio::test]
async fn every_event_is_published_once_in_log_order() {
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let svc = start(config(&db.url, &stream, &[])).await;
    let client = reqwest::Client::new();
    join_all((0..200).map(|i| {
        let (client, url) = (client.clone(), svc.url.clone());
        async move { submit(&client, &url, &token(&format!("p{}", i % 7), "complete_task")).await }
    }))
    .await;
    assert_stream_copies_log(&db, &stream).await;
    svc.stop().await.unwrap();
}

#[tokio::test]
async fn actions_are_accepted_while_nats_is_down_and_published_when_it_returns() {
    let mut nats = NatsServer::start().await;
    let db = TestDb::new().await;
    let stream = TestStream::on(&nats.url());
    let svc = start(config(&db.url, &stream, &[])).await;
    let client = reqwest::Client::new();
    for player in ["a", "b", "c"] {
        assert_eq!(submit(&client, &svc.url, &token(player, "complete_task")).await.0, 201);
    }
    crate::support::stream_with(&stream, 3, Duration::from_secs(10)).await;

    nats.kill();
    for i in 0..30 {
        let (status, _, body) = submit(&client, &svc.url, &token(&format!("p{i}"), "win_match")).await;
        assert_eq!(status, 201, "NATS being down must not block an action: {body}");
    }
    nats.restart().await;

    assert_stream_copies_log(&db, &stream).await;
    assert_eq!(log_rows(&db).await.len(), 33);
    svc.stop().await.unwrap();
}

#[tokio::test]
async fn a_service_started_while_nats_is_down_accepts_and_later_publishes() {
    let mut nats = NatsServer::start().await;
    let db = TestDb::new().await;
    let stream = TestStream::on(&nats.url());
    nats.kill();
    let svc = start(config(&db.url, &stream, &[])).await;
    let client = reqwest::Client::new();
    for i in 0..5 {
        assert_eq!(submit(&client, &svc.url, &token(&format!("p{i}"), "complete_task")).await.0, 201);
    }
    nats.restart().await;
    assert_stream_copies_log(&db, &stream).await;
    svc.stop().await.unwrap();
}

#[tokio::test]
async fn two_processes_share_one_log_and_one_stream() {
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let first = start_process(&db.url, &stream).await;
    let second = start_process(&db.url, &stream).await;
    let client = reqwest::Client::new();
    let tokens: Vec<String> = (0..300).map(|i| token(&format!("p{}", i % 11), "complete_task")).collect();

    // Every token goes to both replicas at once.
    let answers =
        join_all(tokens.iter().flat_map(|t| [submit(&client, &first.url, t), submit(&client, &second.url, t)])).await;

    assert_eq!(answers.iter().filter(|(s, _, _)| *s == 201).count(), tokens.len());
    assert_eq!(answers.iter().filter(|(s, _, _)| *s == 200).count(), tokens.len());
    let rows = log_rows(&db).await;
    assert_eq!(rows.len(), tokens.len());
    assert_dense(&rows);
    assert_stream_copies_log(&db, &stream).await;
}

#[tokio::test]
async fn the_relay_resumes_after_a_restart_without_republishing() {
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let client = reqwest::Client::new();
    let svc = start(config(&db.url, &stream, &[])).await;
    for i in 0..10 {
        submit(&client, &svc.url, &token(&format!("p{i}"), "complete_task")).await;
    }
    crate::support::stream_with(&stream, 10, Duration::from_secs(10)).await;
    svc.stop().await.unwrap();

    let svc = start(config(&db.url, &stream, &[])).await;
    for i in 0..10 {
        submit(&client, &svc.url, &token(&format!("q{i}"), "complete_task")).await;
    }
    assert_stream_copies_log(&db, &stream).await;
    svc.stop().await.unwrap();
}

#[tokio::test]
async fn a_log_behind_its_stream_stops_the_relay_fails_readiness_and_still_accepts_actions() {
    let (primary, stream) = (TestDb::new().await, TestStream::new());
    let svc = start(config(&primary.url, &stream, &[])).await;
    let client = reqwest::Client::new();
    for player in ["a", "b", "c", "d", "e"] {
        assert_eq!(submit(&client, &svc.url, &token(player, "complete_task")).await.0, 201);
    }
    crate::support::stream_with(&stream, 5, Duration::from_secs(10)).await;
    svc.stop().await.unwrap();

    // A failover to a standby that had only the first three events: the stream holds two
    // acknowledged events the new primary's log no longer has.
    let standby = TestDb::new().await;
    let standby_pool = standby.pool().await;
    store::postgres::MIGRATOR.run(&standby_pool).await.unwrap();
    let first_three: serde_json::Value =
        sqlx::query_scalar("SELECT json_agg(e ORDER BY position) FROM events e WHERE position <= 3")
            .fetch_one(&primary.pool().await)
            .await
            .unwrap();
    sqlx::query("INSERT INTO events SELECT * FROM jsonb_populate_recordset(NULL::events, $1)")
        .bind(first_three)
        .execute(&standby_pool)
        .await
        .unwrap();
    sqlx::query("UPDATE event_log_head SET position = 3").execute(&standby_pool).await.unwrap();
    let config = config(&standby.url, &stream, &[]);
    let svc = testkit::InProcess::spawn(|listener, stop| command_svc::run(config, listener, stop)).await;

    let detail = testkit::eventually(Duration::from_secs(15), || async {
        let (status, body) = testkit::get_json(&client, &svc.url, "/readyz").await;
        (status == 503).then(|| body["detail"].as_str().unwrap_or_default().to_string())
    })
    .await;
    assert!(detail.contains("relay") && detail.contains("behind the stream"), "{detail}");
    let metrics = client.get(format!("{}/metrics", svc.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|line| line == "relay_diverged 1"), "{metrics}");

    // Actions are still accepted and kept in the log; the stream is left as it was.
    let (status, _, body) = submit(&client, &svc.url, &token("f", "complete_task")).await;
    assert_eq!((status, body["position"].as_u64()), (201, Some(4)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let messages = stream.messages().await;
    assert_eq!(messages.len(), 5, "nothing published into a stream of another history");
    assert_eq!(log_rows(&standby).await.len(), 4);
    svc.stop().await.unwrap();
}

/// Signed checkpoints are kept in the database and published on their own JetStream stream,
/// once per tree size, as the note signed.
#[tokio::test]
async fn checkpoints_are_published_on_their_own_stream() {
    use futures::StreamExt as _;
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let svc = start(config(&db.url, &stream, &["--checkpoint-interval=100ms"])).await;
    let client = reqwest::Client::new();
    for player in ["alice", "bob", "carol"] {
        assert_eq!(submit(&client, &svc.url, &testkit::token(player, "complete_task")).await.0, 201);
    }
    let verifier: String =
        sqlx::query_scalar("SELECT verifier FROM audit_signer").fetch_one(&db.pool().await).await.unwrap();
    let verifier = tlog::note::NoteVerifier::parse(&verifier).unwrap();
    let js = async_nats::jetstream::new(async_nats::connect(&stream.nats_url).await.unwrap());
    let checkpoints = format!("{}_CHECKPOINTS", stream.name);
    let sizes = testkit::eventually(std::time::Duration::from_secs(10), || async {
        let stream = js.get_stream(&checkpoints).await.ok()?;
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
                ..Default::default()
            })
            .await
            .ok()?;
        let mut messages =
            consumer.fetch().max_messages(100).expires(std::time::Duration::from_millis(300)).messages().await.ok()?;
        let mut sizes = Vec::new();
        while let Some(Ok(message)) = messages.next().await {
            let note = std::str::from_utf8(&message.payload).unwrap();
            let (_, size, _) = tlog::note::parse_checkpoint(verifier.open(note).unwrap()).unwrap();
            assert_eq!(message.subject.as_str(), format!("{}.{size}", stream_subject(&stream)));
            sizes.push(size);
        }
        (sizes.last() == Some(&3)).then_some(sizes)
    })
    .await;
    assert!(sizes.windows(2).all(|w| w[0] < w[1]), "each tree once, in order: {sizes:?}");
    svc.stop().await.unwrap();
}

fn stream_subject(stream: &async_nats::jetstream::stream::Stream) -> String {
    stream.cached_info().config.subjects[0].trim_end_matches(".>").to_string()
}

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

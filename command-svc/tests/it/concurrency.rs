//! Concurrent submissions: exactly once per action id, dense positions.

use std::collections::HashSet;

use futures::future::join_all;
use testkit::{TestDb, TestStream, token};

use crate::support::{assert_dense, config, log_rows, start, submit};

#[tokio::test]
async fn duplicate_storm_is_recorded_once() {
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let svc = start(config(&db.url, &stream, &[])).await;
    let client = reqwest::Client::new();
    let token = token("alice", "complete_task");

    let answers = join_all((0..24).map(|_| submit(&client, &svc.url, &token))).await;

    let created: Vec<_> = answers.iter().filter(|(status, _, _)| *status == 201).collect();
    let retried: Vec<_> = answers.iter().filter(|(status, _, _)| *status == 200).collect();
    assert_eq!((created.len(), retried.len()), (1, 23), "{answers:?}");
    assert!(retried.iter().all(|(_, _, body)| *body == created[0].2), "every retry answers with the original");
    let rows = log_rows(&db).await;
    assert_eq!(rows.len(), 1);
    assert_dense(&rows);
}

#[tokio::test]
async fn many_players_submitting_concurrently_get_one_event_each_in_dense_order() {
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let svc = start(config(&db.url, &stream, &[])).await;
    let client = reqwest::Client::new();
    // 40 players × 15 actions, each action submitted twice, all at once.
    let tokens: Vec<String> =
        (0..40).flat_map(|p| (0..15).map(move |_| token(&format!("player-{p}"), "complete_task"))).collect();
    let submissions = tokens.iter().chain(tokens.iter()).map(|t| submit(&client, &svc.url, t));

    let answers = join_all(submissions).await;

    assert!(answers.iter().all(|(status, _, _)| *status == 201 || *status == 200), "only 201 and 200");
    assert_eq!(answers.iter().filter(|(s, _, _)| *s == 201).count(), tokens.len());
    let rows = log_rows(&db).await;
    assert_eq!(rows.len(), tokens.len(), "one event per accepted action");
    assert_dense(&rows);
    let action_ids: HashSet<_> = rows.iter().map(|(_, action_id, _)| *action_id).collect();
    assert_eq!(action_ids.len(), tokens.len(), "no action twice");
    let positions: HashSet<u64> = answers.iter().map(|(_, _, body)| body["position"].as_u64().unwrap()).collect();
    assert_eq!(positions.len(), tokens.len(), "each answer names its own event's position");
}

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

/// A ban and a storm of actions for the same player, on PostgreSQL with two processes' worth of
/// concurrency: the log orders them once. Every award before the ban's position was answered
/// 201, every one after it 403, and none after it is in the log.
#[tokio::test]
async fn a_ban_and_concurrent_actions_for_the_same_player_never_both_win() {
    const OPERATOR: &str = "operator-secret-of-at-least-32-bytes!";
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let admin_tokens = format!("--admin-tokens=ops={OPERATOR}");
    let svc = start(config(&db.url, &stream, &[&admin_tokens, "--rate-limit-per-player=off"])).await;
    let client = reqwest::Client::new();

    // Eight clients submit actions for mallory without pause until they are refused; the ban
    // is sent once twenty have been accepted, so it lands while actions are in flight.
    let accepted_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers = join_all((0..8).map(|_| {
        let (client, url, accepted_so_far) = (client.clone(), svc.url.clone(), accepted_so_far.clone());
        async move {
            let mut accepted = Vec::new();
            for _ in 0..5_000 {
                let (status, _, body) = submit(&client, &url, &token("mallory", "complete_task")).await;
                match status {
                    201 => {
                        accepted.push(body["position"].as_u64().unwrap());
                        accepted_so_far.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    403 => {
                        assert_eq!(body["code"], "player_banned");
                        return (accepted, true);
                    }
                    other => panic!("unexpected {other}: {body}"),
                }
            }
            (accepted, false)
        }
    }));
    let ban = async {
        while accepted_so_far.load(std::sync::atomic::Ordering::SeqCst) < 20 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let response = client
            .post(format!("{}/v1/admin/players/mallory/ban", svc.url))
            .bearer_auth(OPERATOR)
            .json(&serde_json::json!({"reason": "bot"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json::<serde_json::Value>().await.unwrap()["position"].as_u64().unwrap()
    };
    let (answers, banned_at) = tokio::join!(workers, ban);

    assert!(answers.iter().all(|(_, refused)| *refused), "every client was refused once the ban held");
    let accepted: Vec<u64> = answers.into_iter().flat_map(|(accepted, _)| accepted).collect();
    assert!(accepted.len() >= 20);
    assert!(accepted.iter().all(|&position| position < banned_at), "an award after the ban was accepted");
    let log: Vec<(i64, String)> = sqlx::query_as("SELECT position, event_type FROM events ORDER BY position")
        .fetch_all(&db.pool().await)
        .await
        .unwrap();
    let positions: Vec<u64> = log.iter().map(|(position, _)| *position as u64).collect();
    assert_eq!(positions, (1..=accepted.len() as u64 + 1).collect::<Vec<_>>(), "the accepted awards and the ban");
    assert_eq!(log.iter().filter(|(_, kind)| kind == "PlayerBanned").count(), 1);
    assert!(log.iter().skip_while(|(_, kind)| kind != "PlayerBanned").skip(1).all(|(_, kind)| kind != "ScoreAwarded"));
}

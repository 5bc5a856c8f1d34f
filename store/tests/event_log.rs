//! The PostgreSQL event log: dense positions, exactly once per action id, append-only.
#![allow(clippy::unwrap_used, missing_docs)]

use events::{Event, Points, RecordedEvent, ScoreAwarded};
use futures::future::join_all;
use store::{AppendOutcome, NewEvent, PgEventLog};
use testkit::TestDb;
use uuid::Uuid;

fn awarded(player: &str, action_id: Uuid, points: i64) -> NewEvent {
    NewEvent {
        event: Event::ScoreAwarded(ScoreAwarded {
            event_id: Uuid::now_v7(),
            action_id,
            player_id: player.parse().unwrap(),
            display_name: None,
            action: "complete_task".parse().unwrap(),
            points: Points::new(points).unwrap(),
            token_issued_at: 1_767_225_600,
            key_id: "k1".parse().unwrap(),
            recorded_at: time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
        }),
        claims_digest: Some([points as u8; 32]),
    }
}

async fn log() -> (TestDb, PgEventLog) {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    store::postgres::MIGRATOR.run(&pool).await.unwrap();
    (db, PgEventLog::new(pool))
}

fn appended_position(outcome: &AppendOutcome) -> u64 {
    match outcome {
        AppendOutcome::Appended(RecordedEvent { position, .. }) => *position,
        other => panic!("expected Appended, got {other:?}"),
    }
}

#[tokio::test]
async fn a_batch_gets_the_next_dense_positions() {
    let (_db, log) = log().await;
    let first = log.append(&[awarded("a", Uuid::new_v4(), 1), awarded("b", Uuid::new_v4(), 2)]).await.unwrap();
    let second = log.append(&[awarded("c", Uuid::new_v4(), 3)]).await.unwrap();
    let positions: Vec<u64> = first.iter().chain(&second).map(appended_position).collect();
    assert_eq!(positions, [1, 2, 3]);
    assert_eq!(log.head().await.unwrap(), 3);
}

#[tokio::test]
async fn a_repeated_action_id_in_one_batch_is_appended_once() {
    let (_db, log) = log().await;
    let action_id = Uuid::new_v4();
    let retry = awarded("a", action_id, 5);
    let conflicting = awarded("a", action_id, 7);
    let outcomes = log.append(&[retry.clone(), awarded("b", Uuid::new_v4(), 1), retry, conflicting]).await.unwrap();
    assert_eq!(appended_position(&outcomes[0]), 1);
    assert_eq!(appended_position(&outcomes[1]), 2);
    assert!(
        matches!(&outcomes[2], AppendOutcome::AlreadyRecorded { original, same_claims: true } if original.position == 1)
    );
    assert!(
        matches!(&outcomes[3], AppendOutcome::AlreadyRecorded { original, same_claims: false } if original.position == 1)
    );
    assert_eq!(log.head().await.unwrap(), 2);
}

#[tokio::test]
async fn an_action_id_already_in_the_log_keeps_the_rest_of_the_batch_dense() {
    let (_db, log) = log().await;
    let recorded = Uuid::new_v4();
    log.append(&[awarded("a", recorded, 5)]).await.unwrap();
    let outcomes = log
        .append(&[awarded("b", Uuid::new_v4(), 1), awarded("a", recorded, 5), awarded("c", Uuid::new_v4(), 1)])
        .await
        .unwrap();
    assert_eq!(appended_position(&outcomes[0]), 2);
    match &outcomes[1] {
        AppendOutcome::AlreadyRecorded { original, same_claims } => {
            assert_eq!(original.position, 1);
            assert!(same_claims);
            assert_eq!(original.event.action_id(), Some(recorded));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(appended_position(&outcomes[2]), 3, "no gap where the duplicate was");
    let positions: Vec<u64> = log.read_after(0, 100).await.unwrap().iter().map(|e| e.position).collect();
    assert_eq!(positions, [1, 2, 3]);
}

#[tokio::test]
async fn concurrent_appenders_leave_no_gaps_and_no_duplicates() {
    let (_db, log) = log().await;
    let shared: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    // 8 appenders, each appending the same 50 action ids plus 50 of its own, in batches of 10.
    let appenders = (0..8).map(|_| {
        let (log, shared) = (log.clone(), shared.clone());
        async move {
            let mut events: Vec<NewEvent> = shared.iter().map(|id| awarded("s", *id, 1)).collect();
            events.extend((0..50).map(|_| awarded("o", Uuid::new_v4(), 1)));
            for batch in events.chunks(10) {
                log.append(batch).await.unwrap();
            }
        }
    });
    join_all(appenders).await;
    let events = log.read_after(0, 10_000).await.unwrap();
    assert_eq!(events.len(), 50 + 8 * 50);
    for (expected, event) in (1..).zip(&events) {
        assert_eq!(event.position, expected);
    }
    assert_eq!(log.head().await.unwrap(), events.len() as u64);
}

#[tokio::test]
async fn events_read_back_exactly_as_written() {
    let (_db, log) = log().await;
    let new = awarded("alice", Uuid::new_v4(), 9);
    log.append(std::slice::from_ref(&new)).await.unwrap();
    log.append(&[awarded("bob", Uuid::new_v4(), 1)]).await.unwrap();
    let stored = log.read_after(0, 10).await.unwrap();
    assert_eq!(stored[0].payload, new.event.encode(), "payload bytes are kept exactly");
    assert_eq!(stored[0].decode().unwrap().event, new.event);
    let alice = log.read_player("alice", 0, 10).await.unwrap();
    assert_eq!(alice.len(), 1);
    assert_eq!(log.read_after(1, 10).await.unwrap()[0].position, 2);
    assert!(log.read_after(2, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_log_refuses_updates_deletes_and_truncation() {
    let (db, log) = log().await;
    log.append(&[awarded("a", Uuid::new_v4(), 1)]).await.unwrap();
    let pool = db.pool().await;
    for statement in ["UPDATE events SET player_id = 'mallory'", "DELETE FROM events", "TRUNCATE events"] {
        let error = sqlx::query(statement).execute(&pool).await.unwrap_err();
        assert!(error.to_string().contains("append-only"), "{statement}: {error}");
    }
    assert_eq!(log.read_after(0, 10).await.unwrap().len(), 1);
}

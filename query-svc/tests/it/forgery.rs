//! Trust only the log: whoever can publish on NATS can delay a board, never change a score.

use std::time::Duration;

use events::{Event, Points, ScoreAwarded};
use store::{PgEventLog, PgLeaderboard};
use uuid::Uuid;

use crate::support::{Stack, ranking};

/// A `ScoreAwarded` of a million points for `player`.
pub fn forged_award(player: &str) -> Event {
    Event::ScoreAwarded(ScoreAwarded {
        event_id: Uuid::now_v7(),
        action_id: Uuid::new_v4(),
        player_id: player.parse().unwrap(),
        display_name: None,
        action: "win_match".parse().unwrap(),
        points: Points::new(1_000_000).unwrap(),
        token_issued_at: 0,
        key_id: "k1".parse().unwrap(),
        recorded_at: time::OffsetDateTime::now_utc(),
    })
}

/// Publishes `event` with plain NATS on the stream's subject, claiming `position`, with
/// `message_id` as its `Nats-Msg-Id` when given.
async fn publish_forged(stack: &Stack, event: &Event, position: u64, message_id: Option<Uuid>) {
    let nats = async_nats::connect(&stack.stream.nats_url).await.unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Scoreboard-Position", position.to_string().as_str());
    headers.insert("Scoreboard-Event-Type", event.event_type());
    headers.insert("Scoreboard-Event-Version", event.version().to_string().as_str());
    if let Some(id) = message_id {
        headers.insert("Nats-Msg-Id", id.to_string().as_str());
    }
    let subject = format!("{}.ScoreAwarded", stack.stream.subject_prefix);
    nats.publish_with_headers(subject, headers, event.encode().into()).await.unwrap();
    nats.flush().await.unwrap();
}

async fn metric(stack: &Stack, name: &str) -> f64 {
    let metrics = reqwest::get(format!("{}/metrics", stack.query.url)).await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .filter(|line| line.split([' ', '{']).next() == Some(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn assert_read_model_is_the_fold_of_the_log(stack: &Stack) {
    let pool = stack.db.pool().await;
    let report =
        projector::verify::verify_read_model(&PgEventLog::new(pool.clone()), &PgLeaderboard::new(pool)).await.unwrap();
    assert!(report.differences.is_empty(), "read model differs from the log: {:#?}", report.differences);
}

#[tokio::test]
async fn a_forged_stream_message_changes_no_board_and_loses_no_real_point() {
    let stack = Stack::start().await;
    let head = stack.submit_seen("alice", "win_match").await;

    // The attack: a million points for mallory at the next position, then a real action that
    // takes that position.
    publish_forged(&stack, &forged_award("mallory"), head + 1, None).await;
    let forged_with_an_id = forged_award("mallory");
    publish_forged(&stack, &forged_with_an_id, head + 1, Some(forged_with_an_id.event_id())).await;
    let bob = stack.submit_seen("bob", "complete_task").await;
    assert_eq!(bob, head + 1, "the real action took the position the forgeries claimed");

    // A forged position far ahead, then more real actions: the projector folds on.
    publish_forged(&stack, &forged_award("mallory"), 1_000_000_000, None).await;
    let last = stack.submit_seen("carol", "find_secret").await;

    let (status, board) = stack.get(&format!("/v1/leaderboard?min_position={last}")).await;
    assert_eq!(status, 200);
    assert_eq!(ranking(&board), [(1, "carol".into(), 250), (2, "alice".into(), 100), (3, "bob".into(), 10)]);
    assert_eq!(board["position"], last);
    let (status, _) = stack.get("/v1/players/mallory").await;
    assert_eq!(status, 404, "no forged player on the board");
    assert_eq!(metric(&stack, "projector_forged_messages_total").await, 3.0, "every forgery was counted");
    assert_read_model_is_the_fold_of_the_log(&stack).await;
}

#[tokio::test]
async fn a_forged_announcement_changes_no_board_and_read_your_writes_holds() {
    let stack = Stack::start_with(&["--read-your-writes-timeout=300ms"]).await;
    let head = stack.submit_seen("alice", "win_match").await;

    // The attack: mallory on top at the highest position there is, in the old format and the new.
    let nats = async_nats::connect(&stack.stream.nats_url).await.unwrap();
    let forged_change = serde_json::json!({
        "from": 0,
        "to": u64::MAX,
        "standings": [{"player_id": "mallory", "name": null, "score": 1_000_000, "reached_at": 1}],
    });
    nats.publish(stack.stream.changes_subject.clone(), forged_change.to_string().into()).await.unwrap();
    nats.publish(stack.stream.changes_subject.clone(), u64::MAX.to_string().into()).await.unwrap();
    nats.flush().await.unwrap();
    testkit::eventually(Duration::from_secs(5), || async {
        (metric(&stack, "query_announcements_unconfirmed_total").await >= 1.0).then_some(())
    })
    .await;

    let (status, board) = stack.get("/v1/leaderboard").await;
    assert_eq!(status, 200);
    assert_eq!(ranking(&board), [(1, "alice".into(), 100)], "no forged player");
    assert_eq!(board["position"], head);
    let (status, lagging) = stack.get(&format!("/v1/leaderboard?min_position={}", head + 1)).await;
    assert_eq!((status, lagging["code"].as_str()), (503, Some("projection_lagging")), "read-your-writes holds");

    // Real changes still arrive, and read-your-writes waits for them.
    let next = stack.submit("bob", "complete_task").await["position"].as_u64().unwrap();
    let (status, board) = stack.get(&format!("/v1/leaderboard?min_position={next}")).await;
    assert_eq!(status, 200);
    assert_eq!(ranking(&board), [(1, "alice".into(), 100), (2, "bob".into(), 10)]);
    assert_eq!(metric(&stack, "query_announcements_ignored_total").await, 1.0, "the old format is not a position");
}

#[tokio::test]
async fn query_svc_follows_a_database_restored_to_an_earlier_point() {
    let mut stack = Stack::start_with(&["--read-your-writes-timeout=300ms"]).await;
    backed_up_at_two_then_moved_to_four(&mut stack).await;

    // The database goes back to the restore point, as a point-in-time recovery would take it.
    restore(
        &stack,
        &[
            "DELETE FROM events WHERE position > 2",
            "UPDATE event_log_head SET position = 2",
            "UPDATE projection_checkpoints SET position = 2",
        ],
    )
    .await;

    let board = board_at(&stack, 2).await;
    assert_eq!(ranking(&board), [(1, "alice".into(), 100), (2, "bob".into(), 10)], "the board as it was then");
    let (status, _) = stack.get("/v1/leaderboard?min_position=4").await;
    assert_eq!(status, 503, "a position the database no longer holds is not read as written");
}

#[tokio::test]
async fn query_svc_notices_a_restored_database_that_grew_past_its_board() {
    let mut stack = Stack::start().await;
    backed_up_at_two_then_moved_to_four(&mut stack).await;

    // Restored to position 2, then grown with other events to position 5, past the board's 4,
    // before query-svc looked: the position alone cannot tell the histories apart.
    let dave =
        events::Standing { player_id: "dave".parse().unwrap(), name: None, score: 300, reached_at: 5, banned: false };
    let hex = |bytes: Vec<u8>| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let change = format!(
        "INSERT INTO board_changes (position, from_position, standings, seasons, entries) \
         VALUES (5, 2, '\\x{}', '\\x{}', 1)",
        hex(store::snapshot::encode(&[dave])),
        hex(store::snapshot::encode_seasons(&[]))
    );
    restore(
        &stack,
        &[
            "DELETE FROM events WHERE position > 2",
            "INSERT INTO events (position, event_id, action_id, event_type, event_version, player_id, payload, recorded_at) \
             SELECT p, gen_random_uuid(), gen_random_uuid(), event_type, event_version, 'dave', \
                    jsonb_set(payload::jsonb, '{player_id}', '\"dave\"')::json, recorded_at \
             FROM events, generate_series(3, 5) AS p WHERE position = 1",
            "UPDATE event_log_head SET position = 5",
            "INSERT INTO leaderboard (player_id, score, reached_at) VALUES ('dave', 300, 5)",
            &change,
            "UPDATE projection_checkpoints SET position = 5",
        ],
    )
    .await;

    let board = board_at(&stack, 5).await;
    assert_eq!(
        ranking(&board),
        [(1, "dave".into(), 300), (2, "alice".into(), 100), (3, "bob".into(), 10)],
        "the new history, nothing of the old one after position 2"
    );
}

/// Alice and Bob score (positions 1 and 2), the read model is backed up, Carol and Alice score
/// (3 and 4), and the projector stops: a database to restore to position 2.
async fn backed_up_at_two_then_moved_to_four(stack: &mut Stack) {
    stack.submit_seen("alice", "win_match").await;
    assert_eq!(stack.submit_seen("bob", "complete_task").await, 2);
    let pool = stack.db.pool().await;
    for table in ["leaderboard", "board_changes"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE TABLE {table}_backup AS SELECT * FROM {table}")))
            .execute(&pool)
            .await
            .unwrap();
    }
    stack.submit_seen("carol", "find_secret").await;
    assert_eq!(stack.submit_seen("alice", "win_match").await, 4);
    stack.projector.take().unwrap().stop().await.unwrap();
}

/// Puts the backed-up read model back and runs `statements` on the log, in one transaction
/// that, like a restore, passes the append-only triggers.
async fn restore(stack: &Stack, statements: &[&str]) {
    let pool = stack.db.pool().await;
    let mut restore = pool.begin().await.unwrap();
    let setup = [
        "SET LOCAL session_replication_role = replica",
        "DELETE FROM leaderboard",
        "INSERT INTO leaderboard SELECT * FROM leaderboard_backup",
        "DELETE FROM board_changes",
        "INSERT INTO board_changes SELECT * FROM board_changes_backup",
    ];
    for statement in setup.iter().chain(statements) {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string())).execute(&mut *restore).await.unwrap();
    }
    restore.commit().await.unwrap();
}

/// The board query-svc shows once it stands at `position`.
async fn board_at(stack: &Stack, position: u64) -> serde_json::Value {
    testkit::eventually(Duration::from_secs(10), || async {
        let (_, board) = stack.get("/v1/leaderboard").await;
        (board["position"] == position).then_some(board)
    })
    .await
}

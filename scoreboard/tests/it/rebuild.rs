//! `scoreboard-admin rebuild` under live load, on PostgreSQL and JetStream: readers never see a
//! gap or an older board, and the rebuilt read model is the fold of the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use store::{PgEventLog, PgLeaderboard};
use testkit::{TestDb, TestStream, token};

use crate::support::{get, start, submit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_under_live_load_switches_over_without_a_gap_or_an_older_board() {
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let mut settings = testkit::command_settings(&db.url, &stream);
    settings.push(("SCOREBOARD_DATA", "/nonexistent/never-used".into()));
    let pool = db.pool().await;
    let rebuilding = PgLeaderboard::new(pool.clone()).folding(40, events::anomaly::Rules::defaults());
    let live = (PgEventLog::new(pool.clone()), PgLeaderboard::new(pool.clone()));
    rebuilt_under_live_load(settings, rebuilding, live).await;
    let leftovers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE tablename LIKE '%\\_next' OR tablename LIKE '%\\_replaced'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(leftovers, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_database_is_rebuilt_while_the_all_in_one_serves_it() {
    let data = tempfile::tempdir().unwrap();
    let settings = crate::support::settings(data.path());
    // What `scoreboard-admin rebuild --data` does: a pool of its own on the file being served.
    let (log, read_model) = store::sqlite::open(data.path()).await.unwrap();
    let rebuilding = read_model.clone().folding(40, events::anomaly::Rules::defaults());
    rebuilt_under_live_load(settings, rebuilding, (log, read_model)).await;
}

/// A log of 200 events served by the all-in-one of `settings`, actions arriving and readers
/// reading all along, while `rebuilding` is rebuilt: readers never see a gap or an older board,
/// the live load goes on, and the rebuilt read model (`live`, as a separate process reads it) is
/// the fold of the log, with snapshots.
async fn rebuilt_under_live_load<S, R, B>(
    mut settings: Vec<(&'static str, String)>,
    rebuilding: store::ReadModel<B>,
    (log, live): (S, R),
) where
    S: store::EventStore,
    R: store::LeaderboardStore,
    B: store::sql::Backend,
{
    settings.push(("RATE_LIMIT_READS_PER_ADDRESS", "off".into()));
    settings.push(("RATE_LIMIT_PER_ADDRESS", "off".into()));
    settings.push(("RATE_LIMIT_PER_PLAYER", "off".into()));
    settings.push(("SNAPSHOT_INTERVAL", "40".into()));
    let scoreboard = start(&settings, &[]).await;
    let client = reqwest::Client::new();
    let url = scoreboard.url.clone();
    // Given a log of 200 events
    for round in 0..20 {
        let tokens: Vec<String> =
            (0..10).map(|i| token(&format!("p{}", (round * 10 + i) % 37), "complete_task")).collect();
        for (status, body) in futures::future::join_all(tokens.iter().map(|t| submit(&client, &url, t))).await {
            assert_eq!(status, 201, "{body}");
        }
    }
    // And actions arriving and readers reading all along
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
        async move {
            let mut last = 0;
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (status, body) = submit(&client, &url, &token(&format!("p{}", i % 53), "win_match")).await;
                assert_eq!(status, 201, "{body}");
                last = body["position"].as_u64().unwrap();
            }
            last
        }
    });
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut position, mut players, mut reads) = (0, 0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let (status, board) = get(&client, &url, "/v1/leaderboard?limit=100").await;
                    assert_eq!(status, 200, "a gap: {board}");
                    let (now, total) = (board["position"].as_u64().unwrap(), board["total_players"].as_u64().unwrap());
                    assert!(now >= position, "an older board: {now} after {position}");
                    assert!(total >= players && total > 0, "a board with fewer players: {total} after {players}");
                    (position, players, reads) = (now, total, reads + 1);
                }
                (position, reads)
            })
        })
        .collect();

    // When the read model is rebuilt beside the live one
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rebuilt = rebuilding.rebuild(25, |_| {}).await.unwrap();
    assert!(rebuilt.position >= 200, "{rebuilt:?}");
    assert_eq!(rebuilt.generation, 1);
    // And the live load goes on after the switch
    let (_, after) = get(&client, &url, &format!("/v1/leaderboard?min_position={}", rebuilt.position + 20)).await;
    assert!(after["position"].as_u64().unwrap() >= rebuilt.position + 20, "{after}");
    stop.store(true, Ordering::Relaxed);
    let last = writer.await.unwrap();
    for reader in readers {
        let (seen, reads) = reader.await.unwrap();
        assert!(seen > rebuilt.position && reads > 10, "a reader read {reads} boards up to {seen}");
    }

    // Then the rebuilt read model, still folding, is the fold of the log
    let (status, board) = get(&client, &url, &format!("/v1/leaderboard?min_position={last}")).await;
    assert_eq!(status, 200, "{board}");
    let report = projector::verify::verify_read_model(&log, &live).await.unwrap();
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    assert!(report.position >= last);
    // And the query side reloaded the new generation rather than patching the old one
    let metrics = client.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|line| line == "query_board_loads_total 2"), "{metrics}");
    // And its snapshots serve past boards
    let snapshot = live.snapshot_before(last).await.unwrap().expect("a snapshot");
    let then = projector::verify::replay(&log, snapshot.position).await.unwrap();
    assert_eq!(snapshot.standings.len(), then.standings().count(), "the snapshot at {}", snapshot.position);
    scoreboard.stop().await.unwrap();
}

#[tokio::test]
async fn a_rebuild_takes_over_at_the_live_checkpoint_even_when_the_log_is_less_than_a_batch_ahead_of_it() {
    use store::{EventStore as _, LeaderboardStore as _};
    let db = TestDb::new().await;
    let pool = db.pool().await;
    store::postgres::MIGRATOR.run(&pool).await.unwrap();
    // Given a log of 30 events, of which the live read model has folded 10
    let log = PgEventLog::new(pool.clone());
    let now = events::event::stored_precision(time::OffsetDateTime::now_utc());
    let awards: Vec<_> =
        (0..30).map(|i| crate::boards::award(&format!("p{}", i % 7), "complete_task", 10, now)).collect();
    log.append(&awards).await.unwrap();
    let live = PgLeaderboard::new(pool.clone());
    assert_eq!(live.fold_next(10).await.unwrap().to, 10);
    // When it is rebuilt in batches larger than what remains of the log
    let rebuilt = live.rebuild(1000, |_| {}).await.unwrap();
    // Then the rebuilt read model took over at the live checkpoint and holds the fold of exactly
    // the events up to it (folding on from there counts nothing twice)
    assert_eq!(rebuilt.position, 10);
    let report = projector::verify::verify_read_model(&log, &live).await.unwrap();
    assert_eq!(report.position, 10);
    assert!(report.differences.is_empty(), "{:?}", report.differences);
    while live.fold_next(1000).await.unwrap().to < 30 {}
    let report = projector::verify::verify_read_model(&log, &live).await.unwrap();
    assert!(report.differences.is_empty(), "{:?}", report.differences);
}

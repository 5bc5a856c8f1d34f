//! `loadgen proofs` builds and runs (a smoke run on a small log, never a timed test).
#![allow(clippy::unwrap_used, missing_docs)]

use store::{EventStore as _, LeaderboardStore as _};
use testkit::TestDb;

#[tokio::test]
async fn the_proofs_benchmark_writes_signs_and_folds_a_small_log() {
    let (db, before) = (TestDb::new().await, TestDb::new().await);
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["proofs", "build", "--database-url", &db.url, "--baseline-database-url", &before.url])
        .args(["--events", "700", "--compare", "200", "--players", "50"])
        .output()
        .await
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{report}");
    assert!(report.contains("| append, 64 events per transaction, 200 events |"), "{report}");
    assert!(report.contains("| fold of the log into the read model"), "{report}");
    // The log it wrote is a signed, folded log of 700 events
    let pool = db.pool().await;
    let log = store::PgEventLog::new(pool.clone());
    assert_eq!(log.head().await.unwrap(), 700);
    assert_eq!(log.latest_checkpoint().await.unwrap().map(|c| c.tree_size), Some(700));
    assert_eq!(store::PgLeaderboard::new(pool).checkpoint().await.unwrap(), 700);
}

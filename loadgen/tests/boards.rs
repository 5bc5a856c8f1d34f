//! `loadgen boards` builds and runs (a smoke run on a small log, never a timed test).
#![allow(clippy::unwrap_used, missing_docs)]

use store::LeaderboardStore as _;
use testkit::TestDb;

#[tokio::test]
async fn the_boards_benchmark_writes_a_log_and_builds_each_board_from_it() {
    let db = TestDb::new().await;
    let boards = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(boards.path(), "[boards.daily]\nseason = \"daily\"\n[boards.weekly]\nseason = \"weekly\"\n")
        .unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["boards", "build", "--database-url", &db.url, "--boards", &boards.path().display().to_string()])
        .args(["--events", "700", "--players", "300"])
        .output()
        .await
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{report}");
    assert!(report.contains("| fold of 700 events into `global`"), "{report}");
    for board in ["daily", "weekly"] {
        assert!(report.contains(&format!("| build of a new board `{board}`")), "{report}");
    }
    // Both boards are ready, every player on each
    let read_model = store::PgLeaderboard::new(db.pool().await);
    let season = |kind| events::boards::Season::of(kind, time::OffsetDateTime::now_utc());
    let wanted = [
        ("daily".to_string(), season(events::boards::SeasonKind::Daily)),
        ("weekly".to_string(), season(events::boards::SeasonKind::Weekly)),
    ];
    let seasons = read_model.load_seasons(&wanted, None).await.unwrap();
    assert_eq!(seasons.ready.len(), 2);
    assert_eq!(seasons.anchor.position, 700);
    assert_eq!(seasons.seasons.iter().map(|held| held.standings.len()).sum::<usize>(), 600);
}

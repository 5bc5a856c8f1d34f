//! `verify-log` against a real deployment (the all-in-one on SQLite), untouched and after an
//! attacker with write access to the database edited it by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::Duration;

use scoreboard_admin::{Database, LogReport, verify_log, verify_log_from};
use testkit::{InProcess, token};

/// The all-in-one on `data`, with 12 events and a checkpoint of all of them.
async fn deployment(data: &Path) -> InProcess {
    let settings = vec![
        ("SCOREBOARD_DATA", data.display().to_string()),
        ("ACTION_KEYS", testkit::action_keys()),
        ("RATE_LIMIT_PER_PLAYER", "off".into()),
        ("CHECKPOINT_INTERVAL", "50ms".into()),
        ("RATE_LIMIT_READS_PER_ADDRESS", "off".into()),
    ];
    let config: scoreboard::Config = testkit::config(&settings, &[]);
    let server = InProcess::start(|listener, stop| scoreboard::run(config, listener, stop)).await;
    let client = reqwest::Client::new();
    for i in 0..12 {
        let body = serde_json::json!({ "token": token(&format!("p{}", i % 4), "complete_task") });
        let response = client.post(format!("{}/v1/actions", server.url)).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 201);
    }
    testkit::eventually(Duration::from_secs(10), || async {
        let note = client.get(format!("{}/v1/audit/checkpoint", server.url)).send().await.ok()?.text().await.ok()?;
        note.contains("\n12\n").then_some(())
    })
    .await;
    server
}

/// Runs `statements` on the database as an attacker with table rights would.
async fn tamper(data: &Path, statements: &[&str]) {
    let path = data.join(store::sqlite::FILE_NAME);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(*statement)).execute(&pool).await.unwrap();
    }
    pool.close().await;
}

/// The report of the log read over HTTP, checked to be the report of it read from its database.
async fn verified(client: &reqwest::Client, url: &str, data: &Path) -> LogReport {
    let over_http = verify_log(client, url).await.unwrap();
    let (log, _) = store::sqlite::open(data).await.unwrap();
    let from_database = verify_log_from(&Database::new(log)).await.unwrap();
    assert_eq!(from_database.problems, over_http.problems);
    assert_eq!((from_database.events, from_database.checkpoints), (over_http.events, over_http.checkpoints));
    over_http
}

async fn cli(url: &str) -> (bool, String) {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_scoreboard-admin"))
        .args(["verify-log", "--url", url])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(20), run).await.expect("verify-log finishes").unwrap();
    (
        output.status.success(),
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untouched_log_verifies_and_each_edit_by_hand_is_named() {
    let client = reqwest::Client::new();
    let data = tempfile::tempdir().unwrap();
    let server = deployment(data.path()).await;
    let report = verified(&client, &server.url, data.path()).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.events, 12);
    assert!(report.checkpoints >= 1);
    let (ok, output) = cli(&server.url).await;
    assert!(ok, "{output}");
    assert!(output.contains("the log is the one that was signed"), "{output}");

    // UPDATE: one award made larger
    tamper(
        data.path(),
        &[
            "DROP TRIGGER events_no_update",
            r#"UPDATE events SET payload = replace(payload, '"points":10', '"points":1000') WHERE position = 5"#,
        ],
    )
    .await;
    let report = verified(&client, &server.url, data.path()).await;
    assert_eq!(report.first_position(), Some(5), "{:?}", report.problems);
    let (ok, output) = cli(&server.url).await;
    assert!(!ok && output.contains("from position 5"), "{output}");
    server.stop().await.unwrap();

    // DELETE: an event removed
    let data = tempfile::tempdir().unwrap();
    let server = deployment(data.path()).await;
    tamper(data.path(), &["DROP TRIGGER events_no_delete", "DELETE FROM events WHERE position = 8"]).await;
    let report = verified(&client, &server.url, data.path()).await;
    assert_eq!(report.first_position(), Some(8), "{:?}", report.problems);
    server.stop().await.unwrap();

    // Two events swapped
    let data = tempfile::tempdir().unwrap();
    let server = deployment(data.path()).await;
    tamper(
        data.path(),
        &[
            "DROP TRIGGER events_no_update",
            "UPDATE events SET position = 1000 WHERE position = 3",
            "UPDATE events SET position = 3 WHERE position = 4",
            "UPDATE events SET position = 4 WHERE position = 1000",
        ],
    )
    .await;
    let report = verified(&client, &server.url, data.path()).await;
    assert_eq!(report.first_position(), Some(3), "{:?}", report.problems);
    server.stop().await.unwrap();

    // A checkpoint not signed by the deployment's key
    let data = tempfile::tempdir().unwrap();
    let server = deployment(data.path()).await;
    let forger = tlog::note::Signer::from_seed("scoreboard", [1; 32]).unwrap();
    let forged = forger.sign(&tlog::note::checkpoint("scoreboard", 13, &[0; 32])).unwrap();
    let insert = format!("INSERT INTO checkpoints (tree_size, root_hash, note) VALUES (13, zeroblob(32), '{forged}')");
    tamper(data.path(), &[insert.as_str()]).await;
    let report = verified(&client, &server.url, data.path()).await;
    assert!(
        report.problems.iter().any(|p| p.what.contains("checkpoint of tree size 13 does not verify")),
        "{:?}",
        report.problems
    );
    server.stop().await.unwrap();
}

//! Online backup of the all-in-one (`scoreboard-admin backup`): taken while actions are being
//! written, then restored into a fresh all-in-one; nothing acknowledged up to the backup's
//! position is missing or counted twice, and the copy's log is the one that was signed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testkit::{InProcess, token};

async fn all_in_one(data: &Path) -> InProcess {
    let settings = vec![
        ("SCOREBOARD_DATA", data.display().to_string()),
        ("ACTION_KEYS", testkit::action_keys()),
        ("RATE_LIMIT_PER_PLAYER", "off".into()),
        ("RATE_LIMIT_PER_ADDRESS", "off".into()),
        ("RATE_LIMIT_READS_PER_ADDRESS", "off".into()),
        ("CHECKPOINT_INTERVAL", "50ms".into()),
    ];
    let config: scoreboard::Config = testkit::config(&settings, &[]);
    let server = InProcess::start(|listener, stop| scoreboard::run(config, listener, stop)).await;
    testkit::wait_ready(&server.url).await;
    server
}

/// Every event of the log the read side at `url` serves: action id (awards) by position.
async fn log_of(client: &reqwest::Client, url: &str) -> BTreeMap<u64, String> {
    let mut events = BTreeMap::new();
    loop {
        let after = events.keys().last().copied().unwrap_or(0);
        let (status, page) = testkit::get_json(client, url, &format!("/v1/events?after={after}&limit=1000")).await;
        assert_eq!(status, 200, "{page}");
        let page = page["events"].as_array().unwrap().clone();
        if page.is_empty() {
            return events;
        }
        for event in page {
            let action = event["data"]["action_id"].as_str().unwrap_or_default().to_string();
            events.insert(event["position"].as_u64().unwrap(), action);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_writes_restores_every_action_acknowledged_up_to_its_position_once() {
    let (data, elsewhere) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = all_in_one(data.path()).await;
    let client = reqwest::Client::new();
    // Given actions written without pause, each acknowledged one remembered with its position
    let acknowledged: Arc<Mutex<BTreeMap<u64, String>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = tokio::spawn({
        let (client, url, acknowledged, stop) =
            (client.clone(), server.url.clone(), acknowledged.clone(), stop.clone());
        async move {
            for i in 0.. {
                if stop.is_cancelled() {
                    return;
                }
                let body = serde_json::json!({"token": token(&format!("p{}", i % 7), "complete_task")});
                let Ok(response) = client.post(format!("{url}/v1/actions")).json(&body).send().await else { continue };
                if response.status() == 201 {
                    let accepted: serde_json::Value = response.json().await.unwrap();
                    let action = accepted["action_id"].as_str().unwrap().to_string();
                    acknowledged.lock().unwrap().insert(accepted["position"].as_u64().unwrap(), action);
                }
            }
        }
    });
    testkit::eventually(Duration::from_secs(30), || async {
        (acknowledged.lock().unwrap().len() >= 200).then_some(())
    })
    .await;
    // When an operator backs the database up meanwhile
    let copy = elsewhere.path().join("backup.db");
    let (from, to) = (data.path().to_path_buf(), copy.clone());
    let (code, said) = tokio::task::spawn_blocking(move || {
        let args = ["backup", "--data", from.to_str().unwrap(), "--to", to.to_str().unwrap()];
        testkit::run_to_exit(env!("CARGO_BIN_EXE_scoreboard-admin"), &args, &[])
    })
    .await
    .unwrap();
    println!("$ scoreboard-admin backup --data <data> --to backup.db\n{said}");
    assert_eq!(code, Some(0), "{said}");
    let position: u64 = said.split("through position ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    writer.await.unwrap();
    server.stop().await.unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.keys().any(|p| *p > position), "writes went on past the backup");

    // Then a fresh all-in-one on the copy holds the log up to that position, and nothing after
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&copy, restored.path().join(store::sqlite::FILE_NAME)).unwrap();
    let server = all_in_one(restored.path()).await;
    let log = log_of(&client, &server.url).await;
    assert_eq!(log.keys().last().copied(), Some(position));
    // With every action acknowledged up to it, at its position, once
    for (at, action) in acknowledged.range(..=position) {
        assert_eq!(log.get(at), Some(action), "position {at}");
    }
    let mut actions: Vec<&String> = log.values().collect();
    actions.sort();
    actions.dedup();
    assert_eq!(actions.len(), log.len(), "no action twice");
    // And the copy's log is the one that was signed, by its own checkpoints
    let report = scoreboard_admin::verify_log(&client, &server.url).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // And the board the restored all-in-one folds counts each action once
    let (_, board) = testkit::get_json(&client, &server.url, &format!("/v1/leaderboard?min_position={position}")).await;
    let total: u64 = testkit::ranking(&board).iter().map(|(_, _, score)| score).sum();
    assert_eq!(total, 10 * position);
    server.stop().await.unwrap();
}

/// Runs `scoreboard-admin` with `args`: its exit code and what it said.
async fn admin(args: Vec<String>) -> (Option<i32>, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        testkit::run_to_exit(env!("CARGO_BIN_EXE_scoreboard-admin"), &args, &[])
    })
    .await
    .unwrap()
}

/// A backup of the all-in-one on `data`, put alone in a new data folder.
async fn restored_copy(data: &Path) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    let copy = folder.path().join(store::sqlite::FILE_NAME);
    let (code, said) = admin(vec![
        "backup".into(),
        "--data".into(),
        data.display().to_string(),
        "--to".into(),
        copy.display().to_string(),
    ])
    .await;
    assert_eq!(code, Some(0), "{said}");
    folder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_copy_is_proven_against_kept_checkpoints_and_an_altered_or_foreign_one_is_refused() {
    let (data, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = all_in_one(data.path()).await;
    let client = reqwest::Client::new();
    let submit = async |url: &str, count: usize| {
        for i in 0..count {
            let body = serde_json::json!({"token": token(&format!("p{}", i % 5), "complete_task")});
            assert_eq!(client.post(format!("{url}/v1/actions")).json(&body).send().await.unwrap().status(), 201);
        }
    };
    let signed = async |url: &str, size: u64| {
        testkit::eventually(Duration::from_secs(10), || async {
            let (_, kept) = testkit::get_json(&client, url, "/v1/audit/checkpoints?limit=1000").await;
            kept.as_array()?.iter().any(|c| c["tree_size"] == size).then_some(())
        })
        .await;
    };
    // Given a backup of 20 events, all signed, and a log that grew to 30 since
    submit(&server.url, 20).await;
    signed(&server.url, 20).await;
    let good = restored_copy(data.path()).await;
    submit(&server.url, 10).await;
    signed(&server.url, 30).await;
    // And the checkpoints an auditor kept, and the key they were signed with
    let (_, kept) = testkit::get_json(&client, &server.url, "/v1/audit/checkpoints?limit=1000").await;
    let kept_file = other.path().join("kept.json");
    std::fs::write(&kept_file, kept.to_string()).unwrap();
    let key = client.get(format!("{}/v1/audit/key", server.url)).send().await.unwrap().text().await.unwrap();
    let restore_check = |folder: &Path, with: &[&str]| {
        let mut args = vec!["restore-check".to_string(), "--data".into(), folder.display().to_string()];
        args.extend(with.iter().map(|a| a.to_string()));
        admin(args)
    };
    let url = server.url.clone();
    let kept_path = kept_file.display().to_string();

    // Then the copy is proven a prefix of the live log, and its read model rebuilt
    let (code, said) = restore_check(good.path(), &["--url", &url]).await;
    println!("$ scoreboard-admin restore-check --data <copy> --url <live>\n{said}");
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("the copy holds 20 events: the signed log through the kept checkpoint of 20; a prefix of the checkpoint of 30"), "{said}");
    assert!(said.contains("its read model is rebuilt from its log through position 20"), "{said}");
    // And from the kept checkpoints alone
    let (code, said) = restore_check(good.path(), &["--checkpoints", &kept_path, "--key", key.trim()]).await;
    assert_eq!(code, Some(0), "{said}");

    // When one event of another copy is edited by hand
    let altered = restored_copy(data.path()).await;
    let file = altered.path().join(store::sqlite::FILE_NAME);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display())).await.unwrap();
    for statement in [
        "DROP TRIGGER events_no_update",
        "UPDATE events SET payload = replace(payload, '\"points\":10', '\"points\":90') WHERE position = 7",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    // Then it is refused, at that position against the live log, and rebuilds nothing
    let (code, said) = restore_check(altered.path(), &["--url", &url]).await;
    println!("$ scoreboard-admin restore-check --data <edited copy> --url <live>\n{said}");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("position 7: the copy's event is not the live log's"), "{said}");
    assert!(said.contains("the copy is NOT the signed log: nothing rebuilt"), "{said}");
    // And between the kept checkpoints around it, from those alone
    let (code, said) = restore_check(altered.path(), &["--checkpoints", &kept_path, "--key", key.trim()]).await;
    println!("$ scoreboard-admin restore-check --data <edited copy> --checkpoints kept.json --key <key>\n{said}");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("these are not the events the checkpoint of"), "{said}");

    // When the copy is of another deployment's log
    let stranger_data = tempfile::tempdir().unwrap();
    let stranger = all_in_one(stranger_data.path()).await;
    submit(&stranger.url, 3).await;
    signed(&stranger.url, 3).await;
    let foreign = restored_copy(stranger_data.path()).await;
    // Then it is refused from its first event
    let (code, said) = restore_check(foreign.path(), &["--url", &url]).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("position 1: the copy's event is not the live log's"), "{said}");
    stranger.stop().await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_database_restored_from_pg_dump_is_proven_and_an_edited_one_refused() {
    let (db, stream) = (testkit::TestDb::new().await, testkit::TestStream::new());
    // Given the all-in-one on PostgreSQL and JetStream, with 12 events signed
    let mut settings = testkit::command_settings(&db.url, &stream);
    settings.push(("SCOREBOARD_DATA", "/nonexistent/never-used".into()));
    settings.push(("CHECKPOINT_INTERVAL", "50ms".into()));
    settings.push(("RATE_LIMIT_READS_PER_ADDRESS", "off".into()));
    let config: scoreboard::Config = testkit::config(&settings, &[]);
    let server = InProcess::start(|listener, stop| scoreboard::run(config, listener, stop)).await;
    testkit::wait_ready(&server.url).await;
    let client = reqwest::Client::new();
    for i in 0..12 {
        let body = serde_json::json!({"token": token(&format!("p{}", i % 3), "win_match")});
        assert_eq!(client.post(format!("{}/v1/actions", server.url)).json(&body).send().await.unwrap().status(), 201);
    }
    testkit::eventually(Duration::from_secs(10), || async {
        let (_, kept) = testkit::get_json(&client, &server.url, "/v1/audit/checkpoints?limit=1000").await;
        kept.as_array()?.iter().any(|c| c["tree_size"] == 12).then_some(())
    })
    .await;
    // When the database is dumped and restored into another, as an operator would
    let dump = tempfile::tempdir().unwrap();
    let file = dump.path().join("scoreboard.dump");
    let run = |program: &str, args: &[&str]| {
        let output = std::process::Command::new(program).args(args).output().unwrap();
        assert!(output.status.success(), "{program}: {}", String::from_utf8_lossy(&output.stderr));
    };
    run("pg_dump", &["--format=custom", "--file", file.to_str().unwrap(), &db.url]);
    let restored = testkit::TestDb::new().await;
    run("pg_restore", &["--no-owner", "--dbname", &restored.url, file.to_str().unwrap()]);
    // Then the restored database is proven against the live deployment, and its read model rebuilt
    let check = |url: String| {
        admin(vec!["restore-check".into(), "--database-url".into(), url, "--url".into(), server.url.clone()])
    };
    let (code, said) = check(restored.url.clone()).await;
    println!("$ scoreboard-admin restore-check --database-url <restored> --url <live>\n{said}");
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("the copy holds 12 events: the signed log through the kept checkpoint of 12"), "{said}");
    assert!(said.contains("rebuilt from its log through position 12"), "{said}");
    // But not once an event of it is edited by hand
    let pool = restored.pool().await;
    for statement in [
        "ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete",
        "UPDATE events SET payload = replace(payload::text, 'p1', 'p2')::json WHERE position = 5",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let (code, said) = check(restored.url.clone()).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("position 5: the copy's event is not the live log's"), "{said}");
    server.stop().await.unwrap();
}

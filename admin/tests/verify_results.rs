//! Season results against a real deployment (the all-in-one on SQLite, its seasons going by a
//! test's clock): published once the day closed, checked by `verify-results` against the
//! signed log, and amended by a new version when a ban reaches the day afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use events::boards::{Season, SeasonKind};
use query_svc::live::SetClock;
use scoreboard_admin::results::verify_results;
use serde_json::Value;
use testkit::{InProcess, token};
use time::OffsetDateTime;

const OPERATOR_SECRET: &str = "operator-secret-of-at-least-32-bytes!";

async fn get(client: &reqwest::Client, url: &str, path: &str) -> (u16, Value) {
    testkit::get_json(client, url, path).await
}

/// `(rank, player, score)` of the results' entries.
fn ranking(results: &Value) -> Vec<(u64, String, u64)> {
    testkit::ranking(results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_published_once_the_day_closed_verify_against_the_signed_log_and_are_amended_by_versions() {
    let data = tempfile::tempdir().unwrap();
    let boards = data.path().join("boards.toml");
    std::fs::write(&boards, "[boards.daily]\nseason = \"daily\"\n").unwrap();
    let settings = vec![
        ("SCOREBOARD_DATA", data.path().display().to_string()),
        ("ACTION_KEYS", testkit::action_keys()),
        ("RATE_LIMIT_PER_PLAYER", "off".into()),
        ("RATE_LIMIT_READS_PER_ADDRESS", "off".into()),
        ("CHECKPOINT_INTERVAL", "50ms".into()),
        ("BOARDS", boards.display().to_string()),
        ("SEASON_GRACE", "1s".into()),
        ("ADMIN_TOKENS", format!("ops={OPERATOR_SECRET}")),
    ];
    let config: scoreboard::Config = testkit::config(&settings, &[]);
    let now = OffsetDateTime::now_utc();
    let clock = SetClock::new(now);
    let shared = Arc::new(clock.clone());
    let server = InProcess::start(|listener, stop| scoreboard::run_with_clock(config, shared, listener, stop)).await;
    testkit::wait_ready(&server.url).await;
    let (client, url) = (reqwest::Client::new(), server.url.as_str());
    // Given a day of actions
    for (player, action) in
        [("ann", "complete_task"), ("bob", "win_match"), ("ann", "complete_task"), ("cid", "complete_task")]
    {
        let response =
            client.post(format!("{url}/v1/actions")).json(&serde_json::json!({"token": token(player, action)}));
        assert_eq!(response.send().await.unwrap().status(), 201);
    }
    let today = Season::of(SeasonKind::Daily, now);
    let path = format!("/v1/boards/daily/seasons/{today}/results");
    // Then nothing is published while the day lasts
    let (status, problem) = get(&client, url, &path).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("results_not_published")), "{problem}");

    // When the clock passes the day's end and the grace
    clock.set(today.ends_at().unwrap() + time::Duration::seconds(2));
    let first = testkit::eventually(Duration::from_secs(20), || async {
        let (status, body) = get(&client, url, &path).await;
        (status == 200).then_some(body)
    })
    .await;
    // Then the day's results are published, final at a position a signed checkpoint covers
    assert_eq!(ranking(&first), [(1, "bob".into(), 100), (2, "ann".into(), 20), (3, "cid".into(), 10)]);
    assert_eq!((first["version"].as_u64(), first["final_position"].as_u64()), (Some(1), Some(4)));
    assert!(first["checkpoint"]["tree_size"].as_u64().unwrap() >= 4);
    assert!(first["checkpoint"]["note"].as_str().unwrap().contains("\n— scoreboard "), "{first}");
    // And they are the fold of the signed log, by an auditor reading the public API alone
    let report = verify_results(&client, url, "daily", &today.to_string(), None, None).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!((report.events, report.results.version), (first["checkpoint"]["tree_size"].as_u64().unwrap(), 1));
    // But not with a key the deployment never signed with
    let stranger = tlog::note::Signer::from_seed("scoreboard", [7; 32]).unwrap().verifier().to_string();
    let report = verify_results(&client, url, "daily", &today.to_string(), None, Some(&stranger)).await.unwrap();
    assert!(report.problems[0].contains("does not verify"), "{:?}", report.problems);

    // When an operator bans the day's winner afterwards
    let ban = client
        .post(format!("{url}/v1/admin/players/bob/ban"))
        .bearer_auth(OPERATOR_SECRET)
        .json(&serde_json::json!({"reason": "aimbot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ban.status(), 201);
    // Then a second version is published without him, and the first stays as it was
    let second = testkit::eventually(Duration::from_secs(20), || async {
        let (_, body) = get(&client, url, &path).await;
        (body["version"] == 2).then_some(body)
    })
    .await;
    println!("$ curl {path}?version=1\n{first}\n$ curl {path}\n{second}");
    assert_eq!(ranking(&second), [(1, "ann".into(), 20), (2, "cid".into(), 10)]);
    assert_eq!(second["final_position"].as_u64(), Some(5));
    let (_, again) = get(&client, url, &format!("{path}?version=1")).await;
    assert_eq!(again, first);
    for version in [Some(1), Some(2)] {
        let report = verify_results(&client, url, "daily", &today.to_string(), version, None).await.unwrap();
        assert!(report.problems.is_empty(), "{version:?}: {:?}", report.problems);
    }
    // And the command an auditor runs says so, and exits 0
    let (server_url, season) = (url.to_string(), today.to_string());
    let said = tokio::task::spawn_blocking(move || {
        let args = ["verify-results", "--url", &server_url, "--board", "daily", "--season", &season];
        testkit::run_to_exit(env!("CARGO_BIN_EXE_scoreboard-admin"), &args, &[])
    })
    .await
    .unwrap();
    println!("$ scoreboard-admin verify-results --url <url> --board daily --season {today}\n{}", said.1);
    assert_eq!(said.0, Some(0), "{}", said.1);
    assert!(
        said.1.contains("version 2 (2 players, final at position 5") && said.1.contains("they are the fold"),
        "{}",
        said.1
    );
    // And results an operator edited in the database afterwards are caught, naming the rank
    let file = data.path().join(store::sqlite::FILE_NAME);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display())).await.unwrap();
    for statement in [
        "DROP TRIGGER season_results_only_relayed",
        "UPDATE season_results SET entries = replace(entries, '\"score\":10', '\"score\":30') WHERE version = 2",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let (_, edited) = get(&client, url, &path).await;
    println!("$ curl {path}   (after the edit)\n{edited}");
    let report = verify_results(&client, url, "daily", &today.to_string(), None, None).await.unwrap();
    assert_eq!(
        report.problems,
        ["rank 2: the results publish cid with 30, the fold of the log ranks cid with 10"],
        "{:?}",
        report.results
    );
    // And what cannot have results is told so
    for (path, status, code) in [
        (format!("{path}?version=3"), 404, "results_not_published"),
        (format!("{path}?version=0"), 400, "invalid_request"),
        ("/v1/boards/global/seasons/all-time/results".to_string(), 400, "invalid_request"),
        ("/v1/boards/weekly/seasons/2026-W48/results".to_string(), 404, "unknown_board"),
        ("/v1/boards/daily/seasons/2026-W48/results".to_string(), 400, "invalid_request"),
    ] {
        let (got, problem) = get(&client, url, &path).await;
        assert_eq!((got, problem["code"].as_str()), (status, Some(code)), "{path}: {problem}");
    }
}

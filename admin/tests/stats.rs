//! Usage analytics for operators (`GET /v1/admin/stats`, `scoreboard-admin stats`), served by
//! the all-in-one from the projection its fold keeps.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;

use serde_json::Value;
use testkit::{InProcess, TEST_SECRET, token};

const OPERATOR_SECRET: &str = "operator-secret-of-at-least-32-bytes!";
const BOARDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/boards.example.toml");

async fn all_in_one(data: &Path) -> InProcess {
    let settings = vec![
        ("SCOREBOARD_DATA", data.display().to_string()),
        ("ACTION_KEYS", testkit::action_keys()),
        ("ADMIN_TOKENS", format!("ops={OPERATOR_SECRET}")),
        ("BOARDS", BOARDS.into()),
    ];
    let config: scoreboard::Config = testkit::config(&settings, &[]);
    let server = InProcess::start(|listener, stop| scoreboard::run(config, listener, stop)).await;
    testkit::wait_ready(&server.url).await;
    server
}

async fn stats(client: &reqwest::Client, url: &str, query: &str, bearer: Option<&str>) -> (u16, Value) {
    let mut request = client.get(format!("{url}/v1/admin/stats{query}"));
    if let Some(secret) = bearer {
        request = request.bearer_auth(secret);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// `scoreboard-admin` run with `args` to its exit: the exit code and what it printed.
async fn admin<const N: usize>(args: [&str; N]) -> (Option<i32>, String) {
    let args: Vec<String> = args.iter().map(ToString::to_string).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        testkit::run_to_exit(env!("CARGO_BIN_EXE_scoreboard-admin"), &args, &[])
    })
    .await
    .unwrap()
}

fn board<'a>(report: &'a Value, id: &str) -> &'a Value {
    let boards = report["boards"].as_array().unwrap();
    boards.iter().find(|b| b["board"] == id).unwrap_or_else(|| panic!("no board {id}: {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_served_to_operators_by_hour_and_day_and_printed_by_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let server = all_in_one(data.path()).await;
    let (client, url) = (reqwest::Client::new(), server.url.clone());
    // Given three players completing actions, ann twice
    let mut points = std::collections::BTreeMap::<&str, u64>::new();
    let mut position = 0;
    for (player, action) in
        [("ann", "win_match"), ("ben", "complete_task"), ("ann", "complete_task"), ("cid", "win_match")]
    {
        let body = serde_json::json!({"token": token(player, action)});
        let accepted: Value =
            client.post(format!("{url}/v1/actions")).json(&body).send().await.unwrap().json().await.unwrap();
        *points.entry(action).or_default() += accepted["points"].as_u64().unwrap();
        position = accepted["position"].as_u64().unwrap();
    }
    let (status, _) = testkit::get_json(&client, &url, &format!("/v1/leaderboard?min_position={position}")).await;
    assert_eq!(status, 200);

    // When an operator asks for today's hours
    let (status, hours) = stats(&client, &url, "?granularity=hour", Some(OPERATOR_SECRET)).await;
    assert_eq!(status, 200, "{hours}");
    // Then every hour of the last day is there, and the whole range counts each action once
    assert_eq!((hours["granularity"].as_str(), hours["position"].as_u64()), (Some("hour"), Some(position)));
    let global = board(&hours, "global");
    assert_eq!(global["buckets"].as_array().unwrap().len(), 24);
    let total = &global["total"];
    let all_points: u64 = points.values().sum();
    assert_eq!(
        (total["actions"].as_u64(), total["points"].as_u64(), total["active_players"].as_u64()),
        (Some(4), Some(all_points), Some(3))
    );
    assert_eq!(total["new_players"].as_u64(), Some(3));
    assert_eq!(total["by_action"]["win_match"]["actions"].as_u64(), Some(2));
    assert_eq!(total["by_action"]["complete_task"]["points"].as_u64(), Some(points["complete_task"]));
    let counted: u64 = global["buckets"].as_array().unwrap().iter().map(|b| b["actions"].as_u64().unwrap()).sum();
    assert_eq!(counted, 4);
    // And each board counts what counts on it, without new players (global's alone)
    let matches = &board(&hours, "matches")["total"];
    assert_eq!((matches["actions"].as_u64(), matches["active_players"].as_u64()), (Some(2), Some(2)));
    assert!(matches.get("new_players").is_none(), "{matches}");
    assert_eq!(board(&hours, "daily")["total"]["actions"].as_u64(), Some(4));
    // And the days agree with the hours
    let (status, days) = stats(&client, &url, "", Some(OPERATOR_SECRET)).await;
    assert_eq!((status, days["granularity"].as_str()), (200, Some("day")));
    assert_eq!(board(&days, "global")["buckets"].as_array().unwrap().len(), 30);
    assert_eq!(board(&days, "global")["total"], *total);

    // Only operators: no credential, a wrong one, an action key
    for bearer in [None, Some("not-the-secret-of-any-operator-at-all"), Some(TEST_SECRET)] {
        let (status, problem) = stats(&client, &url, "", bearer).await;
        assert_eq!((status, problem["code"].as_str()), (401, Some("unauthorized")), "{bearer:?}");
    }
    // And bad parameters are refused, naming what is wrong
    for query in [
        "?granularity=week",
        "?from=yesterday",
        "?from=2026-12-03T00:00:00Z&to=2026-12-01T00:00:00Z",
        "?granularity=hour&from=2026-10-01T00:00:00Z&to=2026-12-01T00:00:00Z",
        "?board=global",
        "?to=9999-12-31T12:00:00Z",
    ] {
        let (status, problem) = stats(&client, &url, query, Some(OPERATOR_SECRET)).await;
        assert_eq!((status, problem["code"].as_str()), (400, Some("invalid_request")), "{query}: {problem}");
    }

    // And the CLI prints the same numbers
    let (code, said) = admin(["stats", "--url", &url, "--admin-token", OPERATOR_SECRET, "--granularity", "hour"]).await;
    println!("$ scoreboard-admin stats --url <url> --admin-token <secret> --granularity hour\n{said}");
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains(&format!("read model at position {position}")), "{said}");
    let whole = said.lines().find(|line| line.starts_with("whole range")).unwrap();
    assert_eq!(whole.split_whitespace().skip(2).collect::<Vec<_>>(), ["4", &all_points.to_string(), "3", "3"]);
    assert!(said.contains("  win_match: 2 actions"), "{said}");
    assert!(said.contains("board matches"), "{said}");
    // And the review queue beside it, through the same operator's request: nobody is flagged
    let (code, said) = admin(["flags", "--url", &url, "--admin-token", OPERATOR_SECRET]).await;
    assert_eq!((code, said.trim()), (Some(0), "0 flags"));
    let (code, said) = admin(["stats", "--url", &url, "--admin-token", "wrong-secret-of-at-least-32-bytes!!!"]).await;
    assert_eq!(code, Some(1), "{said}");
    assert!(said.starts_with("401"), "{said}");
    server.stop().await.unwrap();
}

//! The embedded default: SQLite, events passed in process. Same API, same invariants.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testkit::{SseClient, claims, sign, token};

use crate::support::{audit_log, get, ranking, settings, start, start_process, submit};

#[tokio::test]
async fn submit_read_and_stream_on_the_embedded_default() {
    let data = tempfile::tempdir().unwrap();
    let scoreboard = start(&settings(data.path()), &[]).await;
    let client = reqwest::Client::new();
    assert!(data.path().join("scoreboard.db").exists(), "the log lives in SCOREBOARD_DATA");

    let retried = token("alice", "win_match");
    assert_eq!(submit(&client, &scoreboard.url, &retried).await.0, 201);
    assert_eq!(submit(&client, &scoreboard.url, &retried).await.0, 200, "a retry is counted once");
    submit(&client, &scoreboard.url, &token("bob", "find_secret")).await;
    let (_, last) = submit(&client, &scoreboard.url, &token("carol", "win_match")).await;
    let position = last["position"].as_u64().unwrap();
    assert_eq!(position, 3, "dense positions");

    let (status, board) = get(&client, &scoreboard.url, &format!("/v1/leaderboard?min_position={position}")).await;
    assert_eq!(status, 200);
    assert_eq!(ranking(&board), [(1, "bob".into(), 250), (2, "alice".into(), 100), (3, "carol".into(), 100)]);
    let (_, carol) = get(&client, &scoreboard.url, "/v1/players/carol").await;
    assert_eq!(carol["rank"], 3);

    let mut stream = SseClient::open(&scoreboard.url, "?limit=3", None).await;
    assert_eq!(stream.next().await.id, 3);
    let (_, next) = submit(&client, &scoreboard.url, &token("carol", "find_secret")).await;
    let update = stream.next().await;
    assert_eq!((update.event.as_str(), update.id), ("update", next["position"].as_u64().unwrap()));
    assert_eq!(ranking(&update.data)[0], (1, "carol".into(), 350));

    let (_, ready) = get(&client, &scoreboard.url, "/readyz").await;
    assert_eq!(ready["checks"]["sqlite"], "ok");
    let (status, problem) = get(&client, &scoreboard.url, "/v1/leaderboard?limit=0").await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("invalid_request")), "the same errors");
    scoreboard.stop().await.unwrap();
}

#[tokio::test]
async fn nothing_acknowledged_is_lost_to_a_kill_and_restart() {
    let data = tempfile::tempdir().unwrap();
    let settings = settings(data.path());
    let scoreboard = start_process(&settings).await;
    let acknowledged: Arc<Mutex<HashSet<String>>> = Arc::default();
    let client = reqwest::Client::new();
    let load: Vec<_> = (0..8)
        .map(|c| {
            let (client, url, acknowledged) = (client.clone(), scoreboard.url.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let claims = claims(&format!("p{}", (c + i) % 6), "win_match");
                    match client
                        .post(format!("{url}/v1/actions"))
                        .json(&serde_json::json!({"token": sign(&claims)}))
                        .send()
                        .await
                    {
                        Ok(response) if response.status() == 201 => {
                            acknowledged.lock().unwrap().insert(claims.jti.to_string());
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    while acknowledged.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    scoreboard.signal("KILL");
    assert!(!scoreboard.wait(Duration::from_secs(5)).await);
    for client in load {
        client.await.unwrap();
    }
    let restarted = start_process(&settings).await;

    let log = audit_log(&client, &restarted.url).await;
    let in_log: HashSet<String> = log.iter().map(|(_, action, _, _)| action.clone()).collect();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.is_subset(&in_log), "{} acknowledged actions lost", acknowledged.difference(&in_log).count());
    let positions: Vec<u64> = log.iter().map(|(position, ..)| *position).collect();
    assert_eq!(positions, (1..=log.len() as u64).collect::<Vec<_>>(), "dense positions");

    // The board equals the fold of the log once the restarted projector caught up.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (_, _, player, points) in &log {
        *expected.entry(player.clone()).or_default() += points;
    }
    let (status, board) =
        get(&client, &restarted.url, &format!("/v1/leaderboard?limit=100&min_position={}", log.len())).await;
    assert_eq!(status, 200);
    let shown: BTreeMap<String, u64> = ranking(&board).into_iter().map(|(_, player, score)| (player, score)).collect();
    assert_eq!(shown, expected);
}

#[tokio::test]
async fn a_graceful_restart_keeps_the_board() {
    let data = tempfile::tempdir().unwrap();
    let settings = settings(data.path());
    let first = start_process(&settings).await;
    let client = reqwest::Client::new();
    for player in ["a", "b", "a"] {
        assert_eq!(submit(&client, &first.url, &token(player, "finish_level")).await.0, 201);
    }
    let (_, before) = get(&client, &first.url, "/v1/leaderboard?min_position=3").await;
    first.signal("TERM");
    assert!(first.wait(Duration::from_secs(10)).await, "exits 0 on SIGTERM");

    let second = start_process(&settings).await;
    let (_, after) = get(&client, &second.url, "/v1/leaderboard?min_position=3").await;
    assert_eq!(ranking(&after), ranking(&before));
    assert_eq!(submit(&client, &second.url, &token("c", "complete_task")).await.1["position"], 4);
}

/// `/metrics` passes Prometheus's own checker (`promtool check metrics`): HELP and TYPE on every
/// series, conventional names. `scripts/test` installs promtool (Debian's `prometheus`).
#[tokio::test]
async fn metrics_pass_promtool() {
    let data = tempfile::tempdir().unwrap();
    let scoreboard = start(&settings(data.path()), &[]).await;
    let client = reqwest::Client::new();
    let mut stream = testkit::SseClient::open(&scoreboard.url, "", None).await;
    stream.next().await;
    let (status, _) = submit(&client, &scoreboard.url, &testkit::token("alice", "complete_task")).await;
    assert_eq!(status, 201);
    assert_eq!(submit(&client, &scoreboard.url, "not-a-token").await.0, 401);
    assert_eq!(get(&client, &scoreboard.url, "/v1/leaderboard?min_position=1").await.0, 200);

    let metrics = client.get(format!("{}/metrics", scoreboard.url)).send().await.unwrap().text().await.unwrap();
    for name in ["actions_total", "projector_events_applied_total", "live_connections", "append_batch_size"] {
        assert!(metrics.contains(&format!("# HELP {name} ")), "{name} is described: {metrics}");
    }
    let promtool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let mut check = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{promtool}: {e} (scripts/test installs Debian's prometheus package)"));
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), metrics.as_bytes()).unwrap();
    let output = check.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
    drop(stream);
    scoreboard.stop().await.unwrap();
}

//! The board at any point in time: every board that was live, read back later by position and
//! by time, across snapshots and moderation.

use serde_json::{Value, json};
use testkit::token;

use crate::support::{get, settings, start, submit};

const OPERATOR: &str = "operator-secret-of-at-least-32-bytes!";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_as_of_any_position_or_time_is_the_board_that_was_live_then() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = settings(data.path());
    settings.push(("RATE_LIMIT_READS_PER_ADDRESS", "off".into()));
    settings.push(("ADMIN_TOKENS", format!("ops={OPERATOR}")));
    settings.push(("SNAPSHOT_INTERVAL", "5".into()));
    let scoreboard = start(&settings, &[]).await;
    let client = reqwest::Client::new();
    let url = scoreboard.url.as_str();

    // Given 40 events, awards and moderation among them, and the board live after each
    let mut live = Vec::new();
    let mut awards = Vec::new();
    let reason = json!({"reason": "test"});
    for step in 0..44u32 {
        let player = format!("p{}", step % 6);
        let (status, body) = match step % 10 {
            4 => moderate(&client, url, &format!("/v1/admin/players/p{}/ban", step / 10), reason.clone()).await,
            8 => moderate(&client, url, &format!("/v1/admin/players/p{}/unban", step / 10), reason.clone()).await,
            9 => {
                let award: &String = &awards[awards.len() / 2];
                moderate(&client, url, "/v1/admin/revocations", json!({"event_id": award, "reason": "test"})).await
            }
            _ => {
                let action = if step % 3 == 0 { "win_match" } else { "complete_task" };
                submit(&client, url, &token(&player, action)).await
            }
        };
        if status == 403 {
            assert_eq!(body["code"], "player_banned");
            continue;
        }
        assert_eq!(status, 201, "step {step}: {body}");
        if let Some(event_id) = body["event_id"].as_str().filter(|_| body.get("points").is_some()) {
            awards.push(event_id.to_string());
        }
        let position = body["position"].as_u64().unwrap();
        let (status, board) = get(&client, url, &format!("/v1/leaderboard?limit=100&min_position={position}")).await;
        assert_eq!((status, board["position"].as_u64()), (200, Some(position)), "{board}");
        live.push((position, time::OffsetDateTime::now_utc(), board));
        // The embedded store finds times to the millisecond (migrations/sqlite/0007).
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert!(live.len() >= 30, "{} events", live.len());
    let head = live.last().unwrap().0;

    // Then the board as of each position, and as of a time just after each event, is that board
    for (position, after, board) in &live {
        let (status, past) = get(&client, url, &format!("/v1/leaderboard?limit=100&as_of_position={position}")).await;
        assert_eq!((status, &past), (200, board), "as of position {position}");
        let time = after.format(&time::format_description::well_known::Rfc3339).unwrap();
        let (status, past) = get(&client, url, &format!("/v1/leaderboard?limit=100&as_of={time}")).await;
        assert_eq!((status, &past), (200, board), "as of {time} (just after position {position})");
    }
    // And pages of a past board continue like pages of the live one
    let (_, page) = get(&client, url, "/v1/leaderboard?as_of_position=23&offset=2&limit=2").await;
    let whole = &live[22].2["entries"];
    assert_eq!(page["entries"], json!([whole[2], whole[3]]));
    assert_eq!(page["total_players"], live[22].2["total_players"]);
    // And before the first event the board is empty
    let (status, empty) = get(&client, url, "/v1/leaderboard?as_of=2000-01-01T00:00:00Z").await;
    assert_eq!((status, empty), (200, json!({"entries": [], "position": 0, "total_players": 0})));

    // And a past that is not there, or asked for wrongly, is a problem
    for (query, status, kind) in [
        (&*format!("as_of_position={}", head + 1), 404, "unknown_position"),
        ("as_of_position=-1", 400, "invalid_request"),
        ("as_of=yesterday", 400, "invalid_request"),
        ("as_of_position=3&as_of=2026-01-01T00:00:00Z", 400, "invalid_request"),
        ("as_of_position=3&min_position=3", 400, "invalid_request"),
        ("as_of_postion=3", 400, "invalid_request"),
    ] {
        let (answered, problem) = get(&client, url, &format!("/v1/leaderboard?{query}")).await;
        assert_eq!(answered, status, "{query}: {problem}");
        assert!(problem["type"].as_str().unwrap().ends_with(kind), "{query}: {problem}");
    }
    scoreboard.stop().await.unwrap();
}

async fn moderate(client: &reqwest::Client, url: &str, path: &str, body: Value) -> (u16, Value) {
    let response = client.post(format!("{url}{path}")).bearer_auth(OPERATOR).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

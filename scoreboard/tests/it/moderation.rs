//! Moderation as events (SPEC "Moderation"): operators ban and unban by appending events, which
//! flow through the fold, the board, the history and `verify` like any other.

use serde_json::{Value, json};
use testkit::{TEST_SECRET, token};

use crate::support::{get, ranking, settings, start, submit};

const OPERATOR_SECRET: &str = "operator-secret-of-at-least-32-bytes!";

async fn moderate(client: &reqwest::Client, base: &str, path: &str, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = client.post(format!("{base}{path}")).json(&body);
    if let Some(secret) = bearer {
        request = request.bearer_auth(secret);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_ban_takes_a_player_off_the_board_at_once_and_an_unban_brings_their_score_back() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = settings(data.path());
    settings.push(("ADMIN_TOKENS", format!("ops={OPERATOR_SECRET}")));
    let scoreboard = start(&settings, &[]).await;
    let (client, url) = (reqwest::Client::new(), scoreboard.url.clone());
    // Given alice leads bob
    for _ in 0..3 {
        assert_eq!(submit(&client, &url, &token("alice", "win_match")).await.0, 201);
    }
    assert_eq!(submit(&client, &url, &token("bob", "complete_task")).await.0, 201);

    // Nobody without an operator's credential moderates: no credential, a wrong one, an action key
    let ban = "/v1/admin/players/alice/ban";
    let reason = json!({"reason": "aimbot reported by three players"});
    for bearer in [None, Some("not-the-secret-of-any-operator-at-all"), Some(TEST_SECRET)] {
        let (status, problem) = moderate(&client, &url, ban, bearer, reason.clone()).await;
        assert_eq!((status, problem["code"].as_str()), (401, Some("unauthorized")), "{bearer:?}");
    }
    // Nor without a reason, or with a body of another shape
    for body in [json!({}), json!({"reason": ""}), json!({"reason": "x", "extra": 1}), json!(["x"])] {
        let (status, problem) = moderate(&client, &url, ban, Some(OPERATOR_SECRET), body.clone()).await;
        assert_eq!((status, problem["code"].as_str()), (400, Some("invalid_request")), "{body}");
    }

    // When an operator bans alice
    let (status, banned) = moderate(&client, &url, ban, Some(OPERATOR_SECRET), reason.clone()).await;
    assert_eq!(status, 201, "{banned}");
    let position = banned["position"].as_u64().unwrap();
    assert_eq!(position, 5);
    // Then from that position she is on no board and has no rank
    let (_, board) = get(&client, &url, &format!("/v1/leaderboard?min_position={position}")).await;
    assert_eq!(ranking(&board), [(1, "bob".into(), 10)]);
    assert_eq!((board["total_players"].as_u64(), board["position"].as_u64()), (Some(1), Some(position)));
    assert_eq!(get(&client, &url, "/v1/players/alice").await.0, 404);
    // And her actions are refused and append nothing
    let (status, problem) = submit(&client, &url, &token("alice", "win_match")).await;
    assert_eq!((status, problem["code"].as_str()), (403, Some("player_banned")));
    let (_, next) = submit(&client, &url, &token("bob", "complete_task")).await;
    assert_eq!(next["position"], position + 1, "the refused actions took no position");
    // And banning her twice changes nothing
    let (status, problem) = moderate(&client, &url, ban, Some(OPERATOR_SECRET), reason.clone()).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("already_banned")));

    // When she is unbanned, her score is back where it was
    let unban = "/v1/admin/players/alice/unban";
    let (status, unbanned) =
        moderate(&client, &url, unban, Some(OPERATOR_SECRET), json!({"reason": "appeal upheld"})).await;
    assert_eq!(status, 201);
    let at = unbanned["position"].as_u64().unwrap();
    let (_, board) = get(&client, &url, &format!("/v1/leaderboard?min_position={at}")).await;
    assert_eq!(ranking(&board), [(1, "alice".into(), 300), (2, "bob".into(), 20)]);
    assert_eq!(submit(&client, &url, &token("alice", "complete_task")).await.0, 201);
    let (status, problem) = moderate(&client, &url, unban, Some(OPERATOR_SECRET), json!({"reason": "again"})).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("not_banned")));

    // And the moderation is in the log and in her history, with the operator and the reason
    let (_, history) = get(&client, &url, "/v1/players/alice/events").await;
    let kinds: Vec<&str> = history["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["ScoreAwarded", "ScoreAwarded", "ScoreAwarded", "PlayerBanned", "PlayerUnbanned", "ScoreAwarded"]
    );
    let ban_event = &history["events"][3];
    assert_eq!(ban_event["position"], position);
    assert_eq!(ban_event["data"]["operator"], "ops");
    assert_eq!(ban_event["data"]["reason"], "aimbot reported by three players");
    assert_eq!(ban_event["data"]["event_id"], banned["event_id"]);
    scoreboard.stop().await.unwrap();
}

#[tokio::test]
async fn moderation_is_off_without_operators_and_an_operator_cannot_share_an_action_key() {
    let data = tempfile::tempdir().unwrap();
    let scoreboard = start(&settings(data.path()), &[]).await;
    let client = reqwest::Client::new();
    let (status, problem) =
        moderate(&client, &scoreboard.url, "/v1/admin/players/alice/ban", Some(TEST_SECRET), json!({"reason": "x"}))
            .await;
    assert_eq!((status, problem["code"].as_str()), (401, Some("unauthorized")));
    assert!(problem["detail"].as_str().unwrap().contains("moderation is off"));
    scoreboard.stop().await.unwrap();

    let mut shared = settings(data.path());
    shared.push(("ADMIN_TOKENS", format!("ops={TEST_SECRET}")));
    let config: scoreboard::Config = testkit::config(&shared, &[]);
    let refused = scoreboard::start(&config, &tokio_util::sync::CancellationToken::new()).await;
    let error = refused.err().expect("an operator's secret equal to an action key is refused").to_string();
    assert!(error.contains("also an action key"), "{error}");
}

#[tokio::test]
async fn an_operator_takes_back_one_award_or_all_of_a_players_points() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = settings(data.path());
    settings.push(("ADMIN_TOKENS", format!("ops={OPERATOR_SECRET}")));
    let scoreboard = start(&settings, &[]).await;
    let (client, url) = (reqwest::Client::new(), scoreboard.url.clone());
    let (_, first) = submit(&client, &url, &token("alice", "win_match")).await;
    submit(&client, &url, &token("alice", "complete_task")).await;
    submit(&client, &url, &token("bob", "find_secret")).await;
    let revoke =
        async |body: Value| moderate(&client, &url, "/v1/admin/revocations", Some(OPERATOR_SECRET), body).await;

    // One award taken back: its points leave the score
    let (status, revoked) = revoke(json!({"event_id": first["event_id"], "reason": "duplicate match"})).await;
    assert_eq!(status, 201, "{revoked}");
    let (_, alice) = get(&client, &url, &format!("/v1/players/alice?min_position={}", revoked["position"])).await;
    assert_eq!(alice["score"], 10);
    // Not twice; and what is not an award of the log cannot be taken back
    let (status, problem) = revoke(json!({"event_id": first["event_id"], "reason": "again"})).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("already_revoked")));
    for (body, code) in [
        (json!({"event_id": revoked["event_id"], "reason": "a revocation"}), "unknown_award"),
        (json!({"event_id": uuid::Uuid::now_v7(), "reason": "nothing"}), "unknown_award"),
        (json!({"player_id": "nobody", "reason": "nothing"}), "unknown_player"),
    ] {
        let (status, problem) = revoke(body.clone()).await;
        assert_eq!((status, problem["code"].as_str()), (404, Some(code)), "{body}");
    }
    for body in
        [json!({"reason": "neither"}), json!({"event_id": first["event_id"], "player_id": "alice", "reason": "both"})]
    {
        assert_eq!(revoke(body.clone()).await.0, 400, "{body}");
    }

    // All of bob's points: his score is 0, and what he earns next counts
    let (status, all) = revoke(json!({"player_id": "bob", "reason": "account shared"})).await;
    assert_eq!(status, 201);
    let (_, bob) = get(&client, &url, &format!("/v1/players/bob?min_position={}", all["position"])).await;
    assert_eq!(bob["score"], 0);
    let (_, next) = submit(&client, &url, &token("bob", "complete_task")).await;
    let (_, board) = get(&client, &url, &format!("/v1/leaderboard?min_position={}", next["position"])).await;
    assert_eq!(ranking(&board), [(1, "alice".into(), 10), (2, "bob".into(), 10)]);
    let (_, history) = get(&client, &url, "/v1/players/bob/events").await;
    let revocation = &history["events"][1];
    assert_eq!(
        (revocation["type"].as_str(), revocation["data"]["reason"].as_str()),
        (Some("ScoreRevoked"), Some("account shared"))
    );
    scoreboard.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_one_player_is_flagged_for_review_and_normal_play_is_not() {
    let data = tempfile::tempdir().unwrap();
    let rules = data.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rules]]\nname = \"burst\"\nmeasure = \"actions\"\nlimit = 5\nwindow = \"1m\"\n\n\
         [[rules]]\nname = \"big_points\"\nmeasure = \"points\"\nlimit = 1000\nwindow = \"1m\"\n",
    )
    .unwrap();
    let mut settings = settings(data.path());
    settings.push(("ADMIN_TOKENS", format!("ops={OPERATOR_SECRET}")));
    settings.push(("ANOMALY_RULES", rules.display().to_string()));
    let scoreboard = start(&settings, &[]).await;
    let (client, url) = (reqwest::Client::new(), scoreboard.url.clone());
    // Given normal play by three players, and a burst of eight actions by one
    let mut last = 0;
    for round in 0..8 {
        for player in ["ann", "ben", "cat"].iter().take(if round < 3 { 3 } else { 0 }) {
            assert_eq!(submit(&client, &url, &token(player, "complete_task")).await.0, 201);
        }
        let (status, body) = submit(&client, &url, &token("cheater", "complete_task")).await;
        assert_eq!(status, 201, "{body}");
        last = body["position"].as_u64().unwrap();
    }
    // Then the cheater is flagged once, by the rule, naming the six awards in the window
    let (_, board) = get(&client, &url, &format!("/v1/leaderboard?min_position={last}")).await;
    let flags = |bearer: Option<&'static str>| {
        let mut request = client.get(format!("{url}/v1/admin/flags"));
        if let Some(secret) = bearer {
            request = request.bearer_auth(secret);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, review) = flags(Some(OPERATOR_SECRET)).await;
    assert_eq!(status, 200, "{review}");
    let listed = review["flags"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{review}");
    assert_eq!((listed[0]["player_id"].as_str(), listed[0]["rule"].as_str()), (Some("cheater"), Some("burst")));
    let events: Vec<u64> = serde_json::from_value(listed[0]["events"].clone()).unwrap();
    assert_eq!(events.len(), 6);
    assert!(listed[0]["flagged_at"].as_str().unwrap().ends_with('Z'));
    // And the flagged actions still count until an operator acts
    assert_eq!(ranking(&board)[0], (1, "cheater".to_string(), 80));
    // And only an operator sees the queue
    assert_eq!(flags(None).await.0, 401);
    assert_eq!(flags(Some("not-an-operator-secret-of-32-bytes!!")).await.0, 401);
    // And banning from the flag is one request
    let path = format!("/v1/admin/players/{}/ban", listed[0]["player_id"].as_str().unwrap());
    let (status, _) = moderate(&client, &url, &path, Some(OPERATOR_SECRET), json!({"reason": "flag: burst"})).await;
    assert_eq!(status, 201);
    scoreboard.stop().await.unwrap();
}

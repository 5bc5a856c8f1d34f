//! Reads: exact scores and ranks, read-your-writes, bad input, the audit log.

use std::time::Duration;

use store::LeaderboardStore as _;

use crate::support::{Stack, get, ranking, start_projector};

#[tokio::test]
async fn scores_and_ranks_are_exact_when_reading_your_writes() {
    let stack = Stack::start().await;
    stack.submit("alice", "win_match").await; // 100
    stack.submit("bob", "win_match").await; // 100, reached after alice
    stack.submit("alice", "complete_task").await; // alice 110
    stack.submit("carol", "find_secret").await; // 250
    let last = stack.submit("dave", "win_match").await; // 100, reached after bob
    let position = last["position"].as_u64().unwrap();

    let (status, board) = stack.get(&format!("/v1/leaderboard?min_position={position}")).await;

    assert_eq!(status, 200, "{board}");
    assert_eq!(board["position"], position);
    assert_eq!(board["total_players"], 4);
    assert_eq!(
        ranking(&board),
        [(1, "carol".into(), 250), (2, "alice".into(), 110), (3, "bob".into(), 100), (4, "dave".into(), 100)],
        "equal scores: whoever reached the score first ranks higher"
    );
    assert_eq!(board["entries"][0]["name"], "Player carol");

    let (status, bob) = stack.get(&format!("/v1/players/bob?min_position={position}")).await;
    assert_eq!(status, 200);
    assert_eq!(bob["player_id"], "bob");
    assert_eq!(bob["name"], "Player bob");
    assert_eq!((bob["score"].as_u64(), bob["rank"].as_u64()), (Some(100), Some(3)));
    assert_eq!(bob["position"], position);
}

#[tokio::test]
async fn a_position_not_yet_folded_answers_projection_lagging() {
    let stack = Stack::start_with(&["--read-your-writes-timeout=300ms"]).await;
    let response =
        stack.client.get(format!("{}/v1/leaderboard?min_position=5000", stack.query.url)).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "projection_lagging");
    let (status, _) = stack.get("/v1/players/alice?min_position=5000").await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn a_position_far_beyond_the_log_is_unknown_at_once() {
    let stack = Stack::start_with(&["--read-your-writes-timeout=10s"]).await;
    for path in [
        "/v1/leaderboard?min_position=9223372036854775807",
        "/v1/leaderboard?min_position=1000000",
        "/v1/players/alice?min_position=1000000",
        "/v1/boards/global/leaderboard?min_position=1000000",
    ] {
        let asked = std::time::Instant::now();
        let (status, problem) = stack.get(path).await;
        assert_eq!((status, problem["code"].as_str()), (404, Some("unknown_position")), "{path}: {problem}");
        assert!(asked.elapsed() < std::time::Duration::from_secs(5), "{path} waited for the board");
    }
}

#[tokio::test]
async fn bad_parameters_are_refused_and_break_nothing() {
    let stack = Stack::start().await;
    stack.submit_seen("alice", "win_match").await;
    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=ten",
        "limit=",
        "offset=-1",
        "offset=x",
        "min_position=-5",
        "min_position=soon",
    ] {
        let (status, problem) = stack.get(&format!("/v1/leaderboard?{query}")).await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(problem["code"], "invalid_request", "{query}");
        assert!(problem["detail"].as_str().unwrap().contains(query.split('=').next().unwrap()), "{problem}");
    }
    for (path, status, code) in [
        ("/v1/players/not%20valid", 400, "invalid_request"),
        ("/v1/players/%F0%9F%8E%AE", 400, "invalid_request"),
        (&format!("/v1/players/{}", "x".repeat(65)), 400, "invalid_request"),
        ("/v1/players/nobody", 404, "unknown_player"),
        ("/v1/leaderboard/stream?limit=0", 400, "invalid_request"),
        ("/v1/events?limit=1001", 400, "invalid_request"),
        ("/v1/nothing-here", 404, "not_found"),
        // Unknown, misspelt or repeated parameters are refused, never silently defaulted.
        ("/v1/leaderboard?limt=5", 400, "invalid_request"),
        ("/v1/leaderboard?as_of_postion=1", 400, "invalid_request"),
        ("/v1/leaderboard?as_of_position=1&min_position=1", 400, "invalid_request"),
        ("/v1/leaderboard?as_of=1", 400, "invalid_request"),
        ("/v1/leaderboard?as_of_position=99", 404, "unknown_position"),
        ("/v1/leaderboard?limit=1&limit=2", 400, "invalid_request"),
        ("/v1/players/alice?minposition=1", 400, "invalid_request"),
        ("/v1/events?after=0&colour=red", 400, "invalid_request"),
        ("/v1/players/alice/events?aftr=0", 400, "invalid_request"),
        ("/v1/leaderboard/stream?lmit=5", 400, "invalid_request"),
    ] {
        let (actual, problem) = stack.get(path).await;
        assert_eq!((actual, problem["code"].as_str()), (status, Some(code)), "{path}: {problem}");
    }
    let (status, problem) = stack.get("/v1/leaderboard?limt=5").await;
    assert!(problem["detail"].as_str().unwrap().contains("limt"), "names the parameter: {status} {problem}");
    let response = stack.client.post(format!("{}/v1/leaderboard", stack.query.url)).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "method_not_allowed");
    let (status, board) = stack.get("/v1/leaderboard").await;
    assert_eq!(status, 200);
    assert_eq!(board["total_players"], 1);
}

#[tokio::test]
async fn pages_follow_the_ranking() {
    let stack = Stack::start().await;
    let mut last = 0;
    for i in 0..12 {
        // Player i completes i + 1 tasks: scores 10, 20, … 120.
        for _ in 0..=i {
            last = stack.submit(&format!("p{i:02}"), "complete_task").await["position"].as_u64().unwrap();
        }
    }
    let (_, page) = stack.get(&format!("/v1/leaderboard?limit=5&offset=5&min_position={last}")).await;
    assert_eq!(
        ranking(&page),
        [
            (6, "p06".into(), 70),
            (7, "p05".into(), 60),
            (8, "p04".into(), 50),
            (9, "p03".into(), 40),
            (10, "p02".into(), 30)
        ]
    );
    assert_eq!(page["total_players"], 12);
    let (_, default) = stack.get("/v1/leaderboard").await;
    assert_eq!(default["entries"].as_array().unwrap().len(), 10, "limit defaults to 10");
    let (_, beyond) = stack.get("/v1/leaderboard?offset=50").await;
    assert!(beyond["entries"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_audit_log_pages_through_events_in_order() {
    let stack = Stack::start().await;
    for player in ["alice", "bob", "alice"] {
        stack.submit(player, "win_match").await;
    }
    let (status, first) = stack.get("/v1/events?after=0&limit=2").await;
    assert_eq!(status, 200);
    let positions: Vec<u64> =
        first["events"].as_array().unwrap().iter().map(|e| e["position"].as_u64().unwrap()).collect();
    assert_eq!(positions, [1, 2]);
    assert_eq!(first["next_after"], 2);
    assert_eq!(first["events"][0]["type"], "ScoreAwarded");
    assert_eq!(first["events"][0]["data"]["points"], 100);
    let (_, rest) = stack.get("/v1/events?after=2").await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    let (_, alice) = stack.get("/v1/players/alice/events").await;
    let positions: Vec<u64> =
        alice["events"].as_array().unwrap().iter().map(|e| e["position"].as_u64().unwrap()).collect();
    assert_eq!(positions, [1, 3]);
}

#[tokio::test]
async fn a_replica_that_missed_announcements_catches_up_from_the_heartbeat() {
    let mut stack = Stack::start().await;
    stack.submit("alice", "win_match").await;
    // The projector stops; a second one folds new events but its announcements go elsewhere,
    // as if every one of them were lost on the way.
    stack.projector.take().unwrap().stop().await.unwrap();
    let muted = start_projector(&stack.db, &stack.stream, &["--nats-changes-subject=nowhere.to.be.heard"]).await;
    let last = stack.submit("bob", "find_secret").await["position"].as_u64().unwrap();
    testkit::eventually(Duration::from_secs(10), || async {
        let checkpoint = store::PgLeaderboard::new(stack.db.pool().await).checkpoint().await.unwrap();
        (checkpoint >= last).then_some(())
    })
    .await;
    let (_, stale) = stack.get("/v1/leaderboard").await;
    assert!(stale["position"].as_u64().unwrap() < last, "the replica has not heard of bob: {stale}");
    muted.stop().await.unwrap();

    // The projector is back: its first heartbeat tells the replica it is behind.
    let _projector = start_projector(&stack.db, &stack.stream, &[]).await;
    let board = testkit::eventually(Duration::from_secs(15), || async {
        let (status, board) =
            get(&stack.client, &stack.query.url, &format!("/v1/leaderboard?min_position={last}")).await;
        (status == 200).then_some(board)
    })
    .await;
    assert_eq!(ranking(&board), [(1, "bob".into(), 250), (2, "alice".into(), 100)]);
}

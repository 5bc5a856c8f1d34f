//! Boards and seasons over HTTP: each board counts its actions in the season of each event,
//! past seasons stay readable, a season starts by the clock (a test's, never waited for), a
//! board added later is built from the whole log, and bad input is a problem.

use std::path::Path;
use std::sync::Arc;

use events::boards::{Season, SeasonKind};
use query_svc::live::SetClock;
use serde_json::{Value, json};
use store::{EventStore as _, NewEvent};
use testkit::{InProcess, SseClient, token};
use time::OffsetDateTime;

use crate::support::{get, settings, submit};

const BOARDS: &str = r#"
[boards.weekly]
season = "weekly"

[boards.daily]
season = "daily"

[boards.matches]
actions = ["win_match"]
season = "all-time"
"#;

/// An award as the command side would have recorded it at `at`.
pub(crate) fn award(player: &str, action: &str, points: i64, at: OffsetDateTime) -> NewEvent {
    NewEvent { event: testkit::award(player, action, points, at), claims_digest: None }
}

async fn start(data: &Path, boards: &str, clock: &SetClock) -> InProcess {
    let file = data.join("boards.toml");
    std::fs::write(&file, boards).unwrap();
    let mut settings = settings(data);
    settings.push(("BOARDS", file.display().to_string()));
    settings.push(("RATE_LIMIT_READS_PER_ADDRESS", "off".into()));
    let config: scoreboard::Config = testkit::config(&settings, &[]);
    let clock = Arc::new(clock.clone());
    let scoreboard = InProcess::start(|listener, stop| scoreboard::run_with_clock(config, clock, listener, stop)).await;
    testkit::wait_ready(&scoreboard.url).await;
    scoreboard
}

/// `(rank, player, score)` of a body's entries.
fn entries(body: &Value) -> Vec<(u64, String, u64)> {
    testkit::ranking(body)
}

/// The body of `path` once it answers 200 (a board being built answers 503 until it is ready).
async fn when_ready(client: &reqwest::Client, url: &str, path: &str) -> Value {
    testkit::eventually(std::time::Duration::from_secs(10), || async {
        let (status, body) = get(client, url, path).await;
        (status == 200).then_some(body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boards_count_their_actions_in_their_seasons_and_start_the_next_by_the_clock() {
    let data = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let this_week = Season::of(SeasonKind::Weekly, now);
    let monday = this_week.starts_at().unwrap();
    let last_week = Season::of(SeasonKind::Weekly, monday - time::Duration::days(1));
    // Given a log with awards either side of this week's start, written before the boards existed
    let (log, _) = store::sqlite::open(data.path()).await.unwrap();
    let just_before = monday - time::Duration::microseconds(1);
    log.append(&[
        award("ann", "complete_task", 10, just_before),
        award("bob", "win_match", 100, just_before),
        award("ann", "win_match", 100, monday),
        award("cid", "complete_task", 10, monday),
        award("dee", "finish_level", 50, monday),
        award("eve", "complete_task", 10, monday),
        award("eve", "complete_task", 10, monday),
    ])
    .await
    .unwrap();
    drop(log);
    let clock = SetClock::new(now);
    let scoreboard = start(data.path(), BOARDS, &clock).await;
    let (client, url) = (reqwest::Client::new(), scoreboard.url.as_str());

    // Then the boards are listed, `global` first, with their current seasons by the clock (once
    // the boards hold the whole log: a board may be ready, and served, before the first fold)
    let weekly = when_ready(&client, url, "/v1/boards/weekly/leaderboard?min_position=7").await;
    let (status, list) = get(&client, url, "/v1/boards").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["boards"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["global", "daily", "matches", "weekly"]);
    let rfc3339 = |t: OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(
        list["boards"][3],
        json!({"id": "weekly", "actions": null, "aggregate": "sum", "season": {"kind": "weekly", "current": this_week.to_string(),
            "starts_at": rfc3339(monday), "ends_at": rfc3339(this_week.ends_at().unwrap())}})
    );
    assert_eq!(list["boards"][2]["actions"], json!(["win_match"]));
    assert_eq!(list["boards"][0]["season"]["current"], "all-time");

    // And each board counts only its actions, in the season of each event; ties go to whoever
    // reached the score first
    assert_eq!((weekly["board"].as_str(), weekly["season"].as_str()), (Some("weekly"), Some(&*this_week.to_string())));
    let expected = [(1, "ann", 100), (2, "dee", 50), (3, "eve", 20), (4, "cid", 10)];
    assert_eq!(entries(&weekly), expected.map(|(r, p, s)| (r, p.to_string(), s)));
    let path = format!("/v1/boards/weekly/leaderboard?season={last_week}");
    let (status, past) = get(&client, url, &path).await;
    assert_eq!(status, 200);
    assert_eq!(entries(&past), [(1, "bob".to_string(), 100), (2, "ann".to_string(), 10)]);
    let matches = when_ready(&client, url, "/v1/boards/matches/leaderboard?min_position=7").await;
    assert_eq!(entries(&matches), [(1, "bob".to_string(), 100), (2, "ann".to_string(), 100)]);

    // And `global` is `/v1/leaderboard`, at every position
    for player in ["fay", "gus", "ann"] {
        let (status, accepted) = submit(&client, url, &token(player, "complete_task")).await;
        assert_eq!(status, 201, "{accepted}");
        let position = accepted["position"].as_u64().unwrap();
        let (_, global) =
            get(&client, url, &format!("/v1/boards/global/leaderboard?limit=100&min_position={position}")).await;
        let (_, plain) = get(&client, url, &format!("/v1/leaderboard?limit=100&min_position={position}")).await;
        assert_eq!((&global["board"], &global["season"]), (&json!("global"), &json!("all-time")));
        for field in ["entries", "position", "total_players"] {
            assert_eq!(global[field], plain[field], "{field} at {position}");
        }
        // And a board answers read-your-writes as `global` does
        let (status, standing) =
            get(&client, url, &format!("/v1/boards/daily/players/{player}?min_position={position}")).await;
        assert_eq!((status, standing["position"].as_u64()), (200, Some(position)), "{standing}");
    }

    // And around a player: the top, the middle, the bottom
    let around = |player: &str, radius: u64| {
        let path = format!("/v1/boards/weekly/players/{player}/around?radius={radius}&season={this_week}");
        let (client, url) = (client.clone(), url.to_string());
        async move {
            let (status, body) = get(&client, &url, &path).await;
            assert_eq!(status, 200, "{body}");
            body["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["player_id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(around("ann", 1).await, ["ann", "dee"]);
    assert_eq!(around("eve", 1).await, ["dee", "eve", "cid"]);
    assert_eq!(around("fay", 1).await, ["cid", "fay", "gus"], "ties broken by who reached the score first");
    let (_, bottom) = get(&client, url, "/v1/boards/weekly/leaderboard?limit=100").await;
    let last = bottom["entries"].as_array().unwrap().last().unwrap()["player_id"].as_str().unwrap().to_string();
    assert_eq!(around(&last, 2).await.len(), 3, "two above the last, none below");
    let (status, standing) = get(&client, url, "/v1/boards/matches/players/ann").await;
    assert_eq!((status, &standing["rank"], &standing["score"]), (200, &json!(2), &json!(100)));

    // And bad input is a problem; a well-formed season without events is an empty board
    for (path, status, code) in [
        ("/v1/boards/nope/leaderboard", 404, "unknown_board"),
        ("/v1/boards/Nope/stream", 404, "unknown_board"),
        ("/v1/boards/weekly/leaderboard?season=2026-W99", 400, "invalid_request"),
        ("/v1/boards/weekly/leaderboard?season=2026-11-30", 400, "invalid_request"),
        ("/v1/boards/daily/leaderboard?season=2026-W49", 400, "invalid_request"),
        ("/v1/boards/matches/leaderboard?season=2026", 400, "invalid_request"),
        ("/v1/boards/weekly/players/ann/around?radius=51", 400, "invalid_request"),
        ("/v1/boards/weekly/players/ann/around?radius=-1", 400, "invalid_request"),
        ("/v1/boards/weekly/players/nobody", 404, "unknown_player"),
        ("/v1/boards/weekly/players/bad%20id", 400, "invalid_request"),
        ("/v1/boards/weekly/leaderboard?limit=0", 400, "invalid_request"),
        ("/v1/boards/weekly/leaderboard?radius=3", 400, "invalid_request"),
    ] {
        let (got, body) = get(&client, url, path).await;
        assert_eq!((got, body["code"].as_str()), (status, Some(code)), "{path}: {body}");
    }
    let (status, empty) = get(&client, url, "/v1/boards/weekly/leaderboard?season=2020-W01").await;
    assert_eq!((status, &empty["entries"], &empty["total_players"]), (200, &json!([]), &json!(0)));

    // When the clock reaches next week, with nobody playing
    let mut stream = SseClient::open_at(url, "/v1/boards/weekly/stream", "", None).await;
    let first = stream.next().await;
    assert_eq!((first.event.as_str(), &first.data["season"]), ("snapshot", &json!(this_week.to_string())));
    let next_week = this_week.next().unwrap();
    clock.set(next_week.starts_at().unwrap() + time::Duration::seconds(1));

    // Then the stream shows the new season's empty board, and so do the reads
    let update = stream.next().await;
    assert_eq!(
        (update.event.as_str(), &update.data["board"], &update.data["season"], &update.data["entries"]),
        ("update", &json!("weekly"), &json!(next_week.to_string()), &json!([]))
    );
    let (_, current) = get(&client, url, "/v1/boards/weekly/leaderboard").await;
    assert_eq!((&current["season"], &current["entries"]), (&json!(next_week.to_string()), &json!([])));
    let (_, list) = get(&client, url, "/v1/boards").await;
    assert_eq!(
        list["boards"][1]["season"]["current"],
        Season::of(SeasonKind::Daily, clock_now(&next_week)).to_string()
    );
    // And last season stays readable, unchanged
    let (_, past) = get(&client, url, &format!("/v1/boards/weekly/leaderboard?season={this_week}&limit=2")).await;
    assert_eq!(entries(&past)[..2], [(1, "ann".to_string(), 110), (2, "dee".to_string(), 50)]);
    drop(stream);
    scoreboard.stop().await.unwrap();

    // When Scoreboard restarts with a board that was not there, and `matches` counting more
    let more = format!(
        "{}\n[boards.tasks]\nactions = [\"complete_task\"]\nseason = \"all-time\"\n",
        BOARDS.replace("[\"win_match\"]", "[\"win_match\", \"finish_level\"]")
    );
    let scoreboard = start(data.path(), &more, &clock).await;
    let url = scoreboard.url.as_str();
    // Then both are built from the whole log, past events included
    let tasks = when_ready(&client, url, "/v1/boards/tasks/leaderboard?limit=100").await;
    let expected = [("eve", 20), ("ann", 20), ("cid", 10), ("fay", 10), ("gus", 10)];
    assert_eq!(
        entries(&tasks).into_iter().map(|(_, p, s)| (p, s)).collect::<Vec<_>>(),
        expected.map(|(p, s)| (p.to_string(), s))
    );
    let matches = when_ready(&client, url, "/v1/boards/matches/leaderboard").await;
    assert_eq!(entries(&matches)[2], (3, "dee".to_string(), 50));
    scoreboard.stop().await.unwrap();
}

/// A time inside `season`.
fn clock_now(season: &Season) -> OffsetDateTime {
    season.starts_at().unwrap() + time::Duration::seconds(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_and_fastest_boards_rank_reported_scores_and_a_board_of_friends_ranks_a_few() {
    let data = tempfile::tempdir().unwrap();
    let boards = r#"
[boards.best-run]
actions = ["finish_run"]
season = "all-time"
aggregate = "best"

[boards.fastest]
actions = ["finish_run"]
season = "weekly"
aggregate = "min"
"#;
    let clock = SetClock::new(OffsetDateTime::now_utc());
    let scoreboard = start(data.path(), boards, &clock).await;
    let (client, url) = (reqwest::Client::new(), scoreboard.url.as_str());
    // Given runs reported by the game's backend (the shipped catalog's `finish_run`, 0 … 1 000 000)
    let run = |player: &str, score: i64| {
        testkit::sign(&events::ActionClaims { score: Some(score), ..testkit::claims(player, "finish_run") })
    };
    for (player, score) in [("ann", 500), ("bob", 300), ("ann", 200), ("cat", 500), ("dan", 900)] {
        assert_eq!(submit(&client, url, &run(player, score)).await.0, 201);
    }
    assert_eq!(submit(&client, url, &token("dan", "complete_task")).await.0, 201);
    // Then the best board keeps each player's highest, ann ahead of cat (she reached 500 first)
    let best = when_ready(&client, url, "/v1/boards/best-run/leaderboard?min_position=6").await;
    let named = |rows: &[(u64, &str, u64)]| rows.iter().map(|(r, p, s)| (*r, p.to_string(), *s)).collect::<Vec<_>>();
    assert_eq!(entries(&best), named(&[(1, "dan", 900), (2, "ann", 500), (3, "cat", 500), (4, "bob", 300)]));
    // And the fastest board each player's lowest, lowest first
    let fastest = when_ready(&client, url, "/v1/boards/fastest/leaderboard?min_position=6").await;
    assert_eq!(entries(&fastest), named(&[(1, "ann", 200), (2, "bob", 300), (3, "cat", 500), (4, "dan", 900)]));
    let (_, bob) = get(&client, url, "/v1/boards/fastest/players/bob").await;
    assert_eq!((bob["rank"].as_u64(), bob["score"].as_u64()), (Some(2), Some(300)));
    let (_, list) = get(&client, url, "/v1/boards").await;
    let aggregates: Vec<(&str, &str)> = list["boards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_str().unwrap(), b["aggregate"].as_str().unwrap()))
        .collect();
    assert_eq!(aggregates, [("global", "sum"), ("best-run", "best"), ("fastest", "min")]);
    // And a board of friends shows those on the board, in board order, with their ranks on it
    let (status, friends) = get(&client, url, "/v1/boards/fastest/leaderboard?players=dan,nobody,bob,dan").await;
    assert_eq!(status, 200, "{friends}");
    assert_eq!(entries(&friends), named(&[(2, "bob", 300), (4, "dan", 900)]));
    assert_eq!(friends["total_players"], 4);
    let (_, paged) = get(&client, url, "/v1/boards/fastest/leaderboard?players=dan,bob,ann&offset=1&limit=1").await;
    assert_eq!(entries(&paged), named(&[(2, "bob", 300)]), "limit and offset page the friends");
    let (status, global) = get(&client, url, "/v1/leaderboard?players=cat,ann").await;
    assert_eq!(status, 200, "{global}");
    assert_eq!(entries(&global), named(&[(2, "ann", 700), (3, "cat", 500)]));
    // And a board of friends with what means something else, or too many friends, is refused
    let many = (0..101).map(|i| format!("p{i}")).collect::<Vec<_>>().join(",");
    for path in [
        "/v1/boards/fastest/leaderboard?players=ann&radius=3".to_string(),
        "/v1/leaderboard?players=ann&as_of_position=2".to_string(),
        "/v1/boards/fastest/players/ann?players=bob".to_string(),
        format!("/v1/leaderboard?players={many}"),
        "/v1/leaderboard?players=ann,,bob".to_string(),
    ] {
        let (status, problem) = get(&client, url, &path).await;
        assert_eq!((status, problem["code"].as_str()), (400, Some("invalid_request")), "{path}: {problem}");
    }
}

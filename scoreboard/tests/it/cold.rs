//! The cold path cannot hurt the hot one: many clients asking for past seasons and past
//! positions at once, as an attacker would, while players act and read their writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use events::boards::{Season, SeasonKind};
use store::EventStore as _;
use testkit::{InProcess, token};
use time::OffsetDateTime;

use crate::boards::award;
use crate::support::{get, settings, submit};

const DAYS: u64 = 12;
const PLAYERS_A_DAY: u64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_seasons_asked_for_by_many_neither_freeze_the_live_board_nor_refuse_its_reads() {
    // Given a log of twelve past days of a thousand players each
    let data = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let days: Vec<Season> =
        (1..=DAYS).map(|d| Season::of(SeasonKind::Daily, now - time::Duration::days(d as i64))).collect();
    let (log, _) = store::sqlite::open(data.path()).await.unwrap();
    for (d, day) in days.iter().enumerate() {
        let at = day.starts_at().unwrap() + time::Duration::hours(1);
        let batch: Vec<_> =
            (0..PLAYERS_A_DAY).map(|p| award(&format!("p{d}-{p}"), "complete_task", 10 + p as i64, at)).collect();
        log.append(&batch).await.unwrap();
    }
    drop(log);
    let head = DAYS * PLAYERS_A_DAY;
    // And the all-in-one serving a daily board behind a proxy it trusts (so that each client
    // has an address of its own)
    let file = data.path().join("boards.toml");
    std::fs::write(&file, "[boards.daily]\nseason = \"daily\"\n").unwrap();
    let mut settings = settings(data.path());
    settings.push(("BOARDS", file.display().to_string()));
    settings.push(("TRUSTED_PROXIES", "127.0.0.1".into()));
    let config: scoreboard::Config = testkit::config(&settings, &[]);
    let scoreboard = InProcess::start(|listener, stop| scoreboard::run(config, listener, stop)).await;
    let (client, url) = (reqwest::Client::new(), scoreboard.url.clone());
    testkit::eventually(Duration::from_secs(30), || async {
        let (status, _) = get(&client, &url, &format!("/v1/boards/daily/leaderboard?min_position={head}")).await;
        (status == 200).then_some(())
    })
    .await;

    // When 64 requests for past seasons and past positions are kept in flight from 8 addresses
    let attacking = Arc::new(AtomicBool::new(true));
    let attackers: Vec<_> = (0..64u64)
        .map(|i| {
            let (client, url, attacking, days) = (client.clone(), url.clone(), attacking.clone(), days.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                let mut n = i;
                while attacking.load(Ordering::Relaxed) {
                    n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    let r = n >> 33;
                    let path = if r % 3 == 0 {
                        format!("/v1/leaderboard?as_of_position={}&offset={}", 1 + r % head, r % 500)
                    } else {
                        format!("/v1/boards/daily/leaderboard?season={}&offset={}", days[(r % DAYS) as usize], r % 900)
                    };
                    let response = client
                        .get(format!("{url}{path}"))
                        .header("x-forwarded-for", format!("192.0.2.{}", i % 8))
                        .send()
                        .await
                        .unwrap();
                    statuses.push(response.status().as_u16());
                    response.bytes().await.unwrap();
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // And players act meanwhile, each reading their own write at once
    let mut waits = Vec::new();
    for i in 0..20 {
        let (status, accepted) = submit(&client, &url, &token(&format!("live-{i}"), "complete_task")).await;
        assert_eq!(status, 201, "{accepted}");
        let position = accepted["position"].as_u64().unwrap();
        let accepted_at = Instant::now();
        let (status, board) = get(&client, &url, &format!("/v1/leaderboard?min_position={position}")).await;
        waits.push(accepted_at.elapsed());
        // Then read-your-writes never answers 503
        assert_eq!(status, 200, "{board}");
        assert!(board["position"].as_u64().unwrap() >= position);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    attacking.store(false, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for attacker in attackers {
        statuses.extend(attacker.await.unwrap());
    }

    // And the board moved within 100 ms of every action
    waits.sort();
    eprintln!("read-your-writes waits: {waits:?}");
    assert!(waits[waits.len() - 1] <= Duration::from_millis(100), "{waits:?}");
    // And the past was served all along, the rest refused at once (busy, or over budget)
    let count = |status: u16| statuses.iter().filter(|s| **s == status).count();
    eprintln!("past reads: {} answered, {} busy, {} over budget", count(200), count(503), count(429));
    assert!(count(200) >= 64, "{} of {} answered", count(200), statuses.len());
    assert_eq!(count(200) + count(503) + count(429), statuses.len(), "nothing but answers and refusals");
    scoreboard.stop().await.unwrap();
}

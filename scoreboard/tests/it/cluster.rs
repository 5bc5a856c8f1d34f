//! A replicated JetStream cluster under faults: three nats-servers holding the stream with three
//! replicas, three Scoreboard processes in distributed mode (so three command sides, three
//! query sides, and three projectors of which one is active), clients submitting all along.
//! The stream's leader node is killed, then the process whose projector is active: nothing
//! acknowledged is lost, nothing is counted twice, a standby projector takes over, and the
//! boards of the surviving query sides agree with each other and with the log.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use testkit::{NatsServer, Process, TestDb, claims, sign};

use crate::support::{get, ranking};

type Acknowledged = Arc<Mutex<HashSet<String>>>;

/// Clients that submit fresh actions round-robin over `urls` until `stop`; a request that fails
/// or gets `503` is retried with the same token on the next process, so a kill never makes a
/// client give up an action it may have had acknowledged.
fn load(
    urls: Arc<Mutex<Vec<String>>>,
    acknowledged: Acknowledged,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|c| {
            let (urls, acknowledged, stop) = (urls.clone(), acknowledged.clone(), stop.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                for i in 0usize.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let claims = claims(&format!("p{}", (c * 7 + i) % 9), "complete_task");
                    let token = sign(&claims);
                    for attempt in 0..50 {
                        let url = {
                            let urls = urls.lock().unwrap();
                            urls[(c + i + attempt) % urls.len()].clone()
                        };
                        let sent = client
                            .post(format!("{url}/v1/actions"))
                            .json(&serde_json::json!({ "token": token }))
                            .send()
                            .await;
                        if let Ok(response) = sent
                            && response.status().is_success()
                        {
                            acknowledged.lock().unwrap().insert(claims.jti.to_string());
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect()
}

async fn acknowledged_at_least(acknowledged: &Acknowledged, count: usize) {
    testkit::eventually(Duration::from_secs(60), || async {
        (acknowledged.lock().unwrap().len() >= count).then_some(())
    })
    .await;
}

async fn metric(url: &str, name: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("{url}/metrics")).await else { return 0.0 };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_killed_stream_leader_and_a_killed_active_projector_lose_nothing_and_count_nothing_twice() {
    let mut nodes = NatsServer::cluster(3).await;
    let nats_url = nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(",");
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (stream_name, prefix) = (format!("SBT_{id}"), format!("sbt.{id}"));

    // The cluster has elected its meta leader once it can create a stream.
    let client = async_nats::connect(nats_url.split(',').collect::<Vec<_>>()).await.unwrap();
    let js = jetstream::new(client);
    let probe = async_nats::jetstream::stream::Config {
        name: format!("SBT_PROBE_{id}"),
        subjects: vec![format!("sbtp.{id}")],
        ..Default::default()
    };
    testkit::eventually(Duration::from_secs(30), || async { js.create_stream(probe.clone()).await.ok() }).await;
    js.delete_stream(&probe.name).await.unwrap();

    let db = TestDb::new().await;
    let settings = vec![
        ("DATABASE_URL", db.url.clone()),
        ("NATS_URL", nats_url.clone()),
        ("NATS_STREAM", stream_name.clone()),
        ("NATS_SUBJECT_PREFIX", prefix.clone()),
        ("NATS_STREAM_REPLICAS", "3".into()),
        ("NATS_CHANGES_SUBJECT", format!("sbtc.{id}")),
        ("ACTION_KEYS", testkit::action_keys()),
        ("RATE_LIMIT_PER_PLAYER", "off".into()),
        ("RATE_LIMIT_PER_ADDRESS", "off".into()),
        ("RATE_LIMIT_READS_PER_ADDRESS", "off".into()),
        ("SCOREBOARD_DATA", "/nonexistent/never-used".into()),
    ];
    let mut processes = Vec::new();
    for _ in 0..3 {
        processes.push(Process::start(env!("CARGO_BIN_EXE_scoreboard"), &settings, "SCOREBOARD_ADDR").await);
    }
    let urls = Arc::new(Mutex::new(processes.iter().map(|p| p.url.clone()).collect::<Vec<_>>()));
    let (acknowledged, stop): (Acknowledged, _) = (Arc::default(), Arc::new(AtomicBool::new(false)));
    let clients = load(urls.clone(), acknowledged.clone(), stop.clone());
    acknowledged_at_least(&acknowledged, 100).await;
    let replicas = js.get_stream(&stream_name).await.unwrap().info().await.unwrap().config.num_replicas;
    assert_eq!(replicas, 3, "the services created the stream with three replicas");

    // Fault 1: the node that leads the stream.
    let leader = testkit::eventually(Duration::from_secs(30), || async {
        js.get_stream(&stream_name).await.ok()?.info().await.ok()?.cluster.clone()?.leader
    })
    .await;
    let index: usize = leader.trim_start_matches('n').parse::<usize>().unwrap() - 1;
    nodes[index].kill();
    acknowledged_at_least(&acknowledged, 250).await;

    // Fault 2: the process whose projector is the active one (its command and query sides with it).
    let active = testkit::eventually(Duration::from_secs(60), || async {
        for (index, process) in processes.iter().enumerate() {
            if metric(&process.url, "projector_events_applied_total").await > 0.0 {
                return Some(index);
            }
        }
        None
    })
    .await;
    let killed = processes.remove(active);
    urls.lock().unwrap().retain(|url| *url != killed.url);
    killed.signal("KILL");
    assert!(!killed.wait(Duration::from_secs(5)).await, "killed, not exited");
    acknowledged_at_least(&acknowledged, 400).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }

    // The log: every acknowledged action once, at dense positions.
    let pool = db.pool().await;
    let rows: Vec<(i64, uuid::Uuid, String, i64)> = sqlx::query_as(
        "SELECT position, action_id, player_id, (payload->>'points')::bigint FROM events ORDER BY position",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let in_log: HashSet<String> = rows.iter().map(|(_, action, _, _)| action.to_string()).collect();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.is_subset(&in_log), "{} acknowledged actions lost", acknowledged.difference(&in_log).count());
    assert_eq!(in_log.len(), rows.len(), "no action twice");
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), (1..=rows.len() as i64).collect::<Vec<_>>());
    let mut fold: BTreeMap<String, u64> = BTreeMap::new();
    for (_, _, player, points) in &rows {
        *fold.entry(player.clone()).or_default() += *points as u64;
    }

    // Both surviving query sides show the whole log, the same board, equal to its fold.
    let head = rows.len();
    let http = reqwest::Client::new();
    let mut boards = Vec::new();
    for process in &processes {
        let board = testkit::eventually(Duration::from_secs(60), || async {
            let (status, board) =
                get(&http, &process.url, &format!("/v1/leaderboard?limit=100&min_position={head}")).await;
            (status == 200).then_some(board)
        })
        .await;
        boards.push(ranking(&board));
    }
    assert_eq!(boards[0], boards[1], "the two query sides agree");
    let shown: BTreeMap<String, u64> = boards[0].iter().map(|(_, player, score)| (player.clone(), *score)).collect();
    assert_eq!(shown, fold, "and equal the fold of the log");
    let applied: f64 = {
        let mut total = 0.0;
        for process in &processes {
            total += metric(&process.url, "projector_events_applied_total").await;
        }
        total
    };
    assert!(applied > 0.0, "a standby projector took over");
}

//! Faults injected for real: SIGTERM under load, PostgreSQL unreachable, a replica gone silent
//! holding the append lock, an event the database refuses, an overloaded queue.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testkit::{Proxy, TestDb, TestStream, claims, sign, token};

use crate::support::{assert_dense, assert_stream_copies_log, config, log_rows, start, start_process, submit};

#[tokio::test]
async fn sigterm_under_load_loses_no_acknowledged_action() {
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let svc = start_process(&db.url, &stream).await;
    let acknowledged: Arc<Mutex<HashSet<uuid::Uuid>>> = Arc::default();
    let client = reqwest::Client::new();

    // 16 clients submit as fast as they can until the service stops answering.
    let load: Vec<_> = (0..16)
        .map(|c| {
            let (client, url, acknowledged) = (client.clone(), svc.url.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let claims = claims(&format!("c{c}-{}", i % 5), "complete_task");
                    let sent = client
                        .post(format!("{url}/v1/actions"))
                        .json(&serde_json::json!({ "token": sign(&claims) }))
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status().is_success() => {
                            acknowledged.lock().unwrap().insert(claims.jti);
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    while acknowledged.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    svc.signal("TERM");
    assert!(svc.wait(Duration::from_secs(20)).await, "command-svc exits cleanly on SIGTERM");
    for client in load {
        client.await.unwrap();
    }

    let rows = log_rows(&db).await;
    let stored: HashSet<uuid::Uuid> = rows.iter().map(|(_, action_id, _)| *action_id).collect();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 300);
    assert!(
        acknowledged.is_subset(&stored),
        "{} acknowledged actions missing",
        acknowledged.difference(&stored).count()
    );
    assert_dense(&rows);

    // A restarted service's relay publishes whatever the stopped one could not.
    let restarted = start(config(&db.url, &stream, &[])).await;
    assert_stream_copies_log(&db, &stream).await;
    restarted.stop().await.unwrap();
}

#[tokio::test]
async fn unreachable_database_is_503_with_retry_after_and_writes_nothing() {
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let proxy = Proxy::start(postgres()).await;
    let svc = start(config(&db.url_via(proxy.port()), &stream, &[])).await;
    let client = reqwest::Client::new();
    assert_eq!(submit(&client, &svc.url, &token("alice", "complete_task")).await.0, 201);

    proxy.cut();
    let pending = token("bob", "win_match");
    let (status, retry_after, problem) = submit(&client, &svc.url, &pending).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "unavailable");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s >= 1)), "Retry-After in seconds");
    let readiness = client.get(format!("{}/readyz", svc.url)).send().await.unwrap();
    assert_eq!(readiness.status(), 503, "not ready while the database is unreachable");

    proxy.restore();
    // The same token, retried until the service reaches the database again, is created now:
    // the refused attempt left nothing behind.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        let (status, _, _) = submit(&client, &svc.url, &pending).await;
        if status != 503 || tokio::time::Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, 201);
    let rows = log_rows(&db).await;
    assert_eq!(rows.len(), 2);
    assert_dense(&rows);
    svc.stop().await.unwrap();
}

/// The PostgreSQL server the tests use.
fn postgres() -> SocketAddr {
    testkit::admin_database_url()
        .parse::<reqwest::Url>()
        .ok()
        .and_then(|u| Some(SocketAddr::new(u.host_str()?.parse().ok()?, u.port().unwrap_or(5432))))
        .unwrap_or_else(|| "127.0.0.1:5432".parse().unwrap())
}

/// Submits every token at once, each on a task of its own; the tasks answer in `tokens` order.
fn submit_all(
    client: &reqwest::Client,
    url: &str,
    tokens: &[String],
) -> Vec<tokio::task::JoinHandle<(u16, Option<String>, serde_json::Value)>> {
    tokens
        .iter()
        .map(|token| {
            let (client, url, token) = (client.clone(), url.to_string(), token.clone());
            tokio::spawn(async move { submit(&client, &url, &token).await })
        })
        .collect()
}

/// Holds the log's append lock until the returned transaction ends.
async fn hold_append_lock(db: &TestDb) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = db.pool().await.begin().await.unwrap();
    sqlx::query("SELECT position FROM event_log_head FOR UPDATE").execute(&mut *lock).await.unwrap();
    lock
}

#[tokio::test]
async fn a_replica_gone_silent_holding_the_append_lock_stalls_the_others_only_briefly() {
    let (db, stream) = (TestDb::new().await, TestStream::new());
    let proxy = Proxy::start(postgres()).await;
    let silent = start(config(&db.url_via(proxy.port()), &stream, &["--database-lock-timeout=1s"])).await;
    let healthy = start(config(&db.url, &stream, &[])).await;
    let client = reqwest::Client::new();
    assert_eq!(submit(&client, &silent.url, &token("alice", "complete_task")).await.0, 201);
    // The silent replica's next append sleeps inside its transaction, holding the lock…
    sqlx::raw_sql(
        "CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.player_id = 'slow' THEN PERFORM pg_sleep(0.5); END IF; RETURN NEW; END $$; \
         CREATE TRIGGER slow BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION slow_insert();",
    )
    .execute(&db.pool().await)
    .await
    .unwrap();
    let stalled = tokio::spawn({
        let (client, url) = (client.clone(), silent.url.clone());
        async move { submit(&client, &url, &token("slow", "complete_task")).await.0 }
    });
    tokio::time::sleep(Duration::from_millis(250)).await;
    // …when its network goes silent: PostgreSQL hears nothing more from it, and no close.
    proxy.freeze();

    let started = tokio::time::Instant::now();
    let (status, _, body) = submit(&client, &healthy.url, &token("bob", "win_match")).await;
    assert_eq!(status, 201, "{body}");
    assert!(started.elapsed() < Duration::from_secs(4), "waited {:?} for the lock", started.elapsed());
    assert_eq!(stalled.await.unwrap(), 503, "the silent replica's request was not acknowledged");
    let rows = log_rows(&db).await;
    assert_eq!(rows.len(), 2, "the silent replica's append was rolled back");
    assert_dense(&rows);
    healthy.stop().await.unwrap();
}

#[tokio::test]
async fn an_event_the_database_refuses_fails_alone_and_its_batch_is_appended() {
    let (db, stream) = (TestDb::new().await, TestStream::new());
    let svc = start(config(&db.url, &stream, &[])).await;
    sqlx::query("ALTER TABLE events ADD CONSTRAINT no_poison CHECK (player_id <> 'poison')")
        .execute(&db.pool().await)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    // With the append lock held, the requests queue up and go into the same batches.
    let lock = hold_append_lock(&db).await;
    let players: Vec<String> = (0..21).map(|i| if i == 10 { "poison".to_string() } else { format!("p{i}") }).collect();
    let tokens: Vec<String> = players.iter().map(|player| token(player, "complete_task")).collect();
    let requests = submit_all(&client, &svc.url, &tokens);
    tokio::time::sleep(Duration::from_millis(300)).await;
    lock.commit().await.unwrap();

    let mut positions = Vec::new();
    for (player, request) in players.iter().zip(requests) {
        let (status, _, body) = request.await.unwrap();
        if player == "poison" {
            assert_eq!((status, body["code"].as_str()), (500, Some("internal")), "{body}");
        } else {
            assert_eq!(status, 201, "{player}: {body}");
            positions.push(body["position"].as_u64().unwrap());
        }
    }
    positions.sort_unstable();
    assert_eq!(positions, (1..=20).collect::<Vec<_>>());
    let rows = log_rows(&db).await;
    assert_eq!(rows.len(), 20, "everything but the refused event");
    assert_dense(&rows);
    svc.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_append_queue_answers_503_with_retry_after_and_loses_nothing() {
    let (db, stream) = (TestDb::new().await, TestStream::new());
    let svc =
        start(config(&db.url, &stream, &["--append-batch-max=2", "--append-queue-max=4", "--append-timeout=10s"]))
            .await;
    let client = reqwest::Client::new();
    let lock = hold_append_lock(&db).await;
    let tokens: Vec<String> = (0..20).map(|i| token(&format!("p{i}"), "complete_task")).collect();
    let requests = submit_all(&client, &svc.url, &tokens);
    // Refusals come at once, while the lock is still held.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (answered, queued): (Vec<_>, Vec<_>) = tokens.iter().zip(requests).partition(|(_, r)| r.is_finished());
    let mut refused = Vec::new();
    for (token, request) in answered {
        let (status, retry_after, body) = request.await.unwrap();
        assert_eq!((status, body["code"].as_str()), (503, Some("unavailable")), "{body}");
        assert!(retry_after.is_some(), "Retry-After on an overload");
        refused.push(token.clone());
    }
    assert!(!refused.is_empty() && queued.len() <= 6, "{} refused, {} queued", refused.len(), queued.len());
    lock.commit().await.unwrap();
    for (_, request) in queued {
        assert_eq!(request.await.unwrap().0, 201, "what was queued is appended once the lock is free");
    }

    // The refused retry with the same token and are recorded; nothing is counted twice.
    for token in &refused {
        assert_eq!(submit(&client, &svc.url, token).await.0, 201);
    }
    let rows = log_rows(&db).await;
    assert_eq!(rows.len(), 20, "every action once");
    assert_dense(&rows);
    svc.stop().await.unwrap();
}

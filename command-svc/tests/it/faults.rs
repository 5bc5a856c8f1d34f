//! Faults injected for real: SIGTERM under load, PostgreSQL unreachable.

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
    let postgres: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let postgres = testkit::admin_database_url()
        .parse::<reqwest::Url>()
        .ok()
        .and_then(|u| Some(SocketAddr::new(u.host_str()?.parse().ok()?, u.port().unwrap_or(5432))))
        .unwrap_or(postgres);
    let proxy = Proxy::start(postgres).await;
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

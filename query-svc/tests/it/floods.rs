//! Floods: clients that dribble, oversize, invent or repeat what they send cost the service
//! nothing lasting and cannot take what others need.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::Stack;

#[tokio::test]
async fn a_client_that_dribbles_its_header_is_cut_off() {
    let stack = Stack::start_with(&["--header-read-timeout=1s"]).await;
    let mut connection = tokio::net::TcpStream::connect(stack.query.url.trim_start_matches("http://")).await.unwrap();
    connection.write_all(b"GET /v1/leaderboard HTTP/1.1\r\nHost: scoreboard\r\n").await.unwrap();
    let started = tokio::time::Instant::now();
    let mut buffer = [0u8; 1024];
    // A header line every 200 ms, never the blank line that ends the header.
    let closed = loop {
        assert!(started.elapsed() < Duration::from_secs(5), "the connection is still open after 5 s");
        if connection.write_all(b"X-Dribble: 1\r\n").await.is_err() {
            break started.elapsed();
        }
        let read = tokio::time::timeout(Duration::from_millis(200), connection.read(&mut buffer)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            break started.elapsed();
        }
    };
    assert!(closed >= Duration::from_millis(900), "cut off by the timeout, not at once: {closed:?}");
    let (status, _) = stack.get("/v1/leaderboard").await;
    assert_eq!(status, 200, "others are served");
}

#[tokio::test]
async fn a_ten_megabyte_websocket_message_is_refused() {
    let stack = Stack::start().await;
    let url = format!("{}/v1/leaderboard/ws", stack.query.url.replacen("http", "ws", 1));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let snapshot = socket.next().await.unwrap().unwrap();
    assert!(snapshot.to_text().unwrap().contains("\"snapshot\""));

    let huge = vec![b'x'; 10 * 1024 * 1024];
    // The server may close while the message is still being sent.
    let _ = socket.send(tokio_tungstenite::tungstenite::Message::Binary(huge.into())).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the connection is closed");
    let (status, _) = stack.get("/v1/leaderboard").await;
    assert_eq!(status, 200, "the service is unharmed");
}

#[tokio::test]
async fn ten_thousand_invented_methods_add_no_metric_series() {
    let stack = Stack::start_with(&["--rate-limit-reads-per-address=off"]).await;
    let series = async || -> Vec<String> {
        let metrics = reqwest::get(format!("{}/metrics", stack.query.url)).await.unwrap().text().await.unwrap();
        metrics.lines().filter(|l| l.starts_with("http_requests_total{")).map(str::to_string).collect()
    };
    let before = series().await.len();

    let client = reqwest::Client::new();
    futures::stream::iter(0..10_000)
        .for_each_concurrent(32, |i| {
            let (client, url) = (client.clone(), format!("{}/v1/leaderboard", stack.query.url));
            async move {
                let method = reqwest::Method::from_bytes(format!("BOGUS{i}").as_bytes()).unwrap();
                let response = client.request(method, url).send().await.unwrap();
                assert_eq!(response.status(), 405);
            }
        })
        .await;

    let after = series().await;
    assert!(after.iter().all(|line| !line.contains("BOGUS")), "{after:#?}");
    assert!(after.len() <= before + 2, "{} series before, {} after: {after:#?}", before, after.len());
    assert!(after.iter().any(|line| line.contains("method=\"other\"")));
}

#[tokio::test]
async fn reads_beyond_an_address_budget_get_429_with_retry_after() {
    let stack = Stack::start_with(&["--rate-limit-reads-per-address=3/m"]).await;
    for _ in 0..3 {
        assert_eq!(stack.get("/v1/leaderboard").await.0, 200);
    }
    let response = stack.client.get(format!("{}/v1/players/alice", stack.query.url)).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");
    assert_eq!(stack.get("/readyz").await.0, 200, "health and metrics are not reads of the board");
}

/// Opens an SSE stream as the client `forwarded_for`, through the trusted local proxy.
async fn open_stream(stack: &Stack, forwarded_for: &str) -> reqwest::Response {
    stack
        .client
        .get(format!("{}/v1/leaderboard/stream", stack.query.url))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn live_streams_are_capped_per_client_and_in_total() {
    let stack = Stack::start_with(&[
        "--trusted-proxies=127.0.0.1",
        "--streams-max=3",
        "--streams-per-address-max=2",
        "--rate-limit-reads-per-address=off",
    ])
    .await;
    let first = open_stream(&stack, "203.0.113.1").await;
    let second = open_stream(&stack, "203.0.113.1").await;
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let refused = open_stream(&stack, "203.0.113.1").await;
    assert_eq!(refused.status(), 503, "a third stream from one client");
    assert!(refused.headers().contains_key("retry-after"));
    let third = open_stream(&stack, "203.0.113.2").await;
    assert_eq!(third.status(), 200, "another client");
    assert_eq!(open_stream(&stack, "203.0.113.3").await.status(), 503, "the server's total");
    let url = format!("{}/v1/leaderboard/ws", stack.query.url.replacen("http", "ws", 1));
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request.headers_mut().insert("x-forwarded-for", "203.0.113.3".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err(), "WebSocket counts the same");

    drop(first);
    let reopened = testkit::eventually(Duration::from_secs(5), || async {
        let response = open_stream(&stack, "203.0.113.3").await;
        (response.status() == 200).then_some(response)
    })
    .await;
    drop(reopened);
    let metrics = reqwest::get(format!("{}/metrics", stack.query.url)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("live_connections_refused_total{reason=\"total\"}"), "{metrics}");
    assert!(metrics.contains("live_connections_refused_total{reason=\"per_address\"}"), "{metrics}");
}

#[test]
fn a_database_url_of_another_kind_is_refused_without_its_password() {
    let (code, said) = testkit::run_to_exit(
        env!("CARGO_BIN_EXE_query-svc"),
        &[],
        &[("DATABASE_URL", "mysql://root:hunter2-database-password@127.0.0.1:1/scores"), ("QUERY_ADDR", "127.0.0.1:0")],
    );
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("not mysql://") && !said.contains("hunter2"), "{said}");
}

#[test]
fn caps_that_do_not_fit_below_the_descriptor_limit_stop_it_at_start() {
    let url = [("DATABASE_URL", "postgres://127.0.0.1:1/never-reached"), ("QUERY_ADDR", "127.0.0.1:0")];
    let (code, said) = testkit::run_to_exit(env!("CARGO_BIN_EXE_query-svc"), &["--connections-max=100000000"], &url);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("CONNECTIONS_MAX=100000000") && said.contains("ulimit"), "{said}");
    let (code, said) =
        testkit::run_to_exit(env!("CARGO_BIN_EXE_query-svc"), &["--connections-max=100", "--streams-max=100"], &url);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("STREAMS_MAX=100 must lie in 1..100"), "{said}");
}

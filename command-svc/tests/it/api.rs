//! Every answer of `POST /v1/actions`.

use events::ActionClaims;
use serde_json::Value;
use testkit::{TestDb, TestStream, claims, sign, token};

use crate::support::{config, log_rows, post_body, start, submit};

struct Fixture {
    svc: testkit::InProcess,
    db: TestDb,
    _stream: TestStream,
    client: reqwest::Client,
}

async fn fixture(extra: &[&str]) -> Fixture {
    let db = TestDb::new().await;
    let stream = TestStream::new();
    let svc = start(config(&db.url, &stream, extra)).await;
    Fixture { svc, db, _stream: stream, client: reqwest::Client::new() }
}

fn assert_problem(body: &Value, status: u16, code: &str) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], format!("urn:scoreboard:problem:{code}"));
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
}

#[tokio::test]
async fn first_submission_is_created_with_its_position() {
    let f = fixture(&[]).await;
    let claims = claims("alice", "win_match");
    let (status, _, body) = submit(&f.client, &f.svc.url, &sign(&claims)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["action_id"], claims.jti.to_string());
    assert_eq!(body["player_id"], "alice");
    assert_eq!(body["action"], "win_match");
    assert_eq!(body["points"], 100, "points come from the catalog");
    assert_eq!(body["position"], 1);
    assert!(body["event_id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap().get_version_num() == 7);
    assert!(body["recorded_at"].is_string());
    assert_eq!(log_rows(&f.db).await.len(), 1);
}

#[tokio::test]
async fn retried_token_is_counted_once_and_returns_the_original() {
    let f = fixture(&[]).await;
    let token = token("alice", "complete_task");
    let (first_status, _, first) = submit(&f.client, &f.svc.url, &token).await;
    let (second_status, _, second) = submit(&f.client, &f.svc.url, &token).await;
    assert_eq!((first_status, second_status), (201, 200));
    assert_eq!(first, second, "a retry answers with the original event");
    assert_eq!(log_rows(&f.db).await.len(), 1);
}

#[tokio::test]
async fn same_action_id_with_other_claims_is_a_conflict() {
    let f = fixture(&[]).await;
    let original = claims("alice", "complete_task");
    let mut reused = original.clone();
    reused.act = "win_match".parse().unwrap();
    assert_eq!(submit(&f.client, &f.svc.url, &sign(&original)).await.0, 201);
    let (status, _, body) = submit(&f.client, &f.svc.url, &sign(&reused)).await;
    assert_eq!(status, 409);
    assert_problem(&body, 409, "action_conflict");
    assert_eq!(log_rows(&f.db).await.len(), 1, "a conflict changes nothing");
}

#[tokio::test]
async fn malformed_requests_are_invalid_requests() {
    let f = fixture(&[]).await;
    for body in ["", "not json", "{}", r#"{"token": 5}"#, r#"["token"]"#, r#"{"tok": "x"}"#] {
        let (status, _, problem) = post_body(&f.client, &f.svc.url, body.to_string()).await;
        assert_eq!(status, 400, "{body:?}");
        assert_problem(&problem, 400, "invalid_request");
    }
    assert!(log_rows(&f.db).await.is_empty());
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let f = fixture(&[]).await;
    let body = serde_json::json!({ "token": "x".repeat(20_000) }).to_string();
    let (status, _, problem) = post_body(&f.client, &f.svc.url, body).await;
    assert_eq!(status, 413);
    assert_problem(&problem, 413, "payload_too_large");
    assert_eq!(problem["detail"], "this endpoint's body is {\"token\": \"…\"}, of a few hundred bytes");
}

#[tokio::test]
async fn refused_tokens_answer_401_with_the_reason_code() {
    let f = fixture(&[]).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut expired = claims("alice", "complete_task");
    (expired.iat, expired.exp) = (now - 600, now - 300);
    let mut future = claims("alice", "complete_task");
    (future.iat, future.exp) = (now + 300, now + 600);
    let forged = {
        let t = token("alice", "complete_task");
        format!("{}x", &t[..t.len() - 1])
    };
    let cases = [
        ("garbage".to_string(), "invalid_token"),
        (forged, "invalid_token"),
        (sign(&expired), "token_expired"),
        (sign(&future), "token_not_yet_valid"),
    ];
    for (token, code) in cases {
        let (status, _, problem) = submit(&f.client, &f.svc.url, &token).await;
        assert_eq!(status, 401, "{code}: {problem}");
        assert_problem(&problem, 401, code);
    }
    assert!(log_rows(&f.db).await.is_empty(), "refused tokens change nothing");
}

#[tokio::test]
async fn action_outside_the_catalog_is_unprocessable() {
    let f = fixture(&[]).await;
    let (status, _, problem) = submit(&f.client, &f.svc.url, &token("alice", "mine_bitcoin")).await;
    assert_eq!(status, 422);
    assert_problem(&problem, 422, "unknown_action");
    assert!(log_rows(&f.db).await.is_empty());
}

#[tokio::test]
async fn a_reported_score_counts_only_where_the_catalog_asks_for_one_and_within_its_range() {
    // The shipped catalog: `finish_run = { score = { min = 0, max = 1000000 } }`
    let f = fixture(&[]).await;
    let scored =
        |player: &str, action: &str, score: Option<i64>| sign(&ActionClaims { score, ..claims(player, action) });
    let (status, _, body) = submit(&f.client, &f.svc.url, &scored("alice", "finish_run", Some(73_250))).await;
    assert_eq!((status, &body["points"]), (201, &Value::from(73_250)), "{body}");
    let (status, _, body) = submit(&f.client, &f.svc.url, &scored("bob", "finish_run", Some(0))).await;
    assert_eq!((status, &body["points"]), (201, &Value::from(0)), "{body}");
    let refused = [
        (scored("carol", "finish_run", Some(1_000_001)), "score_out_of_range", "outside 0 … 1000000"),
        (scored("carol", "finish_run", Some(-5)), "score_out_of_range", "score -5"),
        (scored("carol", "finish_run", None), "score_missing", "needs a `score` claim"),
        (scored("carol", "complete_task", Some(10)), "score_not_asked", "worth fixed points"),
    ];
    for (token, code, detail) in refused {
        let (status, _, problem) = submit(&f.client, &f.svc.url, &token).await;
        assert_eq!(status, 422, "{code}: {problem}");
        assert_problem(&problem, 422, code);
        assert!(problem["detail"].as_str().unwrap().contains(detail), "{problem}");
    }
    assert_eq!(log_rows(&f.db).await.len(), 2, "refused scores change nothing");
}

#[tokio::test]
async fn a_player_over_the_rate_limit_is_told_when_to_retry() {
    let f = fixture(&["--rate-limit-per-player=2/m"]).await;
    assert_eq!(submit(&f.client, &f.svc.url, &token("alice", "complete_task")).await.0, 201);
    assert_eq!(submit(&f.client, &f.svc.url, &token("alice", "complete_task")).await.0, 201);
    let (status, retry_after, problem) = submit(&f.client, &f.svc.url, &token("alice", "complete_task")).await;
    assert_eq!(status, 429);
    assert_problem(&problem, 429, "rate_limited");
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(
        submit(&f.client, &f.svc.url, &token("bob", "complete_task")).await.0,
        201,
        "other players are not limited"
    );
    assert_eq!(log_rows(&f.db).await.len(), 3);
}

#[tokio::test]
async fn an_address_over_the_rate_limit_is_refused_before_verification() {
    let f = fixture(&["--rate-limit-per-address=1/h"]).await;
    assert_eq!(submit(&f.client, &f.svc.url, "garbage").await.0, 401);
    let (status, retry_after, problem) = submit(&f.client, &f.svc.url, &token("alice", "complete_task")).await;
    assert_eq!(status, 429);
    assert_problem(&problem, 429, "rate_limited");
    assert!(retry_after.is_some());
}

#[tokio::test]
async fn unknown_paths_and_operations_endpoints() {
    let f = fixture(&[]).await;
    let response = f.client.get(format!("{}/nope", f.svc.url)).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = f.client.get(format!("{}{path}", f.svc.url)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    submit(&f.client, &f.svc.url, &token("alice", "complete_task")).await;
    let metrics = f.client.get(format!("{}/metrics", f.svc.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("actions_total"), "{metrics}");
    assert!(metrics.contains("append_batch_size"), "{metrics}");
    f.svc.stop().await.unwrap();
}

/// Submits a fresh token as the client `forwarded_for` says it is; returns the status.
async fn submit_as(fixture: &Fixture, forwarded_for: &str) -> u16 {
    let response = fixture
        .client
        .post(format!("{}/v1/actions", fixture.svc.url))
        .header("x-forwarded-for", forwarded_for)
        .json(&serde_json::json!({ "token": token("p", "complete_task") }))
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let fixture = fixture(&["--trusted-proxies=127.0.0.1/32", "--rate-limit-per-address=2/m"]).await;
    assert_eq!(submit_as(&fixture, "203.0.113.5").await, 201);
    assert_eq!(submit_as(&fixture, "203.0.113.5").await, 201);
    assert_eq!(submit_as(&fixture, "203.0.113.5").await, 429, "that client used its budget");
    assert_eq!(submit_as(&fixture, "198.51.100.7, 203.0.113.6").await, 201, "the proxy saw another client");
}

#[tokio::test]
async fn a_forwarded_header_from_an_untrusted_peer_buys_no_budget() {
    let fixture = fixture(&["--rate-limit-per-address=2/m"]).await;
    assert_eq!(submit_as(&fixture, "203.0.113.1").await, 201);
    assert_eq!(submit_as(&fixture, "203.0.113.2").await, 201);
    assert_eq!(submit_as(&fixture, "203.0.113.3").await, 429, "the peer is the client, whatever it claims");
}

#[tokio::test]
async fn every_log_line_of_a_request_names_its_request_id() {
    let (db, stream) = (TestDb::new().await, TestStream::new());
    let address = format!("127.0.0.1:{}", testkit::free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_command-svc"))
        .envs(testkit::command_settings(&db.url, &stream).iter().map(|(k, v)| (*k, v.as_str())))
        .env("COMMAND_ADDR", &address)
        .env("RUST_LOG", "info,tower_http=debug")
        .env("LOG_FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://{address}");
    testkit::wait_ready(&url).await;
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/actions"))
        .header("x-request-id", "trace-me-7")
        .body(r#"{"token":"nope"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-7");
    assert_eq!(response.status(), 401);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    child.kill().unwrap();
    let output = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    let request_lines: Vec<Value> = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"].as_str().is_some_and(|t| t.starts_with("tower_http::trace")))
        .collect();
    assert!(request_lines.len() >= 4, "{logs}");
    for line in &request_lines {
        assert!(line["span"]["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{line}");
    }
    let ours: Vec<&Value> = request_lines.iter().filter(|line| line["span"]["path"] == "/v1/actions").collect();
    assert!(!ours.is_empty(), "{logs}");
    assert!(ours.iter().all(|line| line["span"]["request_id"] == "trace-me-7"), "{ours:#?}");
}

#[tokio::test]
async fn an_unknown_query_parameter_is_refused_and_writes_nothing() {
    let fixture = fixture(&[]).await;
    let response = fixture
        .client
        .post(format!("{}/v1/actions?points=1000000", fixture.svc.url))
        .json(&serde_json::json!({ "token": token("alice", "complete_task") }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_problem(&problem, 400, "invalid_request");
    assert!(problem["detail"].as_str().unwrap().contains("points"), "{problem}");
    assert!(log_rows(&fixture.db).await.is_empty());
}

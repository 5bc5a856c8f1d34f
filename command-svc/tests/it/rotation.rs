//! Key rotation without downtime: `ACTION_KEYS_FILE` and `ADMIN_TOKENS_FILE` re-read on
//! SIGHUP, over one connection held open across every reload.

use std::time::Duration;

use events::{KeyId, KeySecret};
use testkit::{Process, TestDb, TestStream};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

const FIRST: &str = "first-key-secret-of-at-least-32-bytes";
const SECOND: &str = "second-key-secret-of-at-least-32-bytes";

fn token_of(kid: &str, secret: &str) -> String {
    let claims = testkit::claims("rotating-player", "complete_task");
    events::mint(&KeyId::parse(kid).unwrap(), &KeySecret::new(secret.as_bytes()).unwrap(), &claims)
}

/// `POST /v1/actions` on an open HTTP/1.1 keep-alive connection; returns the status.
async fn post(connection: &mut BufReader<TcpStream>, token: &str) -> u16 {
    let body = serde_json::json!({ "token": token }).to_string();
    let request = format!(
        "POST /v1/actions HTTP/1.1\r\nHost: scoreboard\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    connection.get_mut().write_all(request.as_bytes()).await.unwrap();
    let mut status_line = String::new();
    connection.read_line(&mut status_line).await.unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "the connection is still open: {status_line:?}");
    let mut length = 0;
    loop {
        let mut line = String::new();
        connection.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    connection.read_exact(&mut body).await.unwrap();
    status_line[9..12].parse().unwrap()
}

/// Sends SIGHUP and waits until `check` passes (the reload took effect).
async fn reload_until<F: AsyncFnMut() -> bool>(service: &Process, mut check: F) {
    service.signal("HUP");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "the reload did not take effect");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn mint_with_cli(keys_file: &std::path::Path, kid: &str) -> bool {
    std::process::Command::new(env!("CARGO_BIN_EXE_command-svc"))
        .args(["mint-token", "--kid", kid, "--player", "p", "--action", "complete_task"])
        .env("ACTION_KEYS_FILE", keys_file)
        .env_remove("ACTION_KEYS")
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test]
async fn keys_rotate_on_sighup_without_dropping_a_connection() {
    let (db, stream) = (TestDb::new().await, TestStream::new());
    let folder = tempfile::tempdir().unwrap();
    let keys_file = folder.path().join("action-keys");
    std::fs::write(&keys_file, format!("k1={FIRST}\n")).unwrap();
    let mut settings = testkit::command_settings(&db.url, &stream);
    settings.retain(|(name, _)| *name != "ACTION_KEYS");
    settings.push(("ACTION_KEYS_FILE", keys_file.display().to_string()));
    let service = Process::start(env!("CARGO_BIN_EXE_command-svc"), &settings, "COMMAND_ADDR").await;
    let address = service.url.trim_start_matches("http://").to_string();
    let mut connection = BufReader::new(TcpStream::connect(&address).await.unwrap());
    assert_eq!(post(&mut connection, &token_of("k1", FIRST)).await, 201);
    assert_eq!(post(&mut connection, &token_of("k2", SECOND)).await, 401, "k2 is not trusted yet");

    // Step 1: add the new key, keep the old one for verification only.
    std::fs::write(&keys_file, format!("k1={FIRST} verify-only\nk2={SECOND}\n")).unwrap();
    reload_until(&service, async || post(&mut connection, &token_of("k2", SECOND)).await == 201).await;
    assert_eq!(post(&mut connection, &token_of("k1", FIRST)).await, 201, "tokens of a verify-only key count");
    assert!(!mint_with_cli(&keys_file, "k1"), "mint-token never signs with a verify-only key");
    assert!(mint_with_cli(&keys_file, "k2"));

    // Step 2: retire the old key.
    std::fs::write(&keys_file, format!("k2={SECOND}\n")).unwrap();
    reload_until(&service, async || post(&mut connection, &token_of("k1", FIRST)).await == 401).await;

    // A broken file is refused, and the keys in force stay.
    std::fs::write(&keys_file, "k2=short\n").unwrap();
    let client = reqwest::Client::new();
    reload_until(&service, async || {
        let metrics = client.get(format!("{}/metrics", service.url)).send().await.unwrap().text().await.unwrap();
        metrics.contains("trust_reloads_total{outcome=\"refused\"} 1")
    })
    .await;
    assert_eq!(post(&mut connection, &token_of("k2", SECOND)).await, 201, "the old keys stay");
    assert_eq!(post(&mut connection, &token_of("k1", FIRST)).await, 401);
}

#[tokio::test]
async fn operators_credentials_rotate_on_sighup() {
    const ALICE: &str = "alice-operator-secret-of-at-least-32-bytes";
    const BOB: &str = "bob-operator-secret-of-at-least-32-bytes!";
    let (db, stream) = (TestDb::new().await, TestStream::new());
    let folder = tempfile::tempdir().unwrap();
    let admin_file = folder.path().join("admin-tokens");
    std::fs::write(&admin_file, format!("# operators\nalice={ALICE}\n")).unwrap();
    let mut settings = testkit::command_settings(&db.url, &stream);
    settings.push(("ADMIN_TOKENS_FILE", admin_file.display().to_string()));
    let service = Process::start(env!("CARGO_BIN_EXE_command-svc"), &settings, "COMMAND_ADDR").await;
    let client = reqwest::Client::new();
    let toggle = async |secret: &str, player: &str| {
        let response = client
            .post(format!("{}/v1/admin/players/{player}/ban", service.url))
            .bearer_auth(secret)
            .json(&serde_json::json!({"reason": "rotation test"}))
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    };
    assert_eq!(toggle(ALICE, "p1").await, 201);
    assert_eq!(toggle(BOB, "p2").await, 401, "bob is not an operator yet");

    // bob joins, alice leaves, in one reload
    std::fs::write(&admin_file, format!("bob={BOB}\n")).unwrap();
    let mut player = 2;
    reload_until(&service, async || {
        player += 1;
        toggle(BOB, &format!("p{player}")).await == 201
    })
    .await;
    assert_eq!(toggle(ALICE, "p100").await, 401, "a removed operator is refused from the reload on");

    // A broken file is refused, and the operators in force stay
    std::fs::write(&admin_file, "bob=short\n").unwrap();
    reload_until(&service, async || {
        let metrics = client.get(format!("{}/metrics", service.url)).send().await.unwrap().text().await.unwrap();
        metrics.contains("trust_reloads_total{outcome=\"refused\"} 1")
    })
    .await;
    assert_eq!(toggle(BOB, "p101").await, 201, "the operators in force stay");
}

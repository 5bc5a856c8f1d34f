//! Demo mode, and the keys and catalog outside it.

use std::process::Command;

use crate::support::{get, post, ranking, settings, start, submit};

#[tokio::test]
async fn demo_mode_completes_actions_for_the_name_a_visitor_types() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = settings(data.path());
    settings.retain(|(name, _)| *name != "ACTION_KEYS");
    let scoreboard = start(&settings, &["--demo"]).await;
    let client = reqwest::Client::new();

    let (status, body) = post(
        &client,
        &scoreboard.url,
        "/demo/actions",
        serde_json::json!({"name": "Ada Lovelace", "action": "find_secret"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["player_id"].as_str(), body["points"].as_u64()), (Some("demo-ada-lovelace"), Some(250)));
    let (status, body) = post(&client, &scoreboard.url, "/demo/actions", serde_json::json!({"name": "Grace"})).await;
    assert_eq!(status, 201);
    assert_eq!(body["action"], "complete_task", "the catalog's first action by default");

    let (_, board) = get(&client, &scoreboard.url, "/v1/leaderboard?min_position=2").await;
    assert_eq!(ranking(&board), [(1, "demo-ada-lovelace".into(), 250), (2, "demo-grace".into(), 10)]);
    assert_eq!(board["entries"][0]["name"], "Ada Lovelace");

    for (body, code) in [
        (serde_json::json!({"name": ""}), "invalid_request"),
        (serde_json::json!({"name": "a\u{0}b"}), "invalid_request"),
        (serde_json::json!({"nome": "x"}), "invalid_request"),
        (serde_json::json!({"name": "Eve", "action": "mine_bitcoin"}), "unknown_action"),
    ] {
        let (status, problem) = post(&client, &scoreboard.url, "/demo/actions", body.clone()).await;
        assert_eq!(problem["code"], code, "{body}: {status} {problem}");
    }
    let page = client.get(&scoreboard.url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#""demo":true"#), "the page offers the demo form");
    scoreboard.stop().await.unwrap();
}

#[tokio::test]
async fn outside_demo_mode_no_endpoint_mints_tokens_and_the_configured_keys_rule() {
    let data = tempfile::tempdir().unwrap();
    let catalog = data.path().join("actions.toml");
    std::fs::write(&catalog, "[actions]\nhigh_five = 7\n").unwrap();
    let mut settings = settings(data.path());
    settings.push(("ACTION_CATALOG", catalog.display().to_string()));
    let scoreboard = start(&settings, &[]).await;
    let client = reqwest::Client::new();

    let (status, problem) =
        post(&client, &scoreboard.url, "/demo/actions", serde_json::json!({"name": "Mallory"})).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")));
    let page = client.get(&scoreboard.url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#""demo":false"#));

    assert_eq!(submit(&client, &scoreboard.url, &testkit::token("alice", "high_five")).await.1["points"], 7);
    assert_eq!(
        submit(&client, &scoreboard.url, &testkit::token("alice", "complete_task")).await.0,
        422,
        "its own catalog"
    );
    let mut foreign = testkit::claims("alice", "high_five");
    foreign.jti = uuid::Uuid::now_v7();
    let other_key = events::mint(
        &"other".parse().unwrap(),
        &events::KeySecret::new(*b"another-secret-of-32-bytes-long!").unwrap(),
        &foreign,
    );
    assert_eq!(submit(&client, &scoreboard.url, &other_key).await.1["code"], "invalid_token");
    scoreboard.stop().await.unwrap();
}

#[tokio::test]
async fn a_database_it_may_read_but_not_write_stops_it_naming_the_file() {
    use std::os::unix::fs::PermissionsExt as _;
    // SQLite fails at different moments whether the database's journal files are there (another
    // process has it open) or not (it was closed cleanly): try both.
    for open_elsewhere in [true, false] {
        let data = tempfile::tempdir().unwrap();
        let held = store::sqlite::open(data.path()).await.unwrap();
        if !open_elsewhere {
            drop(held);
            for journal in ["scoreboard.db-wal", "scoreboard.db-shm"] {
                let _ = std::fs::remove_file(data.path().join(journal));
            }
        }
        // Another user's database, readable by all: the folder and its files, not writable.
        for entry in std::fs::read_dir(data.path()).unwrap() {
            std::fs::set_permissions(entry.unwrap().path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let keys = testkit::action_keys();
        let envs = [
            ("SCOREBOARD_DATA", data.path().to_str().unwrap()),
            ("SCOREBOARD_ADDR", "127.0.0.1:0"),
            ("ACTION_KEYS", &keys),
        ];
        let binary = env!("CARGO_BIN_EXE_scoreboard");
        // Root may write anything: run as nobody then.
        let root = Command::new("id").arg("-u").output().unwrap().stdout.starts_with(b"0\n");
        let (code, said) = if root {
            let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups", binary];
            testkit::run_to_exit("/usr/bin/setpriv", &nobody, &envs)
        } else {
            testkit::run_to_exit(binary, &[], &envs)
        };
        assert_eq!(code, Some(1), "{said}");
        let file = data.path().join("scoreboard.db");
        let named = format!("the database {} cannot be written", file.display());
        assert!(said.contains(&named), "open elsewhere: {open_elsewhere}: {said}");
    }
}

#[test]
fn misconfigurations_stop_it_with_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let run = |envs: &[(&str, &str)]| {
        let output = Command::new(env!("CARGO_BIN_EXE_scoreboard"))
            .env_clear()
            .env("SCOREBOARD_DATA", data.path())
            .env("SCOREBOARD_ADDR", "127.0.0.1:0")
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        // What the process wrote anywhere: its errors and its log.
        let said = [output.stderr, output.stdout].concat();
        (output.status.code(), String::from_utf8_lossy(&said).to_string())
    };
    let (code, stderr) = run(&[]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("ACTION_KEYS is required"), "{stderr}");
    let keys = testkit::action_keys();
    let (code, stderr) = run(&[("ACTION_KEYS", &keys), ("DATABASE_URL", "postgres://nowhere/db")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("set both DATABASE_URL and NATS_URL"), "{stderr}");
    let (code, stderr) = run(&[("ACTION_KEYS", "k=short")]);
    assert_eq!(code, Some(2), "clap refuses the value");
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
    // A bad entry beside a good one: the refusal names the setting, never a secret.
    let secret = testkit::TEST_SECRET;
    for (name, value) in [("ACTION_KEYS", format!("{keys},k2=short")), ("ADMIN_TOKENS", format!("ops={secret},bob=sh"))]
    {
        let (code, stderr) = run(&[("ACTION_KEYS", &keys), (name, &value)]);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(stderr.contains(name) && stderr.contains("entry 2: a secret of"), "{name}: {stderr}");
        assert!(!stderr.contains(secret) && !stderr.contains("short,") && !stderr.contains("=sh"), "{name}: {stderr}");
    }
    let (code, stderr) = run(&[("ACTION_KEYS", &keys), ("SCOREBOARD_DEMO", "true")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("--demo refuses to run with ACTION_KEYS"), "{stderr}");
    let (code, stderr) = run(&[("RATE_LIMIT_PER_ADDRESS", "4000000000/s")]);
    assert_eq!(code, Some(2), "a limit that cannot be kept is not silently off");
    assert!(stderr.contains("faster than once a nanosecond"), "{stderr}");
}

#[test]
fn help_shows_no_secret() {
    let output = Command::new(env!("CARGO_BIN_EXE_scoreboard"))
        .arg("--help")
        .env("ACTION_KEYS", testkit::action_keys())
        .env("DATABASE_URL", "postgres://user:s3cr3t-of-the-database@db/scoreboard")
        .env("NATS_URL", "nats://user:s3cr3t-of-nats@nats:4222")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for secret in [testkit::action_keys().as_str(), "s3cr3t-of-the-database", "s3cr3t-of-nats"] {
        assert!(!help.contains(secret), "--help shows {secret}");
    }
}

//! The verifiable log from the outside: every leaf, tree head and proof the all-in-one serves,
//! checked by a verifier written in Python from RFC 9162 alone (`tests/rfc9162_verify.py`), and
//! the tiles it serves, read by Go's own tile client (`tests/tiles/verify.go`).

use std::time::Duration;

use serde_json::json;
use testkit::token;
use tlog::note::{NoteVerifier, Signer};

use crate::support::{settings, start, submit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proof_of_every_tree_up_to_64_events_verifies_with_an_independent_verifier() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = settings(data.path());
    settings.push(("RATE_LIMIT_READS_PER_ADDRESS", "off".into()));
    settings.push(("ADMIN_TOKENS", "ops=operator-secret-of-at-least-32-bytes!".into()));
    settings.push(("CHECKPOINT_INTERVAL", "100ms".into()));
    let scoreboard = start(&settings, &[]).await;
    let client = reqwest::Client::new();
    // 64 events of every type, some in the same group commit
    for round in 0..6 {
        let tokens: Vec<String> =
            (0..10).map(|i| token(&format!("p{}", (round * 10 + i) % 7), "complete_task")).collect();
        let answers = futures::future::join_all(tokens.iter().map(|t| submit(&client, &scoreboard.url, t))).await;
        assert!(answers.iter().all(|(status, _)| *status == 201));
    }
    for (path, body) in [
        ("/v1/admin/players/p1/ban", json!({"reason": "test"})),
        ("/v1/admin/players/p1/unban", json!({"reason": "test"})),
        ("/v1/admin/revocations", json!({"player_id": "p2", "reason": "test"})),
    ] {
        let response = client
            .post(format!("{}{path}", scoreboard.url))
            .bearer_auth("operator-secret-of-at-least-32-bytes!")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    assert_eq!(submit(&client, &scoreboard.url, &token("p3", "win_match")).await.0, 201);
    let signed = checkpoint_of(&client, &scoreboard.url, 64).await;
    assert!(signed.starts_with("scoreboard\n64\n"), "{signed}");

    let output = tokio::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rfc9162_verify.py"))
        .arg(&scoreboard.url)
        .output()
        .await
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{report}");
    assert!(report.contains("64 leaves") && report.contains("2080 inclusion and 2080 consistency"), "{report}");
    eprintln!("{report}");
    scoreboard.stop().await.unwrap();
}

/// The latest checkpoint once it covers `size` events, verified with the served key.
async fn checkpoint_of(client: &reqwest::Client, url: &str, size: u64) -> String {
    let key = client.get(format!("{url}/v1/audit/key")).send().await.unwrap().text().await.unwrap();
    let verifier = NoteVerifier::parse(&key).unwrap();
    testkit::eventually(Duration::from_secs(10), || async {
        let note = client.get(format!("{url}/v1/audit/checkpoint")).send().await.unwrap().text().await.unwrap();
        let text = verifier.open(&note).ok()?.to_string();
        (tlog::note::parse_checkpoint(&text).ok()?.1 == size).then_some(note)
    })
    .await
}

#[tokio::test]
async fn checkpoints_are_signed_as_the_log_grows_and_prove_its_events() {
    let data = tempfile::tempdir().unwrap();
    let signer = Signer::from_seed("scoreboard.example/log", [7; 32]).unwrap();
    let mut settings = settings(data.path());
    settings.push(("CHECKPOINT_INTERVAL", "100ms".into()));
    settings.push(("AUDIT_SIGNING_KEY", signer.to_private()));
    let scoreboard = start(&settings, &[]).await;
    let client = reqwest::Client::new();
    let (status, _) = crate::support::get(&client, &scoreboard.url, "/v1/audit/checkpoint").await;
    assert_eq!(status, 404, "nothing signed before the first event");
    for player in ["alice", "bob", "carol"] {
        assert_eq!(submit(&client, &scoreboard.url, &token(player, "complete_task")).await.0, 201);
    }
    // The key served is the one configured, and the checkpoint verifies with it
    let key = client.get(format!("{}/v1/audit/key", scoreboard.url)).send().await.unwrap().text().await.unwrap();
    assert_eq!(key.trim(), signer.verifier().to_string());
    let note = checkpoint_of(&client, &scoreboard.url, 3).await;
    let text = signer.verifier().open(&note).unwrap();
    let (origin, size, root) = tlog::note::parse_checkpoint(text).unwrap();
    assert_eq!((origin, size), ("scoreboard.example/log", 3));
    // An event's inclusion proof leads to the signed root
    let (_, page) = crate::support::get(&client, &scoreboard.url, "/v1/events?after=1&limit=1").await;
    let leaf: tlog::Hash = hex::decode(page["events"][0]["leaf_hash"].as_str().unwrap()).unwrap().try_into().unwrap();
    let (_, proof) =
        crate::support::get(&client, &scoreboard.url, "/v1/audit/proof/inclusion?position=2&tree_size=3").await;
    let path: Vec<tlog::Hash> = proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect();
    assert!(tlog::verify_inclusion(1, 3, &leaf, &path, &root));
    // A forged checkpoint does not verify
    let forged = note.replacen("\n3\n", "\n4\n", 1);
    assert!(signer.verifier().open(&forged).is_err());
    let other = Signer::from_seed("scoreboard.example/log", [8; 32]).unwrap();
    assert!(signer.verifier().open(&other.sign(text).unwrap()).is_err(), "signed by another key of the same name");
    scoreboard.stop().await.unwrap();
}

/// A log of 100 000 events, written straight into the embedded database in group commits of
/// 1 000 as the service would; then random proofs of the service, checked by the Python verifier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_proofs_of_a_log_of_100000_events_verify_with_an_independent_verifier() {
    use store::EventStore as _;
    let data = tempfile::tempdir().unwrap();
    {
        let (log, _) = store::sqlite::open(data.path()).await.unwrap();
        let recorded_at = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        for batch in 0..100u32 {
            let events: Vec<store::NewEvent> = (0..1000u32)
                .map(|i| {
                    let n = batch * 1000 + i;
                    let awarded = events::ScoreAwarded {
                        event_id: uuid::Uuid::now_v7(),
                        action_id: uuid::Uuid::new_v4(),
                        player_id: format!("player-{}", n % 5000).parse().unwrap(),
                        display_name: None,
                        action: "complete_task".parse().unwrap(),
                        points: events::Points::new(i64::from(n % 100 + 1)).unwrap(),
                        token_issued_at: recorded_at.unix_timestamp(),
                        key_id: testkit::TEST_KID.parse().unwrap(),
                        recorded_at,
                    };
                    store::NewEvent { event: events::Event::ScoreAwarded(awarded), claims_digest: None }
                })
                .collect();
            log.append(&events).await.unwrap();
        }
        assert_eq!(log.tree_size().await.unwrap(), 100_000);
    }
    let mut settings = settings(data.path());
    settings.push(("RATE_LIMIT_READS_PER_ADDRESS", "off".into()));
    settings.push(("CHECKPOINT_INTERVAL", "100ms".into()));
    let scoreboard = start(&settings, &[]).await;
    checkpoint_of(&reqwest::Client::new(), &scoreboard.url, 100_000).await;

    let output = tokio::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/rfc9162_verify.py"))
        .args([scoreboard.url.as_str(), "--random", "100"])
        .output()
        .await
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{report}");
    assert!(report.contains("100000 leaves") && report.contains("100 inclusion and 100 consistency"), "{report}");
    eprintln!("{report}");
    scoreboard.stop().await.unwrap();
}

#[tokio::test]
async fn a_graceful_stop_signs_a_checkpoint_of_every_append() {
    use store::EventStore as _;
    let data = tempfile::tempdir().unwrap();
    let mut settings = settings(data.path());
    settings.push(("CHECKPOINT_INTERVAL", "1h".into()));
    let scoreboard = start(&settings, &[]).await;
    let client = reqwest::Client::new();
    for player in ["alice", "bob"] {
        assert_eq!(submit(&client, &scoreboard.url, &token(player, "complete_task")).await.0, 201);
    }
    scoreboard.stop().await.unwrap();
    let (log, _) = store::sqlite::open(data.path()).await.unwrap();
    let latest = log.latest_checkpoint().await.unwrap().expect("a checkpoint was signed on the way out");
    assert_eq!(latest.tree_size, 2);
}

/// The log as C2SP tiles, read by a tile client nobody here wrote the library of: Go's
/// `golang.org/x/mod/sumdb/tlog` (`TileHashReader`, `CheckRecord`, `CheckTree`) and `sumdb/note`,
/// in `tests/tiles/verify.go`, which reads only `/checkpoint` and `/tile/…`, verifies every entry
/// and rebuilds every tile; then an entry edited in the database is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standard_tile_client_verifies_every_entry_from_the_tiles_alone() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = settings(data.path());
    settings.push(("RATE_LIMIT_READS_PER_ADDRESS", "off".into()));
    settings.push(("CHECKPOINT_INTERVAL", "100ms".into()));
    let scoreboard = start(&settings, &[]).await;
    let client = reqwest::Client::new();
    // 700 events in group commits of every size: two full tiles of leaves and a partial one
    for round in 0..14 {
        let tokens: Vec<String> =
            (0..50).map(|i| token(&format!("p{}", (round * 50 + i) % 97), "complete_task")).collect();
        let answers = futures::future::join_all(tokens.iter().map(|t| submit(&client, &scoreboard.url, t))).await;
        assert!(answers.iter().all(|(status, _)| *status == 201));
    }
    checkpoint_of(&client, &scoreboard.url, 700).await;
    let key = client.get(format!("{}/v1/audit/key", scoreboard.url)).send().await.unwrap().text().await.unwrap();
    let verify = build_tile_client().await;
    let run = |url: String| {
        let (verify, key) = (verify.clone(), key.trim().to_string());
        async move {
            let output =
                tokio::process::Command::new(verify).args(["-url", &url, "-vkey", &key]).output().await.unwrap();
            let report =
                format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            (output.status.success(), report)
        }
    };
    let (verified, report) = run(scoreboard.url.clone()).await;
    assert!(verified && report.contains("OK: 700 entries verified"), "{report}");
    eprintln!("{report}");

    // An attacker with the database edits one award's points
    let path = data.path().join(store::sqlite::FILE_NAME);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    for statement in [
        "DROP TRIGGER events_no_update",
        r#"UPDATE events SET payload = replace(payload, '"points":10', '"points":1000') WHERE position = 300"#,
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let (verified, report) = run(scoreboard.url.clone()).await;
    assert!(!verified && report.contains("entry 299"), "{report}");
    scoreboard.stop().await.unwrap();
}

/// Builds `tests/tiles/verify.go` with Debian's Go and its `golang.org/x/mod` (scripts/test
/// installs both).
async fn build_tile_client() -> std::path::PathBuf {
    let out = std::env::temp_dir().join(format!("scoreboard-tile-client-{}", std::process::id()));
    let built = tokio::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tiles/verify.go"))
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .output()
        .await
        .unwrap_or_else(|e| panic!("go: {e} (scripts/test installs Debian's golang-go and golang-golang-x-mod-dev)"));
    assert!(built.status.success(), "building the tile client: {}", String::from_utf8_lossy(&built.stderr));
    out
}

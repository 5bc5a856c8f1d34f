//! The verifiable log from the outside: every leaf, tree head and proof the all-in-one serves,
//! checked by a verifier written in Python from RFC 9162 alone (`tests/rfc9162_verify.py`).

use serde_json::json;
use testkit::token;

use crate::support::{settings, start, submit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proof_of_every_tree_up_to_64_events_verifies_with_an_independent_verifier() {
    let data = tempfile::tempdir().unwrap();
    let mut settings = settings(data.path());
    settings.push(("RATE_LIMIT_READS_PER_ADDRESS", "off".into()));
    settings.push(("ADMIN_TOKENS", "ops=operator-secret-of-at-least-32-bytes!".into()));
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

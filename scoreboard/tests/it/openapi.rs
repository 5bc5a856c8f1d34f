//! The OpenAPI description checked in under `docs/` is the one the code serves.

#[test]
fn the_checked_in_openapi_description_is_current() {
    testkit::assert_checked_in("docs/openapi.json", &platform::openapi::to_json(&scoreboard::api_description()));
}

/// Every OpenAPI document we publish is valid OpenAPI 3.1 by a validator nobody here wrote
/// (`openapi-spec-validator`): code generators refuse documents that are not (one operation id
/// used twice, say).
#[test]
fn every_published_description_is_valid_openapi_by_an_independent_validator() {
    let python_path = std::env::var("SCOREBOARD_SCHEMATHESIS_PYTHONPATH")
        .expect("SCOREBOARD_SCHEMATHESIS_PYTHONPATH is unset: run scripts/test, which installs openapi-spec-validator");
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs");
    for document in ["openapi.json", "openapi/command-svc.json", "openapi/query-svc.json"] {
        let output = std::process::Command::new("python3")
            .args(["-m", "openapi_spec_validator", &format!("{docs}/{document}")])
            .env("PYTHONPATH", &python_path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned();
        assert!(output.status.success(), "{document}: {said}");
    }
}

/// An operator's secret, sent with every request so that the moderation endpoints are driven
/// for real, not only refused.
const OPERATOR_SECRET: &str = "operator-secret-of-at-least-32-bytes!";

/// Drives every documented route of the all-in-one with schemathesis, a property-based client
/// that generates requests from the description (valid ones and ones that break it): no answer
/// may be a 5xx other than a documented `503` (see `tests/schemathesis.toml`), and none may
/// contradict the document (status, content type, headers, body).
/// The SSE streams are left out: their answers never end, and schemathesis reads answers whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_property_based_client_finds_no_error_and_no_answer_the_description_does_not_allow() {
    let python_path = std::env::var("SCOREBOARD_SCHEMATHESIS_PYTHONPATH")
        .expect("SCOREBOARD_SCHEMATHESIS_PYTHONPATH is unset: run scripts/test, which installs schemathesis");
    let data = tempfile::tempdir().unwrap();
    let mut settings = crate::support::settings(data.path());
    settings.push(("READ_YOUR_WRITES_TIMEOUT", "50ms".into()));
    settings.push(("RATE_LIMIT_READS_PER_ADDRESS", "off".into()));
    settings.push(("ADMIN_TOKENS", format!("ops={OPERATOR_SECRET}")));
    settings.push(("CHECKPOINT_INTERVAL", "200ms".into()));
    let server = crate::support::start(&settings, &[]).await;
    let client = reqwest::Client::new();
    for player in ["alice", "bob", "carol"] {
        let (status, _) = crate::support::submit(&client, &server.url, &testkit::token(player, "complete_task")).await;
        assert_eq!(status, 201);
    }

    let output = tokio::process::Command::new("python3")
        .args([
            "-m",
            "schemathesis.cli",
            "--config-file",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis.toml"),
        ])
        .args(["run", &format!("{}/openapi.json", server.url)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
            "--header",
            &format!("Authorization: Bearer {OPERATOR_SECRET}"),
            "--exclude-path",
            "/v1/leaderboard/stream",
            "--exclude-path",
            "/v1/boards/{board}/stream",
            "--max-examples",
            "40",
            "--request-timeout",
            "5",
            "--workers",
            "1",
        ])
        .current_dir(data.path())
        .env("PYTHONPATH", python_path)
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "schemathesis found problems:\n{report}");
    eprintln!("{}", &report[report.find("SUMMARY").unwrap_or(0)..]);
    // Every route but the two left out was selected and tested.
    let documented = platform::openapi::to_json(&scoreboard::api_description()).matches("\"operationId\"").count();
    assert!(report.contains(&format!("Tested: {}", documented - 2)), "not every route was tested:\n{report}");
    server.stop().await.unwrap();
}

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

/// A client generated from the all-in-one's own `/openapi.json` by a standard generator
/// (`openapi-python-client`, PyPI), and nothing else, submits reported scores and reads a board
/// of `best` runs, a board of friends, the global board and a closed season's results
/// (`tests/client.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_description_submits_and_reads_boards_and_results() {
    let python_path = std::env::var("SCOREBOARD_SCHEMATHESIS_PYTHONPATH")
        .expect("SCOREBOARD_SCHEMATHESIS_PYTHONPATH is unset: run scripts/test, which installs openapi-python-client");
    let data = tempfile::tempdir().unwrap();
    let boards = data.path().join("boards.toml");
    std::fs::write(
        &boards,
        "[boards.best-run]\nactions = [\"finish_run\"]\nseason = \"weekly\"\naggregate = \"best\"\n",
    )
    .unwrap();
    let mut settings = crate::support::settings(data.path());
    settings.push(("BOARDS", boards.display().to_string()));
    settings.push(("SEASON_GRACE", "1s".into()));
    settings.push(("CHECKPOINT_INTERVAL", "50ms".into()));
    let config: scoreboard::Config = testkit::config(&settings, &[]);
    let now = time::OffsetDateTime::now_utc();
    let clock = query_svc::live::SetClock::new(now);
    let shared = std::sync::Arc::new(clock.clone());
    let server =
        testkit::InProcess::start(|listener, stop| scoreboard::run_with_clock(config, shared, listener, stop)).await;
    testkit::wait_ready(&server.url).await;
    // Given the client generated from what the service describes
    let description = reqwest::get(format!("{}/openapi.json", server.url)).await.unwrap().text().await.unwrap();
    let generated = tempfile::tempdir().unwrap();
    std::fs::write(generated.path().join("openapi.json"), description).unwrap();
    std::fs::write(generated.path().join("config.yml"), "post_hooks: []\n").unwrap();
    let output = std::process::Command::new("python3")
        .args(["-m", "openapi_python_client", "generate", "--path", "openapi.json", "--meta", "none"])
        .args(["--config", "config.yml"])
        .current_dir(generated.path())
        .env("PYTHONPATH", &python_path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&[output.stdout, output.stderr].concat()).into_owned();
    assert!(output.status.success() && !said.contains("WARNING"), "the generator: {said}");
    let client = |args: &[&str]| -> serde_json::Value {
        let output = std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/client.py"))
            .args(args)
            .env("PYTHONPATH", format!("{}:{python_path}", generated.path().display()))
            .output()
            .unwrap();
        assert!(output.status.success(), "the generated client: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    // When it submits runs
    let run = |player: &str, score: i64| {
        testkit::sign(&events::ActionClaims { score: Some(score), ..testkit::claims(player, "finish_run") })
    };
    let tokens = [run("ann", 400), run("bob", 700), run("ann", 900), run("cat", 400)];
    let mut args = vec!["submit", server.url.as_str()];
    args.extend(tokens.iter().map(String::as_str));
    assert_eq!(client(&args), serde_json::json!({"positions": [1, 2, 3, 4]}));
    // And, once the week has closed and its results are published, reads the boards and results
    let week = events::boards::Season::of(events::boards::SeasonKind::Weekly, now);
    clock.set(week.ends_at().unwrap() + time::Duration::seconds(2));
    let results = format!("/v1/boards/best-run/seasons/{week}/results");
    testkit::eventually(std::time::Duration::from_secs(20), || async {
        (testkit::get_json(&reqwest::Client::new(), &server.url, &results).await.0 == 200).then_some(())
    })
    .await;
    let week = week.to_string();
    // Then it read what the service holds, through the types it generated
    assert_eq!(
        client(&["read", server.url.as_str(), &week]),
        serde_json::json!({
            "boards": {"global": "sum", "best-run": "best"},
            "best": [[1, "ann", 900], [2, "bob", 700], [3, "cat", 400]],
            "friends": [[2, "bob", 700], [3, "cat", 400]],
            "friends_total": 3,
            "top": [[1, "ann", 1300], [2, "bob", 700]],
            "results": {
                "version": 1,
                "final_position": 4,
                "signed": true,
                "entries": [[1, "ann", 900], [2, "bob", 700], [3, "cat", 400]],
            },
        })
    );
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

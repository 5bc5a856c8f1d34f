//! The shipped nats-server configuration (`config/nats-server.conf`): the services work with
//! their credentials, and nobody else can publish on Scoreboard's subjects or manage its stream.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream;
use testkit::{InProcess, NatsServer, TestDb, TestStream};

use crate::forgery::forged_award;
use crate::support::{get, ranking};

const SERVICE_PASSWORD: &str = "service-password-for-this-test";
const READER_PASSWORD: &str = "reader-password-for-this-test";

#[tokio::test]
async fn under_the_shipped_nats_configuration_only_scoreboard_publishes() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/nats-server.conf");
    let nats = NatsServer::with_config(
        &config,
        &[
            ("SCOREBOARD_NATS_PASSWORD", SERVICE_PASSWORD),
            ("READER_NATS_PASSWORD", READER_PASSWORD),
            ("REWARDS_NATS_PASSWORD", "rewards-password-for-this-test"),
        ],
    )
    .await;
    let db = TestDb::new().await;
    let stream = TestStream::defaults(&nats.url());
    let mut settings = testkit::command_settings(&db.url, &stream);
    settings.extend([("NATS_USER", "scoreboard".to_string()), ("NATS_PASSWORD", SERVICE_PASSWORD.to_string())]);
    let read_settings: Vec<_> =
        settings.iter().filter(|(k, _)| !k.starts_with("ACTION") && !k.starts_with("RATE")).cloned().collect();
    let command: command_svc::Config = testkit::config(&settings, &[]);
    let command = InProcess::start(|listener, stop| command_svc::run(command, listener, stop)).await;
    let projector: projector::Config = testkit::config(&read_settings, &[]);
    let projector = InProcess::start(|listener, stop| projector::run(projector, listener, stop)).await;
    let query: query_svc::Config = testkit::config(&read_settings, &[]);
    let query = InProcess::start(|listener, stop| query_svc::run(query, listener, stop)).await;
    let client = reqwest::Client::new();
    let submit = async |player: &str| -> u64 {
        let response = client
            .post(format!("{}/v1/actions", command.url))
            .json(&serde_json::json!({ "token": testkit::token(player, "win_match") }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json::<serde_json::Value>().await.unwrap()["position"].as_u64().unwrap()
    };
    let position = submit("alice").await;
    assert_eq!(get(&client, &query.url, &format!("/v1/leaderboard?min_position={position}")).await.0, 200);

    // Someone with the reader's credentials tries to forge an award, an announcement, and to
    // delete the stream; someone without credentials cannot even connect.
    let reader = async_nats::ConnectOptions::with_user_and_password("reader".into(), READER_PASSWORD.into())
        .connect(nats.url())
        .await
        .unwrap();
    let forged = forged_award("mallory");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Scoreboard-Position", (position + 1).to_string().as_str());
    headers.insert("Scoreboard-Event-Type", "ScoreAwarded");
    headers.insert("Scoreboard-Event-Version", "1");
    reader.publish_with_headers("scoreboard.events.ScoreAwarded", headers, forged.encode().into()).await.unwrap();
    reader.publish("scoreboard.leaderboard.changes", u64::MAX.to_string().into()).await.unwrap();
    reader.flush().await.unwrap();
    // Denied: the request gets no answer (or an error); the stream is still there below.
    let deleted =
        tokio::time::timeout(Duration::from_secs(1), jetstream::new(reader.clone()).delete_stream("SCOREBOARD_EVENTS"))
            .await;
    assert!(!matches!(deleted, Ok(Ok(_))), "a reader cannot delete the stream");
    let anonymous =
        async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(2)).connect(nats.url()).await;
    assert!(anonymous.is_err(), "no credentials, no connection");

    let last = submit("bob").await;
    let (status, board) = get(&client, &query.url, &format!("/v1/leaderboard?min_position={last}")).await;
    assert_eq!(status, 200);
    assert_eq!(ranking(&board), [(1, "alice".into(), 100), (2, "bob".into(), 100)]);
    let service = async_nats::ConnectOptions::with_user_and_password("scoreboard".into(), SERVICE_PASSWORD.into())
        .connect(nats.url())
        .await
        .unwrap();
    let mut events = jetstream::new(service).get_stream("SCOREBOARD_EVENTS").await.unwrap();
    assert_eq!(events.info().await.unwrap().state.messages, 2, "only the relay's messages are in the stream");
    for service in [query, projector, command] {
        service.stop().await.unwrap();
    }
}

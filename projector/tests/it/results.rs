//! Season results reach JetStream: the projector publishes a closed day's results and sends
//! each version once to `<NATS_STREAM>_RESULTS`, on `<NATS_RESULTS_SUBJECT>.<board>` with a
//! `Nats-Msg-Id` per board, season and version, for a rewards service to consume.

use std::time::Duration;

use events::boards::{Season, SeasonKind};
use store::{EventStore as _, NewEvent, PgEventLog};
use testkit::{InProcess, TestDb, TestStream};
use time::OffsetDateTime;

fn award(player: &str, points: i64, at: OffsetDateTime) -> NewEvent {
    NewEvent { event: testkit::award(player, "complete_task", points, at), claims_digest: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_days_results_are_sent_to_jetstream_once_per_version() {
    let (db, stream) = (TestDb::new().await, TestStream::new());
    // Given a day two days ago with actions in the log (as appended then)
    let day = OffsetDateTime::now_utc() - time::Duration::days(2);
    let log = PgEventLog::new(db.pool().await);
    store::postgres::MIGRATOR.run(&db.pool().await).await.unwrap();
    log.append(&[award("ann", 30, day), award("bob", 50, day), award("ann", 40, day)]).await.unwrap();
    // And so many other players that the day's results take two messages
    let others: Vec<NewEvent> = (0..2_500).map(|i| award(&format!("p{i:04}"), 1, day)).collect();
    log.append(&others).await.unwrap();
    // And the write path (relaying the log, signing checkpoints) and the projector folding the
    // shipped example boards (`daily` among them)
    let mut settings = testkit::command_settings(&db.url, &stream);
    settings.push(("CHECKPOINT_INTERVAL", "100ms".into()));
    let command: command_svc::Config = testkit::config(&settings, &[]);
    let _command = InProcess::start(|listener, stop| command_svc::run(command, listener, stop)).await;
    let mut settings = testkit::settings(&db.url, &stream);
    settings.push(("BOARDS", concat!(env!("CARGO_MANIFEST_DIR"), "/../config/boards.example.toml").into()));
    settings.push(("SEASON_GRACE", "1s".into()));
    let config: projector::Config = testkit::config(&settings, &[]);
    let _projector = InProcess::start(|listener, stop| projector::run(config, listener, stop)).await;

    // Then the day's results arrive on the results stream, once (waiting for the three messages
    // below: the first can be read before the others are sent)
    let sent = testkit::eventually(Duration::from_secs(30), || async {
        let sent = stream.results().await;
        (sent.iter().filter(|m| m.subject.ends_with(".daily")).count() >= 3).then_some(sent)
    })
    .await;
    let season = Season::of(SeasonKind::Daily, day);
    let subject = format!("{}.daily", stream.results_subject);
    let ids: Vec<&str> = sent.iter().filter(|m| m.subject == subject).map(|m| m.message_id.as_str()).collect();
    // That day's, and the next day's, which closed too (nobody played: its results are empty)
    let next = season.next().unwrap();
    assert_eq!(ids, [format!("daily/{season}/1/1"), format!("daily/{season}/1/2"), format!("daily/{next}/1/1")]);
    let daily: Vec<_> = sent.iter().filter(|m| m.subject == subject).collect();
    let results: events::results::Published = serde_json::from_slice(&daily[0].payload).unwrap();
    assert_eq!(
        (results.board.as_str(), results.season.as_str(), results.version),
        ("daily", season.to_string().as_str(), 1)
    );
    let rows: Vec<(u64, &str, u64)> = results.entries.iter().map(|p| (p.rank, p.player_id.as_str(), p.score)).collect();
    assert_eq!(rows[..3], [(1, "ann", 70), (2, "bob", 50), (3, "p0000", 1)]);
    assert_eq!((results.entries.len(), results.total_players), (2_000, 2_502));
    assert_eq!(results.final_position, 2_503);
    assert!(results.checkpoint.tree_size >= 2_503 && results.checkpoint.note.contains("\n— "), "{results:?}");
    let rest: events::results::Published = serde_json::from_slice(&daily[1].payload).unwrap();
    let ranks: Vec<u64> = rest.entries.iter().map(|p| p.rank).collect();
    assert_eq!(ranks, (2_001..=2_502).collect::<Vec<_>>(), "the second part goes on where the first ends");
    let empty: events::results::Published = serde_json::from_slice(&daily[2].payload).unwrap();
    assert_eq!((empty.entries.len(), empty.total_players), (0, 0));
    // And every version sent is marked so in the read model: none is sent again
    let read_model = store::PgLeaderboard::new(db.pool().await);
    testkit::eventually(Duration::from_secs(10), || async {
        use store::LeaderboardStore as _;
        read_model.unrelayed_results().await.unwrap().is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_shipped_nats_configuration_a_rewards_service_reads_results_and_nothing_else() {
    const SERVICE: &str = "service-password-for-this-test";
    const REWARDS: &str = "rewards-password-for-this-test";
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/nats-server.conf");
    let nats = testkit::NatsServer::with_config(
        &config,
        &[
            ("SCOREBOARD_NATS_PASSWORD", SERVICE),
            ("READER_NATS_PASSWORD", "reader"),
            ("REWARDS_NATS_PASSWORD", REWARDS),
        ],
    )
    .await;
    let db = TestDb::new().await;
    let stream = TestStream::defaults(&nats.url());
    // Given a day two days ago in the log, and the services running as the `scoreboard` user
    let day = OffsetDateTime::now_utc() - time::Duration::days(2);
    store::postgres::MIGRATOR.run(&db.pool().await).await.unwrap();
    PgEventLog::new(db.pool().await).append(&[award("ann", 30, day)]).await.unwrap();
    let user = [("NATS_USER", "scoreboard".to_string()), ("NATS_PASSWORD", SERVICE.to_string())];
    let mut settings = testkit::command_settings(&db.url, &stream);
    settings.extend(user.clone());
    settings.push(("CHECKPOINT_INTERVAL", "100ms".into()));
    let command: command_svc::Config = testkit::config(&settings, &[]);
    let _command = InProcess::start(|listener, stop| command_svc::run(command, listener, stop)).await;
    let mut settings = testkit::settings(&db.url, &stream);
    settings.extend(user);
    settings.push(("BOARDS", concat!(env!("CARGO_MANIFEST_DIR"), "/../config/boards.example.toml").into()));
    settings.push(("SEASON_GRACE", "1s".into()));
    let config: projector::Config = testkit::config(&settings, &[]);
    let _projector = InProcess::start(|listener, stop| projector::run(config, listener, stop)).await;

    // When a rewards service connects with its own credentials
    let rewards = async_nats::ConnectOptions::with_user_and_password("rewards".into(), REWARDS.into())
        .connect(nats.url())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(rewards);
    // Then it reads the day's results with a consumer of its own
    let subject = "scoreboard.results.daily".to_string();
    let message_id = testkit::eventually(Duration::from_secs(30), || async {
        let results = js.get_stream("SCOREBOARD_EVENTS_RESULTS").await.ok()?;
        let consumer = results
            .create_consumer(async_nats::jetstream::consumer::pull::Config {
                filter_subject: subject.clone(),
                ..Default::default()
            })
            .await
            .ok()?;
        let mut batch = consumer.fetch().max_messages(1).expires(Duration::from_secs(1)).messages().await.ok()?;
        use futures::StreamExt as _;
        let message = batch.next().await?.ok()?;
        message.ack().await.ok()?;
        message.headers.as_ref()?.get("Nats-Msg-Id").map(|id| id.to_string())
    })
    .await;
    assert_eq!(message_id, format!("daily/{}/1/1", Season::of(SeasonKind::Daily, day)));
    // And nothing else: not the log's stream, not a subject of the services
    let events = tokio::time::timeout(Duration::from_secs(1), js.get_stream("SCOREBOARD_EVENTS")).await;
    assert!(!matches!(events, Ok(Ok(_))), "the rewards service cannot read the log's stream");
    let deleted = tokio::time::timeout(Duration::from_secs(1), js.delete_stream("SCOREBOARD_EVENTS_RESULTS")).await;
    assert!(!matches!(deleted, Ok(Ok(_))), "nor delete the results");
}

//! The conformance suite of the two back ends: every case runs against PostgreSQL and against
//! SQLite, so the embedded default keeps exactly the promises of the distributed deployment.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use events::{Board, Event, Points, RecordedEvent, ScoreAwarded};
use futures::future::join_all;
use store::{Anchor, AppendOutcome, Changes, Claim, EventStore, LeaderboardStore, NewEvent};
use uuid::Uuid;

/// A database to test: open (or reopen) its stores, and run raw SQL on it.
trait Backend {
    type Log: EventStore;
    type ReadModel: LeaderboardStore;
    async fn open(&self) -> (Self::Log, Self::ReadModel);
    async fn execute(&self, sql: &'static str) -> Result<(), String>;

    /// Empties the Merkle tree (its tiles) as a log written before it existed would have it.
    async fn forget_tree(&self);

    /// `read_model`, snapshotting every `interval` positions and flagging by `rules`.
    fn folding(read_model: Self::ReadModel, interval: u64, rules: events::anomaly::Rules) -> Self::ReadModel;

    /// `read_model`, folding into `boards` too.
    fn boards(read_model: Self::ReadModel, boards: events::boards::BoardDefs) -> Self::ReadModel;

    /// Rebuilds `read_model` from the log, `batch` events a change row.
    fn rebuild(
        read_model: Self::ReadModel,
        batch: u32,
    ) -> impl Future<Output = Result<store::Rebuilt, store::StoreError>> + Send + 'static;
}

struct Postgres(testkit::TestDb);

impl Postgres {
    async fn new() -> Self {
        Self(testkit::TestDb::new().await)
    }
}

impl Backend for Postgres {
    type Log = store::PgEventLog;
    type ReadModel = store::PgLeaderboard;

    async fn open(&self) -> (Self::Log, Self::ReadModel) {
        let pool = self.0.pool().await;
        store::postgres::MIGRATOR.run(&pool).await.unwrap();
        (store::PgEventLog::new(pool.clone()), store::PgLeaderboard::new(pool))
    }

    async fn execute(&self, sql: &'static str) -> Result<(), String> {
        sqlx::query(sql).execute(&self.0.pool().await).await.map(drop).map_err(|e| e.to_string())
    }

    async fn forget_tree(&self) {
        self.execute("ALTER TABLE tiles DISABLE TRIGGER tiles_only_grow").await.unwrap();
        self.execute("DELETE FROM tiles").await.unwrap();
        self.execute("UPDATE event_log_head SET tree_size = 0").await.unwrap();
    }

    fn folding(read_model: Self::ReadModel, interval: u64, rules: events::anomaly::Rules) -> Self::ReadModel {
        read_model.folding(interval, rules)
    }

    fn boards(read_model: Self::ReadModel, boards: events::boards::BoardDefs) -> Self::ReadModel {
        read_model.boards(boards)
    }

    async fn rebuild(read_model: Self::ReadModel, batch: u32) -> Result<store::Rebuilt, store::StoreError> {
        read_model.rebuild(batch, |_| {}).await
    }
}

struct Sqlite(tempfile::TempDir);

impl Sqlite {
    async fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }
}

impl Backend for Sqlite {
    type Log = store::SqliteEventLog;
    type ReadModel = store::SqliteLeaderboard;

    async fn open(&self) -> (Self::Log, Self::ReadModel) {
        store::sqlite::open(self.0.path()).await.unwrap()
    }

    async fn execute(&self, sql: &'static str) -> Result<(), String> {
        let path = self.0.path().join(store::sqlite::FILE_NAME);
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
        sqlx::query(sql).execute(&pool).await.map(drop).map_err(|e| e.to_string())
    }

    async fn forget_tree(&self) {
        self.execute("DROP TRIGGER tiles_no_delete").await.unwrap();
        self.execute("DELETE FROM tiles").await.unwrap();
        self.execute("UPDATE event_log_head SET tree_size = 0").await.unwrap();
    }

    fn folding(read_model: Self::ReadModel, interval: u64, rules: events::anomaly::Rules) -> Self::ReadModel {
        read_model.folding(interval, rules)
    }

    fn boards(read_model: Self::ReadModel, boards: events::boards::BoardDefs) -> Self::ReadModel {
        read_model.boards(boards)
    }

    async fn rebuild(read_model: Self::ReadModel, batch: u32) -> Result<store::Rebuilt, store::StoreError> {
        read_model.rebuild(batch, |_| {}).await
    }
}

fn awarded(player: &str, action_id: Uuid, points: i64) -> NewEvent {
    NewEvent {
        event: Event::ScoreAwarded(ScoreAwarded {
            event_id: Uuid::now_v7(),
            action_id,
            player_id: player.parse().unwrap(),
            display_name: Some(format!("Player {player}").parse().unwrap()),
            action: "complete_task".parse().unwrap(),
            points: Points::new(points).unwrap(),
            token_issued_at: 1_767_225_600,
            key_id: "k1".parse().unwrap(),
            recorded_at: time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
        }),
        claims_digest: Some([points as u8; 32]),
    }
}

fn appended_position(outcome: &AppendOutcome) -> u64 {
    match outcome {
        AppendOutcome::Appended(RecordedEvent { position, .. }) => *position,
        other => panic!("expected Appended, got {other:?}"),
    }
}

async fn positions<S: EventStore>(log: &S) -> Vec<u64> {
    log.read_after(0, 100_000).await.unwrap().iter().map(|e| e.position).collect()
}

async fn a_batch_gets_the_next_dense_positions(backend: impl Backend) {
    let (log, _) = backend.open().await;
    let first = log.append(&[awarded("a", Uuid::new_v4(), 1), awarded("b", Uuid::new_v4(), 2)]).await.unwrap();
    let second = log.append(&[awarded("c", Uuid::new_v4(), 3)]).await.unwrap();
    let appended: Vec<u64> = first.iter().chain(&second).map(appended_position).collect();
    assert_eq!(appended, [1, 2, 3]);
    assert_eq!(log.head().await.unwrap(), 3);
    assert_eq!(positions(&log).await, [1, 2, 3]);
}

async fn a_repeated_action_id_in_one_batch_is_appended_once(backend: impl Backend) {
    let (log, _) = backend.open().await;
    let action_id = Uuid::new_v4();
    let retry = awarded("a", action_id, 5);
    let conflicting = awarded("a", action_id, 7);
    let outcomes = log.append(&[retry.clone(), awarded("b", Uuid::new_v4(), 1), retry, conflicting]).await.unwrap();
    assert_eq!(appended_position(&outcomes[0]), 1);
    assert_eq!(appended_position(&outcomes[1]), 2);
    assert!(
        matches!(&outcomes[2], AppendOutcome::AlreadyRecorded { original, same_claims: true } if original.position == 1)
    );
    assert!(
        matches!(&outcomes[3], AppendOutcome::AlreadyRecorded { original, same_claims: false } if original.position == 1)
    );
    assert_eq!(log.head().await.unwrap(), 2);
}

async fn an_action_id_already_in_the_log_is_answered_with_the_original(backend: impl Backend) {
    let (log, _) = backend.open().await;
    let recorded = Uuid::new_v4();
    let original = awarded("a", recorded, 5);
    log.append(std::slice::from_ref(&original)).await.unwrap();
    let mut conflicting = awarded("a", recorded, 5);
    conflicting.claims_digest = Some([0xFF; 32]);
    let outcomes = log
        .append(&[
            awarded("b", Uuid::new_v4(), 1),
            awarded("a", recorded, 5),
            awarded("c", Uuid::new_v4(), 1),
            conflicting,
        ])
        .await
        .unwrap();
    assert_eq!(appended_position(&outcomes[0]), 2);
    match &outcomes[1] {
        AppendOutcome::AlreadyRecorded { original: first, same_claims: true } => {
            assert_eq!(first.position, 1);
            assert_eq!(first.event, original.event, "the original event, as recorded");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(appended_position(&outcomes[2]), 3, "no gap where the duplicate was");
    assert!(matches!(&outcomes[3], AppendOutcome::AlreadyRecorded { same_claims: false, .. }));
    assert_eq!(positions(&log).await, [1, 2, 3]);
}

async fn concurrent_appenders_leave_no_gaps_and_no_duplicates(backend: impl Backend) {
    let (log, _) = backend.open().await;
    let shared: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    // 8 appenders, each appending the same 50 action ids plus 50 of its own, in batches of 10.
    let appenders = (0..8).map(|_| {
        let (log, shared) = (log.clone(), shared.clone());
        async move {
            let mut events: Vec<NewEvent> = shared.iter().map(|id| awarded("s", *id, 1)).collect();
            events.extend((0..50).map(|_| awarded("o", Uuid::new_v4(), 1)));
            for batch in events.chunks(10) {
                log.append(batch).await.unwrap();
            }
        }
    });
    join_all(appenders).await;
    let expected: Vec<u64> = (1..=50 + 8 * 50).collect();
    assert_eq!(positions(&log).await, expected);
    assert_eq!(log.head().await.unwrap(), expected.len() as u64);
}

async fn events_read_back_exactly_as_written_by_position(backend: impl Backend) {
    let (log, _) = backend.open().await;
    let alice = awarded("alice", Uuid::new_v4(), 9);
    log.append(std::slice::from_ref(&alice)).await.unwrap();
    log.append(&[awarded("bob", Uuid::new_v4(), 1), awarded("alice", Uuid::new_v4(), 2)]).await.unwrap();
    let stored = log.read_after(0, 10).await.unwrap();
    assert_eq!(stored[0].payload, alice.event.encode(), "payload bytes are kept exactly");
    assert_eq!(stored[0].event_id, alice.event.event_id());
    assert_eq!(stored[0].decode().unwrap().event, alice.event);
    assert_eq!(log.read_after(1, 1).await.unwrap()[0].position, 2, "after and limit");
    assert!(log.read_after(3, 10).await.unwrap().is_empty());
    let of_alice: Vec<u64> = log.read_player("alice", 0, 10).await.unwrap().iter().map(|e| e.position).collect();
    assert_eq!(of_alice, [1, 3]);
    assert_eq!(log.read_player("alice", 1, 10).await.unwrap().len(), 1);
}

async fn the_log_refuses_updates_and_deletes(backend: impl Backend) {
    let (log, _) = backend.open().await;
    log.append(&[awarded("a", Uuid::new_v4(), 1)]).await.unwrap();
    for statement in ["UPDATE events SET player_id = 'mallory'", "DELETE FROM events"] {
        let error = backend.execute(statement).await.unwrap_err();
        assert!(error.contains("append-only"), "{statement}: {error}");
    }
    assert_eq!(positions(&log).await, [1]);
}

async fn acknowledged_events_survive_reopening(backend: impl Backend) {
    {
        let (log, _) = backend.open().await;
        log.append(&[awarded("a", Uuid::new_v4(), 1), awarded("b", Uuid::new_v4(), 2)]).await.unwrap();
    }
    let (log, _) = backend.open().await;
    assert_eq!(positions(&log).await, [1, 2]);
    assert_eq!(appended_position(&log.append(&[awarded("c", Uuid::new_v4(), 3)]).await.unwrap()[0]), 3);
}

async fn the_read_model_folds_each_event_exactly_once(backend: impl Backend) {
    let (log, read_model) = backend.open().await;
    let batch: Vec<NewEvent> = (0..30).map(|i| awarded(&format!("p{}", i % 4), Uuid::new_v4(), i % 5 + 1)).collect();
    log.append(&batch).await.unwrap();
    let stored = log.read_after(0, 100).await.unwrap();
    let claims: Vec<Claim> = stored.iter().map(Claim::from).collect();

    // Delivered out of order, with redeliveries and a gap: the log fills the gap.
    let first = read_model.fold_claimed(&[claims[1].clone(), claims[0].clone(), claims[1].clone()]).await.unwrap();
    assert_eq!((first.from, first.to, first.skipped), (0, 2, 0));
    let gap = read_model.fold_claimed(&[claims[0].clone(), claims[4].clone()]).await.unwrap();
    assert_eq!((gap.from, gap.to, gap.skipped), (2, 5, 1), "positions 3 and 4 come from the log");
    let nothing = read_model.fold_claimed(&claims[..5]).await.unwrap();
    assert_eq!((nothing.from, nothing.to, nothing.skipped), (5, 5, 5));
    let next = read_model.fold_next(10).await.unwrap();
    assert_eq!((next.from, next.to), (5, 15));
    let rest = read_model.fold_claimed(&claims).await.unwrap();
    assert_eq!((rest.from, rest.to, rest.skipped, rest.forged.len()), (15, 30, 15, 0));
    assert_eq!(read_model.fold_next(10).await.unwrap().to, 30, "nothing more in the log");

    let mut expected = Board::new();
    stored.iter().for_each(|e| expected.apply(&e.decode().unwrap()));
    let board = read_model.load().await.unwrap().0;
    assert_eq!(board.position(), 30);
    assert_eq!(ranking(&board), ranking(&expected), "the read model is the fold of the log");
}

async fn claims_the_log_contradicts_are_never_folded(backend: impl Backend) {
    let (log, read_model) = backend.open().await;
    log.append(&[awarded("alice", Uuid::new_v4(), 25), awarded("bob", Uuid::new_v4(), 10)]).await.unwrap();
    let stored = log.read_after(0, 10).await.unwrap();
    let mut inflated = Claim::from(&stored[0]);
    inflated.payload = stored[0].payload.replace("25", "1000000").into_bytes();
    let mut ahead = Claim::from(&stored[1]);
    ahead.position = 1_000_000;
    let mut next = Claim::from(&stored[1]);
    next.position = 3;

    let applied = read_model.fold_claimed(&[inflated, ahead, next]).await.unwrap();
    assert_eq!((applied.to, applied.forged.clone()), (0, vec![1, 1_000_000, 3]), "nothing the log does not hold");
    let applied = read_model.fold_claimed(&[Claim::from(&stored[1])]).await.unwrap();
    assert_eq!((applied.to, applied.forged.len()), (2, 0), "the true message folds the log's events");
    let board = read_model.load().await.unwrap().0;
    assert_eq!(board.standing("alice").unwrap().score, 25);
    assert_eq!(board.standing("bob").unwrap().score, 10);
}

async fn changes_since_a_position_are_what_the_folds_after_it_touched(backend: impl Backend) {
    let (log, read_model) = backend.open().await;
    log.append(&[awarded("a", Uuid::new_v4(), 1), awarded("b", Uuid::new_v4(), 2)]).await.unwrap();
    read_model.fold_next(100).await.unwrap();
    log.append(&[awarded("b", Uuid::new_v4(), 3), awarded("c", Uuid::new_v4(), 4)]).await.unwrap();
    read_model.fold_next(100).await.unwrap();

    let at_two = log.read_after(1, 1).await.unwrap()[0].event_id;
    let since = Anchor { position: 2, event_id: Some(at_two), generation: 0 };
    let Changes { change, anchor, .. } = read_model.changes_since(since).await.unwrap().unwrap();
    let mut touched: Vec<(String, u64)> = change.standings.iter().map(|s| (s.player_id.to_string(), s.score)).collect();
    touched.sort();
    assert_eq!((change.from, change.to), (2, 4));
    assert_eq!(touched, [("b".to_string(), 5), ("c".to_string(), 4)]);
    assert_eq!(
        anchor,
        Anchor { position: 4, event_id: Some(log.read_after(3, 1).await.unwrap()[0].event_id), generation: 0 }
    );
    let mut board = Board::from_standings(2, [read_model.load().await.unwrap().0.standing("a").unwrap().clone()]);
    board.apply_change(&change).unwrap();
    assert_eq!(ranking(&board), ranking(&read_model.load().await.unwrap().0));
    assert!(read_model.changes_since(anchor).await.unwrap().unwrap().change.standings.is_empty());
    let unknown = Anchor { position: 2, event_id: None, generation: 0 };
    assert_eq!(read_model.changes_since(unknown).await.unwrap().unwrap().anchor, anchor, "an anchor learnt");
    let behind = Anchor { position: 9, event_id: None, generation: 0 };
    assert_eq!(read_model.changes_since(behind).await.unwrap(), None, "the read model is behind position 9");
    let other_history = Anchor { position: 2, event_id: Some(Uuid::new_v4()), generation: 0 };
    assert_eq!(read_model.changes_since(other_history).await.unwrap(), None, "another event at position 2");
}

fn moderation(player: &str, ban: bool) -> NewEvent {
    let moderated = events::Moderated {
        event_id: Uuid::now_v7(),
        player_id: player.parse().unwrap(),
        operator: "ops".parse().unwrap(),
        reason: "conformance".parse().unwrap(),
        recorded_at: time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
    };
    let event = if ban { Event::PlayerBanned(moderated) } else { Event::PlayerUnbanned(moderated) };
    NewEvent { event, claims_digest: None }
}

async fn a_ban_refuses_the_awards_after_it_in_append_order_and_hides_the_player(backend: impl Backend) {
    let (log, read_model) = backend.open().await;
    // Given alice and bob scored
    log.append(&[awarded("alice", Uuid::new_v4(), 50), awarded("bob", Uuid::new_v4(), 20)]).await.unwrap();
    // When one batch holds an award for alice, her ban, another award for her, and a second ban
    let batch = [
        awarded("alice", Uuid::new_v4(), 5),
        moderation("alice", true),
        awarded("alice", Uuid::new_v4(), 7),
        moderation("alice", true),
        moderation("bob", false),
        awarded("bob", Uuid::new_v4(), 1),
    ];
    let outcomes = log.append(&batch).await.unwrap();
    // Then what came before the ban counts, what came after it is refused and takes no position
    assert_eq!(appended_position(&outcomes[0]), 3);
    assert_eq!(appended_position(&outcomes[1]), 4);
    assert_eq!(outcomes[2], AppendOutcome::Refused(store::Refusal::PlayerBanned));
    assert_eq!(outcomes[3], AppendOutcome::Refused(store::Refusal::AlreadyBanned));
    assert_eq!(outcomes[4], AppendOutcome::Refused(store::Refusal::NotBanned));
    assert_eq!(appended_position(&outcomes[5]), 5);
    // And a later batch still finds her banned
    let later = log.append(&[awarded("alice", Uuid::new_v4(), 9)]).await.unwrap();
    assert_eq!(later[0], AppendOutcome::Refused(store::Refusal::PlayerBanned));
    assert_eq!(positions(&log).await, [1, 2, 3, 4, 5]);
    // And the read model holds her score but puts her on no board
    read_model.fold_next(100).await.unwrap();
    let board = read_model.load().await.unwrap().0;
    assert_eq!(board.len(), 1);
    assert!(board.ranked("alice").is_none());
    assert_eq!(board.held_standing("alice").map(|s| (s.score, s.banned)), Some((55, true)));
    // Until she is unbanned, with her score back
    let unban = log.append(&[moderation("alice", false), awarded("alice", Uuid::new_v4(), 1)]).await.unwrap();
    assert_eq!(unban.iter().map(appended_position).collect::<Vec<_>>(), [6, 7]);
    read_model.fold_next(100).await.unwrap();
    let board = read_model.load().await.unwrap().0;
    assert_eq!(board.ranked("alice").map(|r| (r.rank, r.standing.score)), Some((1, 56)));
}

fn revocation(player: &str, award: Option<(&NewEvent, u64)>) -> NewEvent {
    let award = award.map(|(new, position)| {
        let Event::ScoreAwarded(awarded) = &new.event else { panic!("not an award") };
        events::RevokedAward { event_id: awarded.event_id, position, points: awarded.points }
    });
    let revoked = events::ScoreRevoked {
        event_id: Uuid::now_v7(),
        player_id: player.parse().unwrap(),
        award,
        operator: "ops".parse().unwrap(),
        reason: "conformance".parse().unwrap(),
        recorded_at: time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
    };
    NewEvent { event: Event::ScoreRevoked(revoked), claims_digest: None }
}

async fn an_award_is_taken_back_once_and_all_of_a_players_points_at_most_up_to_then(backend: impl Backend) {
    let (log, read_model) = backend.open().await;
    let (first, second) = (awarded("alice", Uuid::new_v4(), 50), awarded("alice", Uuid::new_v4(), 30));
    log.append(&[first.clone(), second.clone(), awarded("bob", Uuid::new_v4(), 20)]).await.unwrap();
    // Taking back the first award twice in one batch: once
    let outcomes =
        log.append(&[revocation("alice", Some((&first, 1))), revocation("alice", Some((&first, 1)))]).await.unwrap();
    assert_eq!(appended_position(&outcomes[0]), 4);
    assert_eq!(outcomes[1], AppendOutcome::Refused(store::Refusal::AlreadyRevoked));
    read_model.fold_next(100).await.unwrap();
    let board = read_model.load().await.unwrap().0;
    assert_eq!(board.ranked("alice").map(|r| (r.rank, r.standing.score)), Some((1, 30)));
    // All of her points, then the second award: already taken back with the rest
    let outcomes = log.append(&[revocation("alice", None), revocation("alice", Some((&second, 2)))]).await.unwrap();
    assert_eq!(appended_position(&outcomes[0]), 5);
    assert_eq!(outcomes[1], AppendOutcome::Refused(store::Refusal::AlreadyRevoked));
    let again = log.append(&[revocation("alice", Some((&second, 2)))]).await.unwrap();
    assert_eq!(again[0], AppendOutcome::Refused(store::Refusal::AlreadyRevoked), "and in a later batch");
    // An award after that counts, and can be taken back on its own
    let third = awarded("alice", Uuid::new_v4(), 5);
    log.append(std::slice::from_ref(&third)).await.unwrap();
    let outcomes = log.append(&[revocation("alice", Some((&third, 6)))]).await.unwrap();
    assert_eq!(appended_position(&outcomes[0]), 7);
    read_model.fold_next(100).await.unwrap();
    let board = read_model.load().await.unwrap().0;
    assert_eq!(board.ranked("alice").map(|r| (r.rank, r.standing.score)), Some((2, 0)));
    assert_eq!(board.ranked("bob").map(|r| r.rank), Some(1));
}

/// The tree head the store's nodes make at `size`, and the one recomputed from the log's entries.
async fn heads<S: EventStore>(log: &S, size: u64) -> (tlog::Hash, tlog::Hash) {
    let plan = tlog::Plan::root(size);
    let stored = plan.hashes(&log.read_nodes(&plan.nodes()).await.unwrap()).unwrap()[0];
    let entries = log.read_after(0, size as u32).await.unwrap();
    let leaves: Vec<tlog::Hash> = entries.iter().map(|e| tlog::leaf_hash(e.entry().as_bytes())).collect();
    (stored, tlog::root_of(&leaves))
}

async fn the_merkle_tree_grows_with_the_log_in_every_append(backend: impl Backend) {
    let (log, _) = backend.open().await;
    // Batches of 1, 3, 5 … with a collided action id and a refused award among them
    let repeated = awarded("a", Uuid::new_v4(), 1);
    log.append(std::slice::from_ref(&repeated)).await.unwrap();
    log.append(&[moderation("banned", true)]).await.unwrap();
    for batch in [1, 3, 5, 7, 2] {
        let mut events: Vec<NewEvent> = (0..batch).map(|i| awarded(&format!("p{i}"), Uuid::new_v4(), 1)).collect();
        events.push(repeated.clone());
        events.push(awarded("banned", Uuid::new_v4(), 1));
        log.append(&events).await.unwrap();
    }
    let head = log.head().await.unwrap();
    assert_eq!((head, log.tree_size().await.unwrap()), (20, 20));
    // And batches that fill tiles of 256 leaves, one at once and one across two appends
    let many: Vec<NewEvent> = (0..600).map(|i| awarded(&format!("q{i}"), Uuid::new_v4(), 1)).collect();
    log.append(&many[..300]).await.unwrap();
    log.append(&many[300..]).await.unwrap();
    let head = log.head().await.unwrap();
    assert_eq!((head, log.tree_size().await.unwrap()), (620, 620));
    // Every tree head the stored tiles make is the RFC tree of the log's entries
    for size in (1..=20).chain([255, 256, 257, 300, 319, 320, 511, 512, 513, 620]) {
        let (stored, recomputed) = heads(&log, size).await;
        assert_eq!(stored, recomputed, "tree of {size}");
    }
    // And proofs from the stored tiles verify
    let (root, _) = heads(&log, head).await;
    let entries = log.read_after(0, 1000).await.unwrap();
    for event in entries.iter().step_by(7) {
        let plan = tlog::Plan::inclusion(event.position - 1, head).unwrap();
        let proof = plan.hashes(&log.read_nodes(&plan.nodes()).await.unwrap()).unwrap();
        let leaf = tlog::leaf_hash(event.entry().as_bytes());
        assert!(tlog::verify_inclusion(event.position - 1, head, &leaf, &proof, &root));
    }
    // And the tile resources are the tree's, as C2SP lays them out
    use tlog::tiles::{Tile, TilePath};
    let level_one = TilePath::Hashes { tile: Tile { level: 1, index: 0 }, width: 2 };
    let tile = log.read_tile(level_one, head).await.unwrap().unwrap();
    let first: Vec<tlog::Hash> = entries[..256].iter().map(|e| tlog::leaf_hash(e.entry().as_bytes())).collect();
    assert_eq!(tile[..32], tlog::root_of(&first));
    assert_eq!(
        log.read_tile(TilePath::Hashes { tile: Tile { level: 1, index: 0 }, width: 3 }, head).await.unwrap(),
        None
    );
    let bundle = log.read_tile(TilePath::Entries { index: 2, width: 108 }, head).await.unwrap().unwrap();
    assert_eq!(bundle[2..2 + entries[512].entry().len()], *entries[512].entry().as_bytes());
    assert_eq!(log.read_tile(TilePath::Entries { index: 2, width: 109 }, head).await.unwrap(), None);
    // The tree only grows
    assert!(backend.execute("UPDATE tiles SET hashes = hashes").await.is_err());
    assert!(backend.execute("DELETE FROM tiles").await.is_err());
    // A log written before the tree existed is hashed by the next append
    backend.forget_tree().await;
    assert_eq!(log.tree_size().await.unwrap(), 0);
    log.append(&[awarded("late", Uuid::new_v4(), 1)]).await.unwrap();
    assert_eq!(log.tree_size().await.unwrap(), 621);
    let (stored, recomputed) = heads(&log, 621).await;
    assert_eq!(stored, recomputed);
    assert_eq!(heads(&log, 620).await.0, root, "the same tree as before");
}

fn ranking(board: &Board) -> BTreeMap<u64, events::Standing> {
    board.page(0, 100).into_iter().map(|r| (r.rank, r.standing.clone())).collect()
}

async fn the_fold_is_snapshotted_once_its_changes_reach_its_players<B: Backend>(backend: B) {
    // Given ten awards, recorded a second apart
    let (log, read_model) = backend.open().await;
    let read_model = B::folding(read_model, 3, events::anomaly::Rules::defaults());
    let start = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    for i in 1..=10u8 {
        let mut award = awarded(["a", "b", "c"][usize::from(i % 3)], Uuid::new_v4(), i64::from(i));
        let Event::ScoreAwarded(event) = &mut award.event else { unreachable!() };
        event.recorded_at = start + time::Duration::seconds(i64::from(i));
        log.append(&[award]).await.unwrap();
    }
    // When the fold runs in batches of four, at least three positions between snapshots
    for _ in 0..3 {
        read_model.fold_next(4).await.unwrap();
    }
    // Then a batch that changed as many standings as there are players since the last
    // snapshot (the first two, three players each) left a snapshot at its end, of the fold there;
    // the last, two players, did not
    assert!(read_model.snapshot_before(3).await.unwrap().is_none());
    let events: Vec<RecordedEvent> =
        log.read_after(0, 10).await.unwrap().iter().map(|e| e.decoded().unwrap()).collect();
    for (asked, taken) in [(4, 4), (7, 4), (8, 8), (9, 8), (10, 8), (99, 8)] {
        let snapshot = read_model.snapshot_before(asked).await.unwrap().unwrap();
        assert_eq!(snapshot.position, taken);
        let folded = Board::from_standings(taken, events::leaderboard::fold(&events[..taken as usize]));
        let standings: Vec<_> = folded.page(0, 10).into_iter().map(|r| r.standing.clone()).collect();
        assert_eq!(snapshot.standings, standings, "snapshot at {taken}");
    }
    // And each fold recorded what it changed: the standings of the players it touched, as then
    let changed = read_model.changed_between(0, 10).await.unwrap();
    let spans: Vec<(u64, u64)> = changed.iter().map(|c| (c.from, c.position)).collect();
    assert_eq!(spans, [(0, 4), (4, 8), (8, 10)]);
    for change in &changed {
        let then =
            Board::from_standings(change.position, events::leaderboard::fold(&events[..change.position as usize]));
        let touched: std::collections::BTreeSet<&str> = events[change.from as usize..change.position as usize]
            .iter()
            .map(|e| e.event.player_id().as_str())
            .collect();
        let written: std::collections::BTreeSet<&str> = change.standings.iter().map(|s| s.player_id.as_str()).collect();
        assert_eq!(written, touched);
        for standing in &change.standings {
            assert_eq!(Some(standing), then.held_standing(standing.player_id.as_str()));
        }
    }
    assert_eq!(read_model.changed_between(4, 9).await.unwrap().len(), 1);
    // And the last event recorded at or before a time is found
    for (seconds, position) in [(-1, 0), (0, 0), (1, 1), (4, 4), (10, 10), (3600, 10)] {
        assert_eq!(log.position_at(start + time::Duration::seconds(seconds)).await.unwrap(), position);
    }
    assert_eq!(log.position_at(start + time::Duration::milliseconds(4500)).await.unwrap(), 4);
}

async fn a_burst_is_flagged_once_whatever_restarts_the_detector<B: Backend>(backend: B) {
    // Given one player's eight awards a second apart, among another's two
    let (log, _) = backend.open().await;
    let start = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    for i in 1..=10i64 {
        let mut award = awarded(if i % 5 == 0 { "calm" } else { "burst" }, Uuid::new_v4(), 1);
        let Event::ScoreAwarded(event) = &mut award.event else { unreachable!() };
        event.recorded_at = start + time::Duration::seconds(i);
        log.append(&[award]).await.unwrap();
    }
    let rules = events::anomaly::Rules::from_toml(
        "[[rules]]\nname = \"burst\"\nmeasure = \"actions\"\nlimit = 5\nwindow = \"1m\"\n",
    )
    .unwrap();
    // When the fold runs three events at a time, each time in a read model opened afresh (as
    // after a restart), so each detector warms up from the log
    let mut flagged = Vec::new();
    for _ in 0..4 {
        let (_, read_model) = backend.open().await;
        flagged.extend(B::folding(read_model, 10_000, rules.clone()).fold_next(3).await.unwrap().flagged);
    }
    // Then the burst was flagged once, at its sixth award, naming the six
    assert_eq!(flagged, ["burst"]);
    let flags = log.flags(10).await.unwrap();
    assert_eq!(flags.len(), 1);
    assert_eq!((flags[0].player_id.as_str(), flags[0].rule.as_str(), flags[0].position), ("burst", "burst", 7));
    assert_eq!(flags[0].events, [1, 2, 3, 4, 6, 7]);
    assert_eq!(flags[0].flagged_at, start + time::Duration::seconds(7));
}

/// Every standing of `seasons` of the read model's boards, against the same seasons folded from
/// the whole log by `events::boards`.
async fn seasons_and_their_fold<B: Backend>(
    log: &B::Log,
    read_model: &B::ReadModel,
    boards: &events::boards::BoardDefs,
    seasons: &[(&str, &str)],
) -> (BTreeMap<events::boards::Place, events::Standing>, BTreeMap<events::boards::Place, events::Standing>) {
    use events::boards::{Season, SeasonStanding};
    let wanted: Vec<(String, Season)> =
        seasons.iter().map(|(board, season)| (board.to_string(), season.parse().unwrap())).collect();
    let loaded = read_model.load_seasons(&wanted, None).await.unwrap();
    let log: Vec<RecordedEvent> =
        log.read_after(0, 10_000).await.unwrap().iter().map(|e| e.decode().unwrap()).collect();
    let folded = events::boards::fold_seasons(boards.named(), [], &events::boards::awards_of(&log), &[], &log);
    let keyed = |standings: Vec<SeasonStanding>| -> BTreeMap<_, _> {
        standings
            .into_iter()
            .filter(|s| wanted.iter().any(|(b, season)| b == s.board.as_str() && *season == s.season))
            .map(|s| (s.place(), s.standing))
            .collect()
    };
    (keyed(loaded.into_standings().collect()), keyed(folded))
}

async fn boards_fold_with_global_and_a_board_added_later_is_built_from_the_log<B: Backend>(backend: B) {
    use events::boards::BoardDefs;
    // Given awards either side of the ISO week boundary of Monday 30 November 2026, of two actions
    let (log, _) = backend.open().await;
    let sunday = time::macros::datetime!(2026-11-29 23:59:59.999999 UTC);
    let monday = time::macros::datetime!(2026-11-30 00:00 UTC);
    let award = |player: &str, action: &str, points: i64, at: time::OffsetDateTime| {
        let mut new = awarded(player, Uuid::new_v4(), points);
        let Event::ScoreAwarded(event) = &mut new.event else { unreachable!() };
        event.action = action.parse().unwrap();
        event.recorded_at = at;
        new
    };
    let first = award("ann", "complete_quest", 10, sunday);
    log.append(&[first.clone(), award("bob", "complete_task", 30, sunday), award("ann", "complete_quest", 4, monday)])
        .await
        .unwrap();
    // And a read model that folded `global` alone, restarted with two boards, which are built
    // from what the log held, then folding on
    let boards = BoardDefs::from_toml(
        "[boards.weekly]\nseason = \"weekly\"\n[boards.quests]\nactions = [\"complete_quest\"]\nseason = \"all-time\"\n",
    )
    .unwrap();
    let (_, read_model) = backend.open().await;
    read_model.fold_next(2).await.unwrap();
    let (_, read_model) = backend.open().await;
    let read_model = B::boards(read_model, boards.clone());
    let built = read_model.build_boards(1).await.unwrap();
    assert_eq!((built.built, built.events), (vec!["quests".to_string(), "weekly".to_string()], 4));
    log.append(&[
        award("cid", "complete_quest", 7, monday),
        revocation("ann", Some((&first, 1))),
        moderation("bob", true),
    ])
    .await
    .unwrap();
    while read_model.fold_next(2).await.unwrap().to < 6 {}
    // Then each board and season holds what the fold of the whole log gives, nothing more
    let seasons = [("weekly", "2026-W48"), ("weekly", "2026-W49"), ("quests", "all-time")];
    let (loaded, folded) = seasons_and_their_fold::<B>(&log, &read_model, &boards, &seasons).await;
    assert_eq!(loaded, folded);
    let scores: Vec<(&str, &str, u64, bool)> =
        loaded.iter().map(|(p, s)| (p.board.as_str(), p.player_id.as_str(), s.score, s.banned)).collect();
    assert_eq!(
        scores,
        [
            ("quests", "ann", 4, false),
            // Banned, on every all-time board as on `global`, though he never scored on it
            ("quests", "bob", 0, true),
            ("quests", "cid", 7, false),
            ("weekly", "ann", 0, false),
            ("weekly", "bob", 30, true),
            ("weekly", "ann", 4, false),
            ("weekly", "cid", 7, false),
        ]
    );
    let ready = read_model.load_seasons(&[], None).await.unwrap().ready;
    assert_eq!(ready.keys().map(String::as_str).collect::<Vec<_>>(), ["quests", "weekly"]);
    // When the read model restarts with `everything` added and `quests` counting another action
    let generation = read_model.load().await.unwrap().1.generation;
    let boards = BoardDefs::from_toml(
        "[boards.weekly]\nseason = \"weekly\"\n[boards.quests]\nactions = [\"complete_quest\", \"win\"]\n\
         season = \"all-time\"\n[boards.everything]\nseason = \"all-time\"\n",
    )
    .unwrap();
    let (_, read_model) = backend.open().await;
    let read_model = B::boards(read_model, boards.clone());
    let built = read_model.build_boards(4).await.unwrap();
    // Then those two are built again from the whole log, the other is left as it is, and query
    // services are told to reload
    assert_eq!(
        (built.built, built.dropped, built.events),
        (vec!["everything".into(), "quests".into()], vec!["quests".into()], 12)
    );
    assert_eq!(read_model.load().await.unwrap().1.generation, generation + 1);
    let seasons = [("everything", "all-time"), ("quests", "all-time"), ("weekly", "2026-W49")];
    let (loaded, folded) = seasons_and_their_fold::<B>(&log, &read_model, &boards, &seasons).await;
    assert_eq!(loaded, folded);
    // And `everything` is `global`, standing for standing
    let global: Vec<events::Standing> = ranking(&read_model.load().await.unwrap().0).into_values().collect();
    let mut everything: Vec<events::Standing> =
        loaded.into_iter().filter(|(p, s)| p.board.as_str() == "everything" && !s.banned).map(|(_, s)| s).collect();
    everything.sort_by(events::Standing::rank_cmp);
    assert_eq!(everything, global);
    // And what the next fold changes reaches query services with `global`'s changes
    let (_, anchor) = read_model.load().await.unwrap();
    log.append(&[award("dee", "win", 3, monday)]).await.unwrap();
    read_model.fold_next(10).await.unwrap();
    let Changes { seasons, .. } = read_model.changes_since(anchor).await.unwrap().unwrap();
    let mut changed: Vec<String> =
        seasons.iter().map(|s| format!("{} {} {}", s.board, s.season, s.standing.player_id)).collect();
    changed.sort();
    assert_eq!(changed, ["everything all-time dee", "quests all-time dee", "weekly 2026-W49 dee"]);
}

async fn taking_back_the_award_a_board_keeps_reads_the_players_history_in_every_fold<B: Backend>(backend: B) {
    use events::boards::BoardDefs;
    // Given boards keeping each player's best, lowest and latest award, folding one event a batch
    let boards = BoardDefs::from_toml(
        "[boards.best]\nseason = \"all-time\"\naggregate = \"best\"\n\
         [boards.fastest]\nseason = \"weekly\"\naggregate = \"min\"\n\
         [boards.latest]\nseason = \"all-time\"\naggregate = \"last\"\n",
    )
    .unwrap();
    let (log, read_model) = backend.open().await;
    let read_model = B::boards(read_model, boards.clone());
    read_model.build_boards(10).await.unwrap();
    let monday = time::macros::datetime!(2026-11-30 10:00 UTC);
    let award = |player: &str, points: i64| {
        let mut new = awarded(player, Uuid::new_v4(), points);
        let Event::ScoreAwarded(event) = &mut new.event else { unreachable!() };
        event.recorded_at = monday;
        new
    };
    let (best, fastest) = (award("ann", 90), award("ann", 5));
    log.append(&[award("ann", 40), best.clone(), award("bob", 60), fastest.clone(), award("ann", 70)]).await.unwrap();
    while read_model.fold_next(1).await.unwrap().to < 5 {}
    // When her best and her fastest are taken back, each in a batch of its own
    log.append(&[revocation("ann", Some((&best, 2)))]).await.unwrap();
    log.append(&[revocation("ann", Some((&fastest, 4)))]).await.unwrap();
    while read_model.fold_next(1).await.unwrap().to < 7 {}
    // Then each board holds what the fold of the whole log gives: her next best, her next fastest
    let seasons = [("best", "all-time"), ("fastest", "2026-W49"), ("latest", "all-time")];
    let (loaded, folded) = seasons_and_their_fold::<B>(&log, &read_model, &boards, &seasons).await;
    assert_eq!(loaded, folded);
    let kept: Vec<(&str, &str, u64, u64)> =
        loaded.iter().map(|(p, s)| (p.board.as_str(), p.player_id.as_str(), s.score, s.reached_at)).collect();
    assert_eq!(
        kept,
        [
            ("best", "ann", 70, 5),
            ("best", "bob", 60, 3),
            ("fastest", "ann", 40, 1),
            ("fastest", "bob", 60, 3),
            ("latest", "ann", 70, 5),
            ("latest", "bob", 60, 3),
        ]
    );
    // And a board built afresh from the log, and a rebuild, come to the same
    let (_, read_model) = backend.open().await;
    let again = BoardDefs::from_toml("[boards.best2]\nseason = \"all-time\"\naggregate = \"best\"\n").unwrap();
    let read_model = B::boards(read_model, again.clone());
    read_model.build_boards(2).await.unwrap();
    let (loaded, _) = seasons_and_their_fold::<B>(&log, &read_model, &again, &[("best2", "all-time")]).await;
    let scores: Vec<u64> = loaded.values().map(|s| s.score).collect();
    assert_eq!(scores, [70, 60]);
    let (_, read_model) = backend.open().await;
    let read_model = B::boards(read_model, boards.clone());
    B::rebuild(read_model, 2).await.unwrap();
    let (_, read_model) = backend.open().await;
    let read_model = B::boards(read_model, boards.clone());
    let (loaded, folded) = seasons_and_their_fold::<B>(&log, &read_model, &boards, &seasons).await;
    assert_eq!(loaded, folded);
}

async fn season_results_are_published_once_closed_and_amended_by_new_versions_never_edits<B: Backend>(backend: B) {
    use events::boards::{BoardDefs, Season};
    use time::macros::datetime;
    // Given a daily board, and three awards on Monday 30 November 2026, folded
    let boards =
        BoardDefs::from_toml("[boards.daily]\nseason = \"daily\"\n[boards.ever]\nseason = \"all-time\"\n").unwrap();
    let (log, read_model) = backend.open().await;
    let read_model = B::boards(read_model, boards.clone());
    read_model.build_boards(10).await.unwrap();
    let monday = datetime!(2026-11-30 10:00 UTC);
    let award = |player: &str, points: i64| {
        let mut new = awarded(player, Uuid::new_v4(), points);
        let Event::ScoreAwarded(event) = &mut new.event else { unreachable!() };
        event.recorded_at = monday;
        new
    };
    log.append(&[award("ann", 30), award("bob", 50), award("ann", 40)]).await.unwrap();
    while read_model.fold_next(10).await.unwrap().to < 3 {}
    let (grace, closing) = (time::Duration::minutes(5), datetime!(2026-12-01 00:05 UTC));
    let checkpoint =
        |size: u64| store::Checkpoint { tree_size: size, root_hash: [0; 32], note: format!("note of {size}\n") };
    let day = Season::parse(events::boards::SeasonKind::Daily, "2026-11-30").unwrap();
    let rows = |results: &store::SeasonResults| -> Vec<(u64, String, u64)> {
        results.entries.iter().map(|p| (p.rank, p.player_id.to_string(), p.score)).collect()
    };
    // Then nothing is published before the day closes (its end plus the grace)
    let second = time::Duration::seconds(1);
    assert!(read_model.publish_results(closing - second, grace).await.unwrap().is_empty());
    // Nor before a signed checkpoint covers the fold
    assert!(read_model.publish_results(closing, grace).await.unwrap().is_empty());
    log.save_checkpoint(&checkpoint(3)).await.unwrap();
    // Then the day's results are published once, final at the fold's position
    let published = read_model.publish_results(closing, grace).await.unwrap();
    assert_eq!(published.len(), 1, "{published:?}");
    let first = &published[0];
    assert_eq!((first.board.as_str(), first.season, first.version, first.position), ("daily", day, 1, 3));
    assert_eq!((first.tree_size, first.checkpoint.as_str()), (3, "note of 3\n"));
    assert_eq!(rows(first), [(1, "ann".to_string(), 70), (2, "bob".to_string(), 50)]);
    assert!(read_model.publish_results(closing + time::Duration::hours(1), grace).await.unwrap().is_empty());
    // When a ban reaches the closed day, the next version is published once a checkpoint covers it
    log.append(&[moderation("ann", true)]).await.unwrap();
    while read_model.fold_next(10).await.unwrap().to < 4 {}
    let later = closing + time::Duration::hours(2);
    assert!(read_model.publish_results(later, grace).await.unwrap().is_empty(), "no checkpoint covers 4 yet");
    log.save_checkpoint(&checkpoint(4)).await.unwrap();
    let amended = read_model.publish_results(later, grace).await.unwrap();
    assert_eq!(amended.len(), 1, "{amended:?}");
    assert_eq!((amended[0].version, amended[0].position, amended[0].tree_size), (2, 4, 4));
    assert_eq!(rows(&amended[0]), [(1, "bob".to_string(), 50)]);
    // And every version stays readable as published, the latest by default
    let latest = read_model.season_results("daily", day, None).await.unwrap().unwrap();
    assert_eq!(latest, amended[0]);
    let original = read_model.season_results("daily", day, Some(1)).await.unwrap().unwrap();
    assert_eq!(&original, first);
    assert!(read_model.season_results("daily", day, Some(3)).await.unwrap().is_none());
    // And nothing published is ever changed
    assert!(backend.execute("UPDATE season_results SET position = 1").await.is_err());
    assert!(backend.execute("DELETE FROM season_results").await.is_err());
    // And what JetStream has not been sent is sent once, in order
    let unrelayed = read_model.unrelayed_results().await.unwrap();
    assert_eq!(unrelayed.iter().map(|r| r.version).collect::<Vec<_>>(), [1, 2]);
    read_model.mark_relayed(&unrelayed[0]).await.unwrap();
    let unrelayed = read_model.unrelayed_results().await.unwrap();
    assert_eq!(unrelayed.iter().map(|r| r.version).collect::<Vec<_>>(), [2]);
    // And a folder started afresh publishes nothing twice
    let (_, read_model) = backend.open().await;
    let read_model = B::boards(read_model, boards);
    assert!(read_model.publish_results(later + time::Duration::hours(1), grace).await.unwrap().is_empty());
    // When the board is defined otherwise (keeping each player's best), its closed day is
    // published again as the next version, by its new definition
    let redefine = async |toml: &str, now: time::OffsetDateTime| {
        let (_, read_model) = backend.open().await;
        let read_model = B::boards(read_model, BoardDefs::from_toml(toml).unwrap());
        read_model.build_boards(10).await.unwrap();
        read_model.publish_results(now, grace).await.unwrap()
    };
    let best = redefine("[boards.daily]\nseason = \"daily\"\naggregate = \"best\"\n", later).await;
    let seen: Vec<(String, u32, &str)> =
        best.iter().map(|r| (r.season.to_string(), r.version, r.definition.as_str())).collect();
    assert_eq!(seen, [("2026-11-30".to_string(), 3, "season=daily;actions=*;aggregate=best")]);
    assert_eq!(rows(&best[0]), [(1, "bob".to_string(), 50)]);
    // And when it restarts weekly, its weeks are published, and no day any more
    let monday_after = datetime!(2026-12-07 00:05 UTC);
    let weekly = redefine("[boards.daily]\nseason = \"weekly\"\n", monday_after).await;
    let seen: Vec<(String, u32, &str)> =
        weekly.iter().map(|r| (r.season.to_string(), r.version, r.definition.as_str())).collect();
    assert_eq!(seen, [("2026-W49".to_string(), 1, "season=weekly;actions=*")]);
}

/// A pseudo-random number generator (xorshift), so that the random logs are the same each run.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A log of `length` random events — awards of three actions over four weeks, bans, unbans, and
/// revocations of one award or all of a player's points — appended in random batches; returns
/// what the log admitted (`length` events, or a few more).
async fn random_log<S: EventStore>(log: &S, random: &mut Random, length: usize) -> Vec<RecordedEvent> {
    let start = time::macros::datetime!(2026-11-16 00:00 UTC);
    let mut awards: Vec<(NewEvent, u64)> = Vec::new();
    let mut pending = Vec::new();
    while log.head().await.unwrap() < length as u64 {
        let player = format!("p{}", random.below(6));
        let event = match random.below(12) {
            0 => moderation(&player, true),
            1 => moderation(&player, false),
            2 => revocation(&player, None),
            3 if !awards.is_empty() => {
                let (award, position) = &awards[random.below(awards.len() as u64) as usize];
                let Event::ScoreAwarded(a) = &award.event else { unreachable!() };
                revocation(a.player_id.as_str(), Some((award, *position)))
            }
            kind => {
                let mut new = awarded(&player, Uuid::new_v4(), (random.below(50) + 1) as i64);
                let Event::ScoreAwarded(a) = &mut new.event else { unreachable!() };
                a.action = ["complete_quest", "win_match", "complete_task"][kind as usize % 3].parse().unwrap();
                a.recorded_at = start + time::Duration::hours(random.below(28 * 24) as i64);
                new
            }
        };
        pending.push(event);
        if random.below(4) == 0 {
            for (new, outcome) in pending.iter().zip(log.append(&pending).await.unwrap()) {
                if let AppendOutcome::Appended(recorded) = outcome
                    && matches!(new.event, Event::ScoreAwarded(_))
                {
                    awards.push((new.clone(), recorded.position));
                }
            }
            pending.clear();
        }
    }
    log.read_after(0, 10_000).await.unwrap().iter().map(|e| e.decoded().unwrap()).collect()
}

const RANDOM_BOARDS: &str = "[boards.quests]\nactions = [\"complete_quest\"]\nseason = \"all-time\"\n\
    [boards.daily]\nseason = \"daily\"\n[boards.weekly]\nactions = [\"complete_quest\", \"win_match\"]\n\
    season = \"weekly\"\n";

async fn the_fold_persisted_and_reloaded_anywhere_is_the_fold_of_the_log<B: Backend>(backend: B) {
    let boards = events::boards::BoardDefs::from_toml(RANDOM_BOARDS).unwrap();
    let (log, _) = backend.open().await;
    let mut random = Random(0x005C_0EB0_A2D0_E1A7);
    let events = random_log(&log, &mut random, 240).await;
    // Folded in random batches, by a folder restarted (its memory loaded again from the read
    // model) at random points
    let (_, read_model) = backend.open().await;
    let mut read_model = B::boards(read_model, boards.clone());
    while read_model.checkpoint().await.unwrap() < events.len() as u64 {
        read_model.fold_next((random.below(40) + 1) as u32).await.unwrap();
        if random.below(3) == 0 {
            let (_, fresh) = backend.open().await;
            read_model = B::boards(fresh, boards.clone());
        }
    }
    // Then every board and season is the fold of the log, and so is global
    let wanted: std::collections::BTreeSet<(String, String)> =
        events::boards::fold_seasons(boards.named(), [], &events::boards::awards_of(&events), &[], &events)
            .iter()
            .map(|s| (s.board.to_string(), s.season.to_string()))
            .collect();
    let wanted: Vec<(&str, &str)> = wanted.iter().map(|(b, s)| (b.as_str(), s.as_str())).collect();
    let (loaded, folded) = seasons_and_their_fold::<B>(&log, &read_model, &boards, &wanted).await;
    assert!(!folded.is_empty());
    assert_eq!(loaded, folded);
    let board = read_model.load().await.unwrap().0;
    let global = events::leaderboard::fold(&events);
    assert_eq!(ranking(&board), ranking(&Board::from_standings(events.len() as u64, global)));
}

async fn a_folder_whose_memory_another_moved_past_loads_again_and_counts_nothing_twice(backend: impl Backend) {
    // Given two folders that both loaded the read model at position 0 (a projector that lost its
    // leadership, and the one that took over)
    let (log, first) = backend.open().await;
    let (_, second) = backend.open().await;
    log.append(&(0..10).map(|i| awarded(&format!("p{}", i % 3), Uuid::new_v4(), 10)).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(second.fold_next(0).await.unwrap().to, 0, "the second has loaded its memory at 0");
    assert_eq!(first.fold_next(4).await.unwrap().to, 4);
    // When each folds on from a checkpoint the other moved
    assert_eq!(second.fold_next(4).await.unwrap().to, 8, "the second loads again at 4, and folds 5 to 8");
    assert_eq!(first.fold_next(10).await.unwrap().to, 10, "the first loads again at 8");
    // Then nothing was counted twice
    let events: Vec<RecordedEvent> =
        log.read_after(0, 10).await.unwrap().iter().map(|e| e.decoded().unwrap()).collect();
    let expected = Board::from_standings(10, events::leaderboard::fold(&events));
    assert_eq!(ranking(&first.load().await.unwrap().0), ranking(&expected));
}

async fn a_rebuild_while_folding_goes_on_takes_over_with_the_fold_of_the_log<B: Backend>(backend: B) {
    let boards = events::boards::BoardDefs::from_toml(RANDOM_BOARDS).unwrap();
    // Given a log of random events, folded in part by the live read model
    let (log, _) = backend.open().await;
    let mut random = Random(0xB0A2_D0E1_5C0E);
    let events = random_log(&log, &mut random, 300).await;
    let (_, live) = backend.open().await;
    let live = B::folding(B::boards(live, boards.clone()), 20, events::anomaly::Rules::defaults());
    assert_eq!(live.fold_next(120).await.unwrap().to, 120);
    // When it is rebuilt in batches of 7, in memory, while the live one folds on
    let rebuilding = tokio::spawn(B::rebuild(live.clone(), 7));
    while live.checkpoint().await.unwrap() < 200 {
        live.fold_next(5).await.unwrap();
        tokio::task::yield_now().await;
    }
    let rebuilt = rebuilding.await.unwrap().unwrap();
    assert!(rebuilt.position >= 120 && rebuilt.generation == 1, "{rebuilt:?}");
    // Then the folder loads the rebuilt model and folds on, and every board and season, global
    // included, is the fold of the log
    while live.fold_next(50).await.unwrap().to < events.len() as u64 {}
    let wanted: std::collections::BTreeSet<(String, String)> =
        events::boards::fold_seasons(boards.named(), [], &events::boards::awards_of(&events), &[], &events)
            .iter()
            .map(|s| (s.board.to_string(), s.season.to_string()))
            .collect();
    let wanted: Vec<(&str, &str)> = wanted.iter().map(|(b, s)| (b.as_str(), s.as_str())).collect();
    let (loaded, folded) = seasons_and_their_fold::<B>(&log, &live, &boards, &wanted).await;
    let differ: Vec<_> = loaded
        .keys()
        .chain(folded.keys())
        .filter(|p| loaded.get(*p) != folded.get(*p))
        .map(|p| (p.clone(), loaded.get(p).cloned(), folded.get(p).cloned()))
        .take(6)
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
    let board = live.load().await.unwrap().0;
    assert_eq!(ranking(&board), ranking(&Board::from_standings(0, events::leaderboard::fold(&events))));
    // And a past board comes from the rebuilt snapshots and changes
    let snapshot = live.snapshot_before(events.len() as u64).await.unwrap().expect("a snapshot");
    let at = snapshot.position as usize;
    let then = Board::from_standings(snapshot.position, events::leaderboard::fold(&events[..at]));
    assert_eq!(
        snapshot.standings,
        then.standings().cloned().fold(Vec::new(), |mut all, s| {
            all.push(s);
            all.sort_by(events::Standing::rank_cmp);
            all
        })
    );
    assert!(!live.changed_between(0, 300).await.unwrap().is_empty());
}

/// Each board's usage series as numbers: every bucket's start, actions, points, new players
/// and distinct players, and the same of the whole window.
fn usage_numbers(series: &[events::usage::Series]) -> Vec<(String, i64, u64, u64, u64, u64)> {
    let numbers = |board: &str, start: i64, tally: &events::usage::Tally| {
        let total = tally.total();
        (board.to_string(), start, total.actions, total.points, tally.new_players, tally.players.estimate())
    };
    series
        .iter()
        .flat_map(|s| {
            let buckets = s.buckets.iter().map(|(start, tally)| numbers(s.board.as_str(), *start, tally));
            buckets.chain([numbers(s.board.as_str(), i64::MAX, &s.total)]).collect::<Vec<_>>()
        })
        .collect()
}

async fn usage_is_the_log_counted_once_whatever_folds_it<B: Backend>(backend: B) {
    use events::usage::{Granularity, Usage, Window};
    let boards = events::boards::BoardDefs::from_toml(RANDOM_BOARDS).unwrap();
    // Given a log of random events over four weeks, folded by `global` alone at first
    let (log, _) = backend.open().await;
    let mut random = Random(0x05A6_E5C0_0E1A);
    let events = random_log(&log, &mut random, 300).await;
    let (_, read_model) = backend.open().await;
    read_model.fold_next(90).await.unwrap();
    // When the boards are added and built from the log, and the folder folds on in random
    // batches, restarted at random points, with every claim delivered twice
    let (_, read_model) = backend.open().await;
    let mut read_model = B::boards(read_model, boards.clone());
    read_model.build_boards(25).await.unwrap();
    let claims: Vec<Claim> = log.read_after(0, 10_000).await.unwrap().iter().map(Claim::from).collect();
    while read_model.checkpoint().await.unwrap() < events.len() as u64 {
        let at = read_model.checkpoint().await.unwrap() as usize;
        let run = &claims[at.saturating_sub(3)..(at + random.below(30) as usize + 1).min(claims.len())];
        read_model.fold_claimed(run).await.unwrap();
        read_model.fold_claimed(run).await.unwrap();
        if random.below(3) == 0 {
            let (_, fresh) = backend.open().await;
            read_model = B::boards(fresh, boards.clone());
        }
    }
    // Then usage, by hour and by day, on every board, is what counting the log once says
    let global = events::boards::BoardDef::global();
    let counted = Usage::of(&events, std::iter::once(&global).chain(boards.named()), |_| false);
    let now = time::macros::datetime!(2026-12-14 00:00 UTC);
    let from = Some(time::macros::datetime!(2026-11-16 00:00 UTC));
    let windows = [
        Window::new(Granularity::Day, from, None, now).unwrap(),
        Window::new(Granularity::Hour, from, None, now).unwrap(),
    ];
    for window in &windows {
        let stats = log.usage(window).await.unwrap();
        assert_eq!(stats.position, events.len() as u64);
        let expected = events::usage::series(window, &counted.tallies);
        assert_eq!(stats.series.len(), 4, "global and three boards");
        assert_eq!(usage_numbers(&stats.series), usage_numbers(&expected), "{window:?}");
    }
    let whole = &log.usage(&windows[0]).await.unwrap().series[0].total;
    let players: std::collections::BTreeSet<&str> = events
        .iter()
        .filter(|e| matches!(e.event, Event::ScoreAwarded(_)))
        .map(|e| e.event.player_id().as_str())
        .collect();
    assert_eq!((whole.new_players, whole.players.estimate()), (players.len() as u64, players.len() as u64));
    // And a rebuild makes the same numbers afresh
    B::rebuild(read_model, 11).await.unwrap();
    for window in &windows {
        let expected = events::usage::series(window, &counted.tallies);
        assert_eq!(usage_numbers(&log.usage(window).await.unwrap().series), usage_numbers(&expected));
    }
}

async fn a_ban_racing_awards_from_other_appenders_refuses_every_award_after_it(backend: impl Backend) {
    // Given four appenders (as replicas, each its own connections): three appending awards for
    // `x` and others as fast as they can, one banning and unbanning `x` meanwhile
    let mut appenders = Vec::new();
    for task in 0..4 {
        let (log, _) = backend.open().await;
        appenders.push(tokio::spawn(async move {
            for round in 0..60 {
                let batch: Vec<NewEvent> = match task {
                    0 => vec![moderation("x", round % 2 == 0)],
                    _ => (0..5).map(|i| awarded(if i % 2 == 0 { "x" } else { "y" }, Uuid::new_v4(), 1)).collect(),
                };
                log.append(&batch).await.unwrap();
            }
        }));
    }
    for appender in appenders {
        appender.await.unwrap();
    }
    // Then no award for `x` lies between a ban and the unban after it: each was ordered once
    let (log, _) = backend.open().await;
    let events: Vec<RecordedEvent> =
        log.read_after(0, 10_000).await.unwrap().iter().map(|e| e.decoded().unwrap()).collect();
    let mut banned = false;
    for recorded in &events {
        match &recorded.event {
            Event::PlayerBanned(_) => banned = true,
            Event::PlayerUnbanned(_) => banned = false,
            Event::ScoreAwarded(award) if award.player_id.as_str() == "x" => {
                assert!(!banned, "an award for x at {} while banned", recorded.position);
            }
            _ => {}
        }
    }
    assert_eq!(events.iter().filter(|e| matches!(e.event, Event::PlayerBanned(_))).count(), 30);
}

macro_rules! conformance {
    ($module:ident, $backend:ident: $($case:ident),+ $(,)?) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::$backend::new().await).await;
                }
            )+
        }
    };
}

macro_rules! every_case {
    ($module:ident, $backend:ident) => {
        conformance!($module, $backend:
            a_batch_gets_the_next_dense_positions,
            a_repeated_action_id_in_one_batch_is_appended_once,
            an_action_id_already_in_the_log_is_answered_with_the_original,
            concurrent_appenders_leave_no_gaps_and_no_duplicates,
            events_read_back_exactly_as_written_by_position,
            the_log_refuses_updates_and_deletes,
            acknowledged_events_survive_reopening,
            the_read_model_folds_each_event_exactly_once,
            claims_the_log_contradicts_are_never_folded,
            changes_since_a_position_are_what_the_folds_after_it_touched,
            a_ban_refuses_the_awards_after_it_in_append_order_and_hides_the_player,
            an_award_is_taken_back_once_and_all_of_a_players_points_at_most_up_to_then,
            the_merkle_tree_grows_with_the_log_in_every_append,
            the_fold_is_snapshotted_once_its_changes_reach_its_players,
            a_burst_is_flagged_once_whatever_restarts_the_detector,
            boards_fold_with_global_and_a_board_added_later_is_built_from_the_log,
            taking_back_the_award_a_board_keeps_reads_the_players_history_in_every_fold,
            season_results_are_published_once_closed_and_amended_by_new_versions_never_edits,
            the_fold_persisted_and_reloaded_anywhere_is_the_fold_of_the_log,
            a_folder_whose_memory_another_moved_past_loads_again_and_counts_nothing_twice,
            a_rebuild_while_folding_goes_on_takes_over_with_the_fold_of_the_log,
            a_ban_racing_awards_from_other_appenders_refuses_every_award_after_it,
            usage_is_the_log_counted_once_whatever_folds_it,
        );
    };
}

every_case!(postgres, Postgres);
every_case!(sqlite, Sqlite);

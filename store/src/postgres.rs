//! The event log and the leaderboard read model on PostgreSQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use events::anomaly::{Flag, Rules};
use events::boards::{BoardDef, Boards, Reads, Season, SeasonStanding};
use events::{Board, DisplayName};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{FromRow, PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::plan::{self, Attempt, Originals};
use crate::{
    Anchor, AppendOutcome, Applied, BoardSql, BoardsBuilt, Changed, ChangedRow, Changes, Checkpoint, CheckpointRow,
    Claim, EventRow, EventStore, FirstSeenRow, FlagRow, FlagSql, Folding, KeptSigner, LeaderboardStore, NewEvent,
    SEASON_COLUMNS, STANDING_COLUMNS, SeasonRow, Seasons, Snapshot, SnapshotRow, StandingRow, StandsRow, StoreError,
    StoredEvent, board_from_rows, build_step, changes_from_rows, convert_rows, decode_run, fold_boards, folded_onto,
    from_db, snapshot, standings_of, sync_boards, to_db,
};

/// The PostgreSQL schema: event log, read model, checkpoints.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// The `NOTIFY` channel on which every append announces the new head of the log.
pub const LOG_CHANNEL: &str = "scoreboard_log";

/// A pool for `url` that connects on first use, so a service can start before its database.
///
/// Every session gets `lock_timeout` and `idle_in_transaction_session_timeout` of
/// `lock_timeout`: a transaction waits that long for a lock at most, and a transaction whose
/// client went silent while holding locks (the log's append lock, the checkpoint's) is ended
/// by PostgreSQL after that long, instead of stalling every other replica until TCP gives up.
pub fn connect_lazy(url: &str, max_connections: u32, lock_timeout: Duration) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let millis = format!("{}ms", lock_timeout.as_millis().max(1));
    Ok(PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(3)).connect_lazy_with(
        options
            .application_name("scoreboard")
            .options([("lock_timeout", millis.as_str()), ("idle_in_transaction_session_timeout", millis.as_str())]),
    ))
}

const SELECT_EVENT: &str =
    "SELECT position, event_id, event_type, event_version, payload::text AS payload, recorded_at FROM events";

/// The event log in PostgreSQL.
///
/// Positions are taken under the row lock of `event_log_head`, held until commit, so batches
/// from any number of processes commit in position order and leave no gaps.
#[derive(Clone, Debug)]
pub struct PgEventLog {
    pool: PgPool,
    /// The hashes of the tree's frontier after this process's last append, and the tree size
    /// they are of: a node never changes, so while the tree has that size (no other replica
    /// appended since) they spare reading the frontier.
    frontier: Arc<Mutex<Option<Frontier>>>,
}

/// A tree size and the hashes of its frontier.
type Frontier = (u64, Vec<audit::Hash>);

impl PgEventLog {
    /// The log in the database behind `pool` (migrated with [`MIGRATOR`]).
    pub fn new(pool: PgPool) -> Self {
        Self { pool, frontier: Arc::default() }
    }

    /// The hashes of the frontier of the tree of `size` leaves.
    async fn frontier_of(&self, tx: &mut Transaction<'_, Postgres>, size: u64) -> Result<Vec<audit::Hash>, StoreError> {
        let cached = self.frontier.lock().unwrap_or_else(PoisonError::into_inner).take();
        match cached {
            Some((cached_size, hashes)) if cached_size == size => Ok(hashes),
            _ => plan::frontier_hashes(size, &read_nodes(&mut **tx, &audit::frontier(size)).await?),
        }
    }

    /// The pool, for callers that need a connection of their own (listeners, locks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn attempt(&self, fresh: Vec<&NewEvent>, wanted: Vec<Uuid>) -> Result<Attempt, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (head, tree_size) = if fresh.is_empty() { (0, 0) } else { lock_head(&mut tx).await? };
        let refused = plan::admit(&fresh, head, moderation_of(&mut tx, plan::players_of(&fresh)).await?);
        let admitted: Vec<&NewEvent> =
            fresh.into_iter().filter(|new| !refused.contains_key(&new.event.event_id())).collect();
        let payloads: Vec<String> = admitted.iter().map(|new| new.event.encode()).collect();
        let mut grown = None;
        if !admitted.is_empty() {
            // The tree grows in the transaction that decides the positions (a log older than
            // its tree is hashed first).
            let mut leaves = match tree_size < head {
                true => plan::stored_leaves(&read_log(&mut tx, tree_size, head).await?),
                false => Vec::with_capacity(admitted.len()),
            };
            leaves.extend(plan::leaves(head + 1, &admitted, &payloads));
            let frontier = self.frontier_of(&mut tx, tree_size).await?;
            let completed = audit::append(tree_size, &frontier, &leaves);
            let new_head = head + admitted.len() as u64;
            let inserted = write(&mut tx, head, &admitted, &payloads, &completed, new_head).await?;
            if inserted.len() < admitted.len() {
                tx.rollback().await?;
                let inserted = inserted.into_iter().flatten().collect();
                return Ok(Attempt::Collided(plan::collided(&admitted, &inserted)));
            }
            grown = Some((new_head, plan::frontier_after(tree_size, &frontier, &completed, new_head)?));
        }
        let originals = originals_of(&mut tx, wanted).await?;
        tx.commit().await?;
        if let Some(grown) = grown {
            *self.frontier.lock().unwrap_or_else(PoisonError::into_inner) = Some(grown);
        }
        Ok(Attempt::Committed { head, originals, refused })
    }
}

impl EventStore for PgEventLog {
    async fn append(&self, batch: &[NewEvent]) -> Result<Vec<AppendOutcome>, StoreError> {
        plan::append_with(batch, |fresh, wanted| self.attempt(fresh, wanted)).await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head").fetch_one(&self.pool).await?;
        Ok(from_db(head))
    }

    async fn read_after(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_EVENT} WHERE position > $1 ORDER BY position LIMIT $2"
        )))
        .bind(to_db(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<StoredEvent>, StoreError> {
        let row: Option<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_EVENT} WHERE event_id = $1")))
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(StoredEvent::from))
    }

    async fn read_player(&self, player_id: &str, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_EVENT} WHERE player_id = $1 AND position > $2 ORDER BY position LIMIT $3"
        )))
        .bind(player_id)
        .bind(to_db(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    async fn flags(&self, limit: u32) -> Result<Vec<Flag>, StoreError> {
        let rows: Vec<FlagRow> = sqlx::query_as(
            "SELECT position, rule, player_id, events, flagged_at FROM anomaly_flags \
             ORDER BY position DESC, rule LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Flag::try_from).collect()
    }

    async fn position_at(&self, time: time::OffsetDateTime) -> Result<u64, StoreError> {
        let position: Option<i64> = sqlx::query_scalar(
            "SELECT position FROM events WHERE recorded_at <= $1 ORDER BY recorded_at DESC, position DESC LIMIT 1",
        )
        .bind(time)
        .fetch_optional(&self.pool)
        .await?;
        Ok(position.map_or(0, from_db))
    }

    async fn tree_size(&self) -> Result<u64, StoreError> {
        let size: i64 = sqlx::query_scalar("SELECT tree_size FROM event_log_head").fetch_one(&self.pool).await?;
        Ok(from_db(size))
    }

    async fn read_nodes(&self, nodes: &[audit::Node]) -> Result<HashMap<audit::Node, audit::Hash>, StoreError> {
        read_nodes(&self.pool, nodes).await
    }

    async fn keep_signer(&self, signer: &KeptSigner, replace: bool) -> Result<KeptSigner, StoreError> {
        let on_conflict = if replace {
            "DO UPDATE SET verifier = EXCLUDED.verifier, private_key = EXCLUDED.private_key"
        } else {
            "DO NOTHING"
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO audit_signer (singleton, verifier, private_key) VALUES (1, $1, $2) \
             ON CONFLICT (singleton) {on_conflict}"
        )))
        .bind(&signer.verifier)
        .bind(&signer.private_key)
        .execute(&mut *tx)
        .await?;
        let (verifier, private_key): (String, Option<String>) =
            sqlx::query_as("SELECT verifier, private_key FROM audit_signer").fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(KeptSigner { verifier, private_key })
    }

    async fn verifier_key(&self) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT verifier FROM audit_signer").fetch_optional(&self.pool).await?)
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO checkpoints (tree_size, root_hash, note) VALUES ($1, $2, $3) \
             ON CONFLICT (tree_size) DO NOTHING",
        )
        .bind(to_db(checkpoint.tree_size))
        .bind(checkpoint.root_hash.to_vec())
        .bind(&checkpoint.note)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn checkpoints(&self, after_size: u64, limit: u32) -> Result<Vec<Checkpoint>, StoreError> {
        let rows: Vec<CheckpointRow> = sqlx::query_as(
            "SELECT tree_size, root_hash, note FROM checkpoints WHERE tree_size > $1 ORDER BY tree_size LIMIT $2",
        )
        .bind(to_db(after_size))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Checkpoint::try_from).collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let row: Option<CheckpointRow> =
            sqlx::query_as("SELECT tree_size, root_hash, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        row.map(Checkpoint::try_from).transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Takes the log's append lock (held until the transaction ends) and returns the head and the
/// size of the tree.
async fn lock_head(tx: &mut Transaction<'_, Postgres>) -> Result<(u64, u64), StoreError> {
    let (head, tree_size): (i64, i64) =
        sqlx::query_as("SELECT position, tree_size FROM event_log_head FOR UPDATE").fetch_one(&mut **tx).await?;
    Ok((from_db(head), from_db(tree_size)))
}

/// The stored hashes of `nodes`.
async fn read_nodes(
    executor: impl sqlx::PgExecutor<'_>,
    nodes: &[audit::Node],
) -> Result<HashMap<audit::Node, audit::Hash>, StoreError> {
    if nodes.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i16, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT m.level, m.idx, m.hash FROM merkle_nodes m \
         JOIN unnest($1::smallint[], $2::bigint[]) AS wanted(level, idx) USING (level, idx)",
    )
    .bind(nodes.iter().map(|node| i16::from(node.level)).collect::<Vec<_>>())
    .bind(nodes.iter().map(|node| to_db(node.index)).collect::<Vec<_>>())
    .fetch_all(executor)
    .await?;
    rows.into_iter().map(plan::node_of_row).collect()
}

/// Writes a batch in one statement: `events` (encoded as `payloads`) at positions `head + 1 …`,
/// skipping action ids already recorded, the Merkle tree nodes they complete, and the head
/// moved to `new_head` (announced on [`LOG_CHANNEL`]). Returns the action ids of the rows
/// inserted (`None` for events that carry none): fewer than `events` means a collision, and the
/// caller rolls the whole statement back.
async fn write(
    tx: &mut Transaction<'_, Postgres>,
    head: u64,
    events: &[&NewEvent],
    payloads: &[String],
    nodes: &[(audit::Node, audit::Hash)],
    new_head: u64,
) -> Result<Vec<Option<Uuid>>, StoreError> {
    let positions: Vec<i64> = (1..=events.len() as u64).map(|offset| to_db(head + offset)).collect();
    let event_ids: Vec<Uuid> = events.iter().map(|e| e.event.event_id()).collect();
    let action_ids: Vec<Option<Uuid>> = events.iter().map(|e| e.event.action_id()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event.event_type()).collect();
    let versions: Vec<i32> = events.iter().map(|e| e.event.version()).collect();
    let players: Vec<&str> = events.iter().map(|e| e.event.player_id().as_str()).collect();
    let digests: Vec<Option<Vec<u8>>> = events.iter().map(|e| e.claims_digest.map(|d| d.to_vec())).collect();
    let recorded: Vec<time::OffsetDateTime> = events.iter().map(|e| e.event.recorded_at()).collect();
    let inserted: Vec<Option<Uuid>> = sqlx::query_scalar(
        "WITH inserted AS ( \
             INSERT INTO events (position, event_id, action_id, event_type, event_version, player_id, payload, \
                                 claims_digest, recorded_at) \
             SELECT position, event_id, action_id, event_type, event_version, player_id, payload::json, \
                    claims_digest, recorded_at \
             FROM unnest($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[], \
                         $8::bytea[], $9::timestamptz[]) \
                  AS input(position, event_id, action_id, event_type, event_version, player_id, payload, \
                           claims_digest, recorded_at) \
             ON CONFLICT (action_id) DO NOTHING \
             RETURNING action_id), \
         nodes AS ( \
             INSERT INTO merkle_nodes (level, idx, hash) \
             SELECT * FROM unnest($10::smallint[], $11::bigint[], $12::bytea[])), \
         advanced AS ( \
             UPDATE event_log_head SET position = $13, tree_size = $13) \
         SELECT array(SELECT action_id FROM inserted) FROM pg_notify($14, $13::text)",
    )
    .bind(positions)
    .bind(event_ids)
    .bind(action_ids)
    .bind(types)
    .bind(versions)
    .bind(players)
    .bind(payloads)
    .bind(digests)
    .bind(recorded)
    .bind(nodes.iter().map(|(node, _)| i16::from(node.level)).collect::<Vec<_>>())
    .bind(nodes.iter().map(|(node, _)| to_db(node.index)).collect::<Vec<_>>())
    .bind(nodes.iter().map(|(_, hash)| hash.to_vec()).collect::<Vec<_>>())
    .bind(to_db(new_head))
    .bind(LOG_CHANNEL)
    .fetch_one(&mut **tx)
    .await?;
    Ok(inserted)
}

/// The moderation of `players` at the head (read under the log's append lock).
async fn moderation_of(
    tx: &mut Transaction<'_, Postgres>,
    players: Vec<String>,
) -> Result<plan::Moderation, StoreError> {
    if players.is_empty() {
        return Ok(plan::Moderation::default());
    }
    // The types are literals, so the planner can use the partial index `events_moderation`.
    let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_EVENT} WHERE event_type IN ('PlayerBanned', 'PlayerUnbanned', 'ScoreRevoked') \
         AND player_id = ANY($1) ORDER BY position"
    )))
    .bind(players)
    .fetch_all(&mut **tx)
    .await?;
    let events = rows.into_iter().map(|row| StoredEvent::from(row).decoded()).collect::<Result<Vec<_>, _>>()?;
    Ok(plan::Moderation::of(&events))
}

#[derive(FromRow)]
struct OriginalRow {
    action_id: Uuid,
    claims_digest: Option<Vec<u8>>,
    #[sqlx(flatten)]
    event: EventRow,
}

async fn originals_of(tx: &mut Transaction<'_, Postgres>, action_ids: Vec<Uuid>) -> Result<Originals, StoreError> {
    if action_ids.is_empty() {
        return Ok(Originals::new());
    }
    let rows: Vec<OriginalRow> = sqlx::query_as(
        "SELECT action_id, claims_digest, position, event_id, event_type, event_version, payload::text AS payload, \
                recorded_at \
         FROM events WHERE action_id = ANY($1)",
    )
    .bind(action_ids)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|row| Ok((row.action_id, (StoredEvent::from(row.event).decoded()?, row.claims_digest))))
        .collect()
}

/// The tables a read model lives in: the live one, or the one a rebuild folds beside it.
#[derive(Clone, Copy, Debug)]
struct Tables {
    /// Its row in `projection_checkpoints`.
    projection: &'static str,
    standings: &'static str,
    snapshots: &'static str,
    changes: &'static str,
    flags: &'static str,
}

impl Tables {
    /// The tables of the read model, other than the checkpoint's row.
    fn all(self) -> [&'static str; 4] {
        [self.standings, self.snapshots, self.changes, self.flags]
    }
}

const LIVE: Tables = Tables {
    projection: "leaderboard",
    standings: "leaderboard",
    snapshots: "board_snapshots",
    changes: "board_changes",
    flags: "anomaly_flags",
};

const NEXT: Tables = Tables {
    projection: "leaderboard_next",
    standings: "leaderboard_next",
    snapshots: "board_snapshots_next",
    changes: "board_changes_next",
    flags: "anomaly_flags_next",
};

const PROJECTION: &str = LIVE.projection;

/// The leaderboard read model in PostgreSQL: one row per player, the checkpoint, and snapshots
/// of the fold.
#[derive(Clone, Debug)]
pub struct PgLeaderboard {
    pool: PgPool,
    folding: Folding,
    tables: Tables,
}

impl PgLeaderboard {
    /// The read model in the database behind `pool`, snapshotting every
    /// [`snapshot::DEFAULT_INTERVAL`] positions and flagging by [`Rules::defaults`].
    pub fn new(pool: PgPool) -> Self {
        Self { pool, folding: Folding::default(), tables: LIVE }
    }

    /// The same, snapshotting every `snapshot_interval` positions and flagging by `rules`.
    pub fn folding(self, snapshot_interval: u64, rules: Rules) -> Self {
        Self { folding: Folding::new(snapshot_interval, rules).with_boards(self.folding.boards), ..self }
    }

    /// The same, folding into `boards` too (see [`LeaderboardStore::build_boards`]).
    pub fn boards(self, boards: Boards) -> Self {
        Self { folding: self.folding.with_boards(boards), ..self }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// The checkpoint at which the rebuilt read model took over.
    pub position: u64,
    /// The read model's generation from then on.
    pub generation: u64,
}

impl PgLeaderboard {
    /// Folds a fresh read model from the log beside this (live) one, which keeps serving and
    /// folding meanwhile; once the fresh one is within a batch of it, takes the live one's lock
    /// (the projector waits), folds the rest, and swaps the tables in the same transaction,
    /// bumping the generation so that query services reload. Readers therefore see the old read
    /// model up to the swap and the new one after, at the same checkpoint: no gap, no older
    /// board. `progress` is told the fresh model's checkpoint after each batch.
    pub async fn rebuild(&self, batch: u32, mut progress: impl FnMut(u64)) -> Result<Rebuilt, StoreError> {
        let next = Self {
            pool: self.pool.clone(),
            folding: Folding::new(self.folding.snapshot_interval, self.folding.rules.clone()),
            tables: NEXT,
        };
        let mut tx = self.pool.begin().await?;
        for (fresh, live) in NEXT.all().into_iter().zip(LIVE.all()) {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {fresh}"))).execute(&mut *tx).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE TABLE {fresh} (LIKE {live} INCLUDING ALL)")))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO projection_checkpoints (projection, position) VALUES ($1, 0) \
             ON CONFLICT (projection) DO UPDATE SET position = 0, updated_at = now()",
        )
        .bind(NEXT.projection)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

        // Unlocked, only while the live model is more than a batch ahead: the fresh one must
        // never fold past the checkpoint it will take over at.
        let batch = batch.max(1);
        let mut reached = 0;
        while reached + u64::from(batch) < self.checkpoint().await? {
            reached = next.fold_next(batch).await?.to;
            progress(reached);
        }

        let mut tx = self.pool.begin().await?;
        let live = lock_checkpoint(&mut tx, LIVE.projection).await?;
        loop {
            let from = lock_checkpoint(&mut tx, NEXT.projection).await?;
            if from >= live {
                break;
            }
            let run = read_log(&mut tx, from, live.min(from + u64::from(batch))).await?;
            fold_run(&mut tx, NEXT, from, &run, &next.folding).await?;
        }
        for (fresh, live) in NEXT.all().into_iter().zip(LIVE.all()) {
            for statement in [
                format!("ALTER TABLE {live} RENAME TO {live}_replaced"),
                format!("ALTER TABLE {fresh} RENAME TO {live}"),
                format!("DROP TABLE {live}_replaced"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut *tx).await?;
            }
        }
        let generation: i64 = sqlx::query_scalar(
            "UPDATE projection_checkpoints SET generation = generation + 1, updated_at = now() \
             WHERE projection = $1 RETURNING generation",
        )
        .bind(LIVE.projection)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM projection_checkpoints WHERE projection = $1")
            .bind(NEXT.projection)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        progress(live);
        Ok(Rebuilt { position: live, generation: from_db(generation) })
    }
}

impl LeaderboardStore for PgLeaderboard {
    async fn checkpoint(&self) -> Result<u64, StoreError> {
        let mut connection = self.pool.acquire().await?;
        Ok(from_db(read_checkpoint(&mut connection, self.tables.projection).await?))
    }

    async fn fold_next(&self, limit: u32) -> Result<Applied, StoreError> {
        let mut tx = self.pool.begin().await?;
        let from = lock_checkpoint(&mut tx, self.tables.projection).await?;
        let run = read_log(&mut tx, from, from + u64::from(limit)).await?;
        let (to, flagged) = fold_run(&mut tx, self.tables, from, &run, &self.folding).await?;
        tx.commit().await?;
        Ok(Applied { from, to, skipped: 0, forged: Vec::new(), flagged })
    }

    async fn fold_claimed(&self, claims: &[Claim]) -> Result<Applied, StoreError> {
        let mut tx = self.pool.begin().await?;
        let from = lock_checkpoint(&mut tx, self.tables.projection).await?;
        let Some(through) = plan::claimed_window(claims, from) else {
            tx.commit().await?;
            return Ok(Applied { from, to: from, skipped: claims.len(), forged: Vec::new(), flagged: Vec::new() });
        };
        let log = read_log(&mut tx, from, through).await?;
        let confirmation = plan::confirm(claims, from, through, &log);
        let (to, flagged) =
            fold_run(&mut tx, self.tables, from, &log[..(confirmation.to - from) as usize], &self.folding).await?;
        tx.commit().await?;
        Ok(Applied { from, to, skipped: confirmation.skipped, forged: confirmation.forged, flagged })
    }

    async fn changes_since(&self, since: Anchor) -> Result<Option<Changes>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let stands: StandsRow = sqlx::query_as(
            "SELECT c.position AS checkpoint, c.generation, \
                    (SELECT event_id FROM events WHERE position = $2) AS at_since, \
                    (SELECT event_id FROM events WHERE position = c.position) AS at_checkpoint \
             FROM projection_checkpoints c WHERE c.projection = $1",
        )
        .bind(PROJECTION)
        .bind(to_db(since.position))
        .fetch_one(&mut *tx)
        .await?;
        let Some(to) = stands.continuing(since) else { return Ok(None) };
        let rows: Vec<StandingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {STANDING_COLUMNS} FROM leaderboard WHERE changed_at > $1"
        )))
        .bind(to_db(since.position))
        .fetch_all(&mut *tx)
        .await?;
        let seasons: Vec<SeasonRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SEASON_COLUMNS} FROM board_standings WHERE changed_at > $1"
        )))
        .bind(to_db(since.position))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        changes_from_rows(since, to, rows, seasons).map(Some)
    }

    async fn load(&self) -> Result<(Board, Anchor), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let (position, generation): (i64, i64) =
            sqlx::query_as("SELECT position, generation FROM projection_checkpoints WHERE projection = $1")
                .bind(PROJECTION)
                .fetch_one(&mut *tx)
                .await?;
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {STANDING_COLUMNS} FROM leaderboard")));
        let loaded = board_from_rows(position, generation, rows.fetch(&mut *tx)).await?;
        tx.commit().await?;
        Ok(loaded)
    }

    async fn load_seasons(&self, wanted: &[(String, Season)]) -> Result<Seasons, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let (position, generation): (i64, i64) =
            sqlx::query_as("SELECT position, generation FROM projection_checkpoints WHERE projection = $1")
                .bind(PROJECTION)
                .fetch_one(&mut *tx)
                .await?;
        let ready: Vec<(String, String)> = sqlx::query_as("SELECT board, definition FROM boards WHERE position = $1")
            .bind(position)
            .fetch_all(&mut *tx)
            .await?;
        let standings: Vec<SeasonStanding> = convert_rows::<SeasonRow, _>(
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SEASON_COLUMNS} FROM board_standings \
             WHERE (board, season) IN (SELECT * FROM unnest($1::text[], $2::text[])) \
               AND board IN (SELECT board FROM boards WHERE position = $3)"
            )))
            .bind(wanted.iter().map(|(board, _)| board.as_str()).collect::<Vec<_>>())
            .bind(wanted.iter().map(|(_, season)| season.to_string()).collect::<Vec<_>>())
            .bind(position)
            .fetch(&mut *tx),
        )
        .await?;
        tx.commit().await?;
        let anchor = Anchor { position: from_db(position), event_id: None, generation: from_db(generation) };
        Ok(Seasons { ready: ready.into_iter().collect(), standings, anchor })
    }

    async fn build_boards(&self, batch: u32) -> Result<BoardsBuilt, StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_checkpoint(&mut tx, PROJECTION).await?;
        let (dropped, add) = sync_boards(&mut *tx, &self.folding.boards).await?;
        tx.commit().await?;
        let mut built = BoardsBuilt { dropped, ..BoardsBuilt::default() };
        for board in add {
            loop {
                let mut tx = self.pool.begin().await?;
                let checkpoint = lock_checkpoint(&mut tx, PROJECTION).await?;
                let folded = build_step(&mut *tx, &board, checkpoint, batch).await?;
                tx.commit().await?;
                if folded == 0 {
                    break;
                }
                built.events += folded;
            }
            built.built.push(board.id.to_string());
        }
        if !built.built.is_empty() || !built.dropped.is_empty() {
            sqlx::query("UPDATE projection_checkpoints SET generation = generation + 1 WHERE projection = $1")
                .bind(PROJECTION)
                .execute(&self.pool)
                .await?;
        }
        Ok(built)
    }

    async fn snapshot_before(&self, position: u64) -> Result<Option<Snapshot>, StoreError> {
        let row: Option<SnapshotRow> = sqlx::query_as(
            "SELECT position, standings FROM board_snapshots WHERE position <= $1 ORDER BY position DESC LIMIT 1",
        )
        .bind(to_db(position))
        .fetch_optional(&self.pool)
        .await?;
        row.map(Snapshot::try_from).transpose()
    }

    async fn changed_between(&self, after: u64, through: u64) -> Result<Vec<Changed>, StoreError> {
        let rows: Vec<ChangedRow> = sqlx::query_as(
            "SELECT from_position, position, standings FROM board_changes \
             WHERE position > $1 AND position <= $2 ORDER BY position",
        )
        .bind(to_db(after))
        .bind(to_db(through))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Changed::try_from).collect()
    }
}

async fn read_checkpoint(connection: &mut PgConnection, projection: &str) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
        .bind(projection)
        .fetch_one(connection)
        .await?)
}

/// Takes the read model's lock (held until the transaction ends) and returns the checkpoint.
async fn lock_checkpoint(tx: &mut Transaction<'_, Postgres>, projection: &str) -> Result<u64, StoreError> {
    let position: i64 =
        sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1 FOR UPDATE")
            .bind(projection)
            .fetch_one(&mut **tx)
            .await?;
    Ok(from_db(position))
}

/// The log's events in `(after, through]`, in order.
async fn read_log(connection: &mut PgConnection, after: u64, through: u64) -> Result<Vec<StoredEvent>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_EVENT} WHERE position > $1 AND position <= $2 ORDER BY position"
    )))
    .bind(to_db(after))
    .bind(to_db(through))
    .fetch_all(connection)
    .await?;
    Ok(rows.into_iter().map(StoredEvent::from).collect())
}

/// Folds `run`, the log's events from `from + 1` on, into the read model and moves the
/// checkpoint to its end, recording the anomaly flags it raises and taking a snapshot if the
/// fold crossed a multiple of the snapshot interval; returns the new checkpoint and the rules
/// that flagged.
async fn fold_run(
    tx: &mut Transaction<'_, Postgres>,
    tables: Tables,
    from: u64,
    run: &[StoredEvent],
    folding: &Folding,
) -> Result<(u64, Vec<String>), StoreError> {
    let to = from + run.len() as u64;
    if run.is_empty() {
        return Ok((to, Vec::new()));
    }
    let (events, players) = decode_run(run)?;
    // One index probe per player, whatever the table's size: as `player_id = ANY($1)`, a batch
    // of a few hundred players was planned as a scan of every standing (BENCHMARKS.md).
    // `LIMIT 1` keeps the subquery a nested loop (the key is unique, so it limits nothing).
    let rows: Vec<StandingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT standing.* FROM unnest($1::text[]) AS wanted(id), \
         LATERAL (SELECT {STANDING_COLUMNS} FROM {} WHERE player_id = wanted.id LIMIT 1) AS standing",
        tables.standings
    )))
    .bind(&players)
    .fetch_all(&mut **tx)
    .await?;
    let standings = folded_onto(rows, &events)?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} (player_id, display_name, score, reached_at, banned, changed_at) \
         SELECT player_id, display_name, score, reached_at, banned, $6 \
         FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::boolean[]) \
              AS input(player_id, display_name, score, reached_at, banned) \
         ON CONFLICT (player_id) DO UPDATE SET \
             score = EXCLUDED.score, \
             reached_at = EXCLUDED.reached_at, \
             display_name = EXCLUDED.display_name, \
             banned = EXCLUDED.banned, \
             changed_at = EXCLUDED.changed_at",
        tables.standings
    )))
    .bind(standings.iter().map(|s| s.player_id.as_str()).collect::<Vec<_>>())
    .bind(standings.iter().map(|s| s.name.as_ref().map(DisplayName::as_str)).collect::<Vec<_>>())
    .bind(standings.iter().map(|s| to_db(s.score)).collect::<Vec<_>>())
    .bind(standings.iter().map(|s| to_db(s.reached_at)).collect::<Vec<_>>())
    .bind(standings.iter().map(|s| s.banned).collect::<Vec<_>>())
    .bind(to_db(to))
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE projection = $1")
        .bind(tables.projection)
        .bind(to_db(to))
        .execute(&mut **tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} (position, from_position, standings) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        tables.changes
    )))
    .bind(to_db(to))
    .bind(to_db(from))
    .bind(snapshot::encode(standings))
    .execute(&mut **tx)
    .await?;
    if tables.projection == LIVE.projection {
        fold_boards(&mut **tx, folding.boards.named(), from, to, &events).await?;
    }
    let flagged = folding.flag(&mut PgFlagSql { tx: &mut *tx, table: tables.flags }, from, &events).await?;
    if snapshot::due(from, to, folding.snapshot_interval) {
        take_snapshot(tx, tables, to).await?;
    }
    Ok((to, flagged))
}

/// A fold transaction, as flagging uses it: its flags go to `table`.
struct PgFlagSql<'t, 'c> {
    tx: &'t mut Transaction<'c, Postgres>,
    table: &'static str,
}

impl FlagSql for PgFlagSql<'_, '_> {
    async fn position_before(&mut self, position: u64, lookback: time::Duration) -> Result<Option<u64>, StoreError> {
        let before: Option<i64> = sqlx::query_scalar(
            "SELECT position FROM events \
             WHERE recorded_at <= (SELECT recorded_at FROM events WHERE position = $1) - make_interval(secs => $2) \
             ORDER BY recorded_at DESC, position DESC LIMIT 1",
        )
        .bind(to_db(position))
        .bind(lookback.as_seconds_f64())
        .fetch_optional(&mut **self.tx)
        .await?;
        Ok(before.map(from_db))
    }

    async fn read_log(&mut self, after: u64, through: u64) -> Result<Vec<StoredEvent>, StoreError> {
        read_log(self.tx, after, through).await
    }

    async fn first_seen(&mut self, players: &[&str]) -> Result<Vec<FirstSeenRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT p AS player_id, \
                    (SELECT recorded_at FROM events WHERE player_id = p ORDER BY position LIMIT 1) AS first \
             FROM unnest($1::text[]) AS p",
        )
        .bind(players)
        .fetch_all(&mut **self.tx)
        .await?)
    }

    async fn record(&mut self, flags: &[Flag]) -> Result<(), StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (position, rule, player_id, events, flagged_at) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) \
             ON CONFLICT DO NOTHING",
            self.table
        )))
        .bind(flags.iter().map(|f| to_db(f.position)).collect::<Vec<_>>())
        .bind(flags.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>())
        .bind(flags.iter().map(|f| f.player_id.as_str()).collect::<Vec<_>>())
        .bind(flags.iter().map(|f| serde_json::to_string(&f.events).expect("positions serialise")).collect::<Vec<_>>())
        .bind(flags.iter().map(|f| f.flagged_at).collect::<Vec<_>>())
        .execute(&mut **self.tx)
        .await?;
        Ok(())
    }
}

impl BoardSql for PgConnection {
    async fn kept(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT board, definition FROM boards ORDER BY board").fetch_all(&mut *self).await?)
    }

    async fn drop_board(&mut self, id: &str) -> Result<(), StoreError> {
        // Its standings go with it (ON DELETE CASCADE).
        sqlx::query("DELETE FROM boards WHERE board = $1").bind(id).execute(&mut *self).await?;
        Ok(())
    }

    async fn add_board(&mut self, board: &BoardDef) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO boards (board, definition) VALUES ($1, $2)")
            .bind(board.id.as_str())
            .bind(board.definition())
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn board_position(&mut self, id: &str) -> Result<u64, StoreError> {
        let position: i64 = sqlx::query_scalar("SELECT position FROM boards WHERE board = $1 FOR UPDATE")
            .bind(id)
            .fetch_one(&mut *self)
            .await?;
        Ok(from_db(position))
    }

    async fn read_run(&mut self, after: u64, through: u64) -> Result<Vec<StoredEvent>, StoreError> {
        read_log(self, after, through).await
    }

    async fn advance(&mut self, boards: &[BoardDef], from: u64, to: u64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "UPDATE boards b SET position = $4 FROM unnest($1::text[], $2::text[]) AS c(board, definition) \
             WHERE b.board = c.board AND b.definition = c.definition AND b.position = $3 RETURNING b.board",
        )
        .bind(boards.iter().map(|b| b.id.as_str()).collect::<Vec<_>>())
        .bind(boards.iter().map(BoardDef::definition).collect::<Vec<_>>())
        .bind(to_db(from))
        .bind(to_db(to))
        .fetch_all(&mut *self)
        .await?)
    }

    async fn read_events(&mut self, positions: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_EVENT} WHERE position = ANY($1)")))
                .bind(positions.iter().map(|p| to_db(*p)).collect::<Vec<_>>())
                .fetch_all(&mut *self)
                .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    async fn read_seasons(&mut self, boards: &[&str], reads: &Reads) -> Result<Vec<SeasonRow>, StoreError> {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SEASON_COLUMNS} FROM board_standings \
             WHERE (board, season, player_id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[])) \
             UNION \
             SELECT {SEASON_COLUMNS} FROM board_standings WHERE player_id = ANY($4) AND board = ANY($5)"
        )))
        .bind(reads.places.iter().map(|p| p.board.as_str()).collect::<Vec<_>>())
        .bind(reads.places.iter().map(|p| p.season.to_string()).collect::<Vec<_>>())
        .bind(reads.places.iter().map(|p| p.player_id.as_str()).collect::<Vec<_>>())
        .bind(reads.players.iter().map(|p| p.as_str()).collect::<Vec<_>>())
        .bind(boards)
        .fetch_all(&mut *self)
        .await?)
    }

    async fn write_seasons(&mut self, standings: &[SeasonStanding], to: u64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO board_standings \
                 (board, season, player_id, display_name, score, reached_at, banned, changed_at) \
             SELECT *, $8 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], \
                                       $7::boolean[]) \
             ON CONFLICT (board, season, player_id) DO UPDATE SET \
                 score = EXCLUDED.score, \
                 reached_at = EXCLUDED.reached_at, \
                 display_name = EXCLUDED.display_name, \
                 banned = EXCLUDED.banned, \
                 changed_at = EXCLUDED.changed_at",
        )
        .bind(standings.iter().map(|s| s.board.as_str()).collect::<Vec<_>>())
        .bind(standings.iter().map(|s| s.season.to_string()).collect::<Vec<_>>())
        .bind(standings.iter().map(|s| s.standing.player_id.as_str()).collect::<Vec<_>>())
        .bind(standings.iter().map(|s| s.standing.name.as_ref().map(DisplayName::as_str)).collect::<Vec<_>>())
        .bind(standings.iter().map(|s| to_db(s.standing.score)).collect::<Vec<_>>())
        .bind(standings.iter().map(|s| to_db(s.standing.reached_at)).collect::<Vec<_>>())
        .bind(standings.iter().map(|s| s.standing.banned).collect::<Vec<_>>())
        .bind(to_db(to))
        .execute(&mut *self)
        .await?;
        Ok(())
    }
}

/// Keeps every standing of the read model, as of `position`, as a snapshot.
async fn take_snapshot(tx: &mut Transaction<'_, Postgres>, tables: Tables, position: u64) -> Result<(), StoreError> {
    let rows: Vec<StandingRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {STANDING_COLUMNS} FROM {}", tables.standings)))
            .fetch_all(&mut **tx)
            .await?;
    let players = rows.len();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} (position, players, standings) VALUES ($1, $2, $3) ON CONFLICT (position) DO NOTHING",
        tables.snapshots
    )))
    .bind(to_db(position))
    .bind(to_db(players as u64))
    .bind(snapshot::encode(standings_of(rows)?))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

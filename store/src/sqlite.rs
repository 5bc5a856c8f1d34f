//! The event log and the leaderboard read model in one SQLite file: the all-in-one binary's
//! embedded default.
//!
//! WAL mode with `synchronous = FULL`: a commit is on disk before it returns, so nothing
//! acknowledged is lost to a `kill -9` or a power cut. One connection writes (appends and
//! folds take turns on it, each transaction `BEGIN IMMEDIATE`); readers use a pool of their
//! own and never block the writer.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use events::boards::{BoardDef, Boards, Reads, Season, SeasonStanding};
use events::{Board, DisplayName};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, QueryBuilder, Sqlite, SqliteConnection, Transaction};
use uuid::Uuid;

use crate::plan::{self, Attempt, Originals};
use crate::{
    Anchor, AppendOutcome, Applied, BoardSql, BoardsBuilt, Changed, ChangedRow, Changes, Checkpoint, CheckpointRow,
    Claim, EventRow, EventStore, FirstSeenRow, FlagRow, FlagSql, Folding, KeptSigner, LeaderboardStore, NewEvent,
    SEASON_COLUMNS, STANDING_COLUMNS, SeasonRow, Seasons, Snapshot, SnapshotRow, StandingRow, StandsRow, StoreError,
    StoredEvent, board_from_rows, build_step, changes_from_rows, convert_rows, decode_run, fold_boards, folded_onto,
    from_db, snapshot, standings_of, sync_boards, to_db,
};
use events::anomaly::{Flag, Rules};

/// The SQLite schema: event log, read model, checkpoints.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// The file name inside the data folder.
pub const FILE_NAME: &str = "scoreboard.db";

/// Rows per `INSERT` statement (9 bound values each, well under SQLite's limit).
const ROWS_PER_INSERT: usize = 500;

const SELECT_EVENT: &str = "SELECT position, event_id, event_type, event_version, payload, recorded_at FROM events";

/// The two pools on one database file.
#[derive(Clone, Debug)]
struct Pools {
    write: SqlitePool,
    read: SqlitePool,
}

/// Opens (creating it if needed) `scoreboard.db` in `folder` and applies pending migrations.
pub async fn open(folder: &Path) -> Result<(SqliteEventLog, SqliteLeaderboard), StoreError> {
    std::fs::create_dir_all(folder).map_err(|error| StoreError::Unavailable(sqlx::Error::Io(error)))?;
    let options = SqliteConnectOptions::new()
        .filename(folder.join(FILE_NAME))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5));
    let write = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
    MIGRATOR.run(&write).await.map_err(|error| StoreError::Database(error.into()))?;
    let read = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
    let pools = Pools { write, read };
    Ok((SqliteEventLog { pools: pools.clone() }, SqliteLeaderboard { pools, folding: Folding::default() }))
}

/// The event log in SQLite.
#[derive(Clone, Debug)]
pub struct SqliteEventLog {
    pools: Pools,
}

impl SqliteEventLog {
    async fn attempt(&self, fresh: Vec<&NewEvent>, wanted: Vec<Uuid>) -> Result<Attempt, StoreError> {
        let mut tx = self.pools.write.begin_with("BEGIN IMMEDIATE").await?;
        let (head, tree_size): (i64, i64) =
            sqlx::query_as("SELECT position, tree_size FROM event_log_head").fetch_one(&mut *tx).await?;
        let (head, tree_size) = (from_db(head), from_db(tree_size));
        let refused = plan::admit(&fresh, head, moderation_of(&mut tx, plan::players_of(&fresh)).await?);
        let admitted: Vec<&NewEvent> =
            fresh.into_iter().filter(|new| !refused.contains_key(&new.event.event_id())).collect();
        let mut inserted = 0;
        let mut inserted_ids = HashSet::new();
        let payloads: Vec<String> = admitted.iter().map(|new| new.event.encode()).collect();
        for (chunk, (events, payloads)) in
            admitted.chunks(ROWS_PER_INSERT).zip(payloads.chunks(ROWS_PER_INSERT)).enumerate()
        {
            let first = head + (chunk * ROWS_PER_INSERT) as u64 + 1;
            for action_id in insert_at(&mut tx, first, events, payloads).await? {
                inserted += 1;
                inserted_ids.extend(action_id);
            }
        }
        if inserted < admitted.len() {
            tx.rollback().await?;
            return Ok(Attempt::Collided(plan::collided(&admitted, &inserted_ids)));
        }
        if !admitted.is_empty() {
            // The tree grows in the transaction that decides the positions (a log older than
            // its tree is hashed first).
            let mut leaves = match tree_size < head {
                true => plan::stored_leaves(&read_log(&mut tx, tree_size, head).await?),
                false => Vec::with_capacity(admitted.len()),
            };
            leaves.extend(plan::leaves(head + 1, &admitted, &payloads));
            extend_tree(&mut tx, tree_size, &leaves).await?;
            sqlx::query("UPDATE event_log_head SET position = ?1, tree_size = ?1")
                .bind(to_db(head + admitted.len() as u64))
                .execute(&mut *tx)
                .await?;
        }
        let originals = originals_of(&mut tx, wanted).await?;
        tx.commit().await?;
        Ok(Attempt::Committed { head, originals, refused })
    }
}

/// Inserts `events` (encoded as `payloads`) at positions `first …`, skipping action ids already
/// recorded; returns the action ids of the rows inserted (`None` for events that carry none).
async fn insert_at(
    tx: &mut Transaction<'_, Sqlite>,
    first: u64,
    events: &[&NewEvent],
    payloads: &[String],
) -> Result<Vec<Option<Uuid>>, StoreError> {
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO events (position, event_id, action_id, event_type, event_version, player_id, payload, \
                             claims_digest, recorded_at) ",
    );
    insert.push_values(events.iter().zip(payloads).zip(first..), |mut row, ((new, payload), position)| {
        row.push_bind(to_db(position))
            .push_bind(new.event.event_id())
            .push_bind(new.event.action_id())
            .push_bind(new.event.event_type())
            .push_bind(new.event.version())
            .push_bind(new.event.player_id().to_string())
            .push_bind(payload.as_str())
            .push_bind(new.claims_digest.map(|d| d.to_vec()))
            .push_bind(new.event.recorded_at());
    });
    insert.push(" ON CONFLICT (action_id) DO NOTHING RETURNING action_id");
    Ok(insert.build_query_scalar().fetch_all(&mut **tx).await?)
}

/// The moderation of `players` at the head (read inside the write transaction).
async fn moderation_of(tx: &mut Transaction<'_, Sqlite>, players: Vec<String>) -> Result<plan::Moderation, StoreError> {
    if players.is_empty() {
        return Ok(plan::Moderation::default());
    }
    // The types are literals, so SQLite can use the partial index `events_moderation`.
    let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_EVENT} WHERE event_type IN ('PlayerBanned', 'PlayerUnbanned', 'ScoreRevoked') \
         AND player_id IN (SELECT value FROM json_each(?)) ORDER BY position"
    )))
    .bind(serde_json::to_string(&players).expect("strings serialise"))
    .fetch_all(&mut **tx)
    .await?;
    let events = rows.into_iter().map(|row| StoredEvent::from(row).decoded()).collect::<Result<Vec<_>, _>>()?;
    Ok(plan::Moderation::of(&events))
}

/// Appends `leaves` to the tree of `size` leaves: every node they complete.
async fn extend_tree(tx: &mut Transaction<'_, Sqlite>, size: u64, leaves: &[audit::Hash]) -> Result<(), StoreError> {
    let known = read_nodes(&mut *tx, &audit::frontier(size)).await?;
    let nodes = audit::append(size, &plan::frontier_hashes(size, &known)?, leaves);
    for chunk in nodes.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO merkle_nodes (level, idx, hash) ");
        insert.push_values(chunk, |mut row, (node, hash)| {
            row.push_bind(i16::from(node.level)).push_bind(to_db(node.index)).push_bind(hash.to_vec());
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The stored hashes of `nodes`.
async fn read_nodes(
    connection: &mut SqliteConnection,
    nodes: &[audit::Node],
) -> Result<HashMap<audit::Node, audit::Hash>, StoreError> {
    let mut found = HashMap::with_capacity(nodes.len());
    for chunk in nodes.chunks(ROWS_PER_INSERT) {
        let mut select =
            QueryBuilder::<Sqlite>::new("SELECT level, idx, hash FROM merkle_nodes WHERE (level, idx) IN (");
        let mut pairs = select.separated(", ");
        for node in chunk {
            pairs.push("(").push_bind_unseparated(i16::from(node.level)).push_unseparated(", ");
            pairs.push_bind_unseparated(to_db(node.index)).push_unseparated(")");
        }
        select.push(")");
        let rows: Vec<(i16, i64, Vec<u8>)> = select.build_query_as().fetch_all(&mut *connection).await?;
        for row in rows {
            let (node, hash) = plan::node_of_row(row)?;
            found.insert(node, hash);
        }
    }
    Ok(found)
}

#[derive(FromRow)]
struct OriginalRow {
    claims_digest: Option<Vec<u8>>,
    #[sqlx(flatten)]
    event: EventRow,
}

async fn originals_of(tx: &mut Transaction<'_, Sqlite>, action_ids: Vec<Uuid>) -> Result<Originals, StoreError> {
    let mut originals = Originals::new();
    for action_id in action_ids {
        let row: OriginalRow = sqlx::query_as(
            "SELECT claims_digest, position, event_id, event_type, event_version, payload, recorded_at \
             FROM events WHERE action_id = ?",
        )
        .bind(action_id)
        .fetch_one(&mut **tx)
        .await?;
        originals.insert(action_id, (StoredEvent::from(row.event).decoded()?, row.claims_digest));
    }
    Ok(originals)
}

impl EventStore for SqliteEventLog {
    async fn append(&self, batch: &[NewEvent]) -> Result<Vec<AppendOutcome>, StoreError> {
        plan::append_with(batch, |fresh, wanted| self.attempt(fresh, wanted)).await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head").fetch_one(&self.pools.read).await?;
        Ok(from_db(head))
    }

    async fn read_after(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_EVENT} WHERE position > ? ORDER BY position LIMIT ?")))
                .bind(to_db(after))
                .bind(i64::from(limit))
                .fetch_all(&self.pools.read)
                .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<StoredEvent>, StoreError> {
        let row: Option<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT_EVENT} WHERE event_id = ?")))
            .bind(event_id)
            .fetch_optional(&self.pools.read)
            .await?;
        Ok(row.map(StoredEvent::from))
    }

    async fn read_player(&self, player_id: &str, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_EVENT} WHERE player_id = ? AND position > ? ORDER BY position LIMIT ?"
        )))
        .bind(player_id)
        .bind(to_db(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pools.read)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    async fn flags(&self, limit: u32) -> Result<Vec<Flag>, StoreError> {
        let rows: Vec<FlagRow> = sqlx::query_as(
            "SELECT position, rule, player_id, events, flagged_at FROM anomaly_flags \
             ORDER BY position DESC, rule LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pools.read)
        .await?;
        rows.into_iter().map(Flag::try_from).collect()
    }

    async fn position_at(&self, time: time::OffsetDateTime) -> Result<u64, StoreError> {
        // By Julian day, as migrations/sqlite/0007 indexes times: to the millisecond.
        let position: Option<i64> = sqlx::query_scalar(
            "SELECT position FROM events WHERE julianday(recorded_at) <= julianday(?) \
             ORDER BY julianday(recorded_at) DESC, position DESC LIMIT 1",
        )
        .bind(time)
        .fetch_optional(&self.pools.read)
        .await?;
        Ok(position.map_or(0, from_db))
    }

    async fn tree_size(&self) -> Result<u64, StoreError> {
        let size: i64 = sqlx::query_scalar("SELECT tree_size FROM event_log_head").fetch_one(&self.pools.read).await?;
        Ok(from_db(size))
    }

    async fn read_nodes(&self, nodes: &[audit::Node]) -> Result<HashMap<audit::Node, audit::Hash>, StoreError> {
        let mut connection = self.pools.read.acquire().await?;
        read_nodes(&mut connection, nodes).await
    }

    async fn keep_signer(&self, signer: &KeptSigner, replace: bool) -> Result<KeptSigner, StoreError> {
        let on_conflict = if replace {
            "DO UPDATE SET verifier = EXCLUDED.verifier, private_key = EXCLUDED.private_key"
        } else {
            "DO NOTHING"
        };
        let mut tx = self.pools.write.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO audit_signer (singleton, verifier, private_key) VALUES (1, ?, ?) \
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
        Ok(sqlx::query_scalar("SELECT verifier FROM audit_signer").fetch_optional(&self.pools.read).await?)
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO checkpoints (tree_size, root_hash, note) VALUES (?, ?, ?) \
             ON CONFLICT (tree_size) DO NOTHING",
        )
        .bind(to_db(checkpoint.tree_size))
        .bind(checkpoint.root_hash.to_vec())
        .bind(&checkpoint.note)
        .execute(&self.pools.write)
        .await?;
        Ok(())
    }

    async fn checkpoints(&self, after_size: u64, limit: u32) -> Result<Vec<Checkpoint>, StoreError> {
        let rows: Vec<CheckpointRow> = sqlx::query_as(
            "SELECT tree_size, root_hash, note FROM checkpoints WHERE tree_size > ? ORDER BY tree_size LIMIT ?",
        )
        .bind(to_db(after_size))
        .bind(i64::from(limit))
        .fetch_all(&self.pools.read)
        .await?;
        rows.into_iter().map(Checkpoint::try_from).collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let row: Option<CheckpointRow> =
            sqlx::query_as("SELECT tree_size, root_hash, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1")
                .fetch_optional(&self.pools.read)
                .await?;
        row.map(Checkpoint::try_from).transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pools.read).await?;
        Ok(())
    }
}

const PROJECTION: &str = "leaderboard";

/// The leaderboard read model in SQLite.
#[derive(Clone, Debug)]
pub struct SqliteLeaderboard {
    pools: Pools,
    folding: Folding,
}

impl SqliteLeaderboard {
    /// The same read model, snapshotting every `snapshot_interval` positions and flagging by
    /// `rules`.
    pub fn folding(self, snapshot_interval: u64, rules: Rules) -> Self {
        Self { folding: Folding::new(snapshot_interval, rules).with_boards(self.folding.boards), ..self }
    }

    /// The same, folding into `boards` too (see [`LeaderboardStore::build_boards`]).
    pub fn boards(self, boards: Boards) -> Self {
        Self { folding: self.folding.with_boards(boards), ..self }
    }
}

impl LeaderboardStore for SqliteLeaderboard {
    async fn checkpoint(&self) -> Result<u64, StoreError> {
        let mut connection = self.pools.read.acquire().await?;
        Ok(from_db(read_checkpoint(&mut connection).await?))
    }

    async fn fold_next(&self, limit: u32) -> Result<Applied, StoreError> {
        let mut tx = self.pools.write.begin_with("BEGIN IMMEDIATE").await?;
        let from = from_db(read_checkpoint(&mut tx).await?);
        let run = read_log(&mut tx, from, from + u64::from(limit)).await?;
        let (to, flagged) = fold_run(&mut tx, from, &run, &self.folding).await?;
        tx.commit().await?;
        Ok(Applied { from, to, skipped: 0, forged: Vec::new(), flagged })
    }

    async fn fold_claimed(&self, claims: &[Claim]) -> Result<Applied, StoreError> {
        let mut tx = self.pools.write.begin_with("BEGIN IMMEDIATE").await?;
        let from = from_db(read_checkpoint(&mut tx).await?);
        let Some(through) = plan::claimed_window(claims, from) else {
            tx.commit().await?;
            return Ok(Applied { from, to: from, skipped: claims.len(), forged: Vec::new(), flagged: Vec::new() });
        };
        let log = read_log(&mut tx, from, through).await?;
        let confirmation = plan::confirm(claims, from, through, &log);
        let (to, flagged) = fold_run(&mut tx, from, &log[..(confirmation.to - from) as usize], &self.folding).await?;
        tx.commit().await?;
        Ok(Applied { from, to, skipped: confirmation.skipped, forged: confirmation.forged, flagged })
    }

    async fn changes_since(&self, since: Anchor) -> Result<Option<Changes>, StoreError> {
        // One read transaction: WAL gives it a single snapshot for every query.
        let mut tx = self.pools.read.begin().await?;
        let stands: StandsRow = sqlx::query_as(
            "SELECT c.position AS checkpoint, c.generation, \
                    (SELECT event_id FROM events WHERE position = ?2) AS at_since, \
                    (SELECT event_id FROM events WHERE position = c.position) AS at_checkpoint \
             FROM projection_checkpoints c WHERE c.projection = ?1",
        )
        .bind(PROJECTION)
        .bind(to_db(since.position))
        .fetch_one(&mut *tx)
        .await?;
        let Some(to) = stands.continuing(since) else { return Ok(None) };
        let rows: Vec<StandingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {STANDING_COLUMNS} FROM leaderboard WHERE changed_at > ?"
        )))
        .bind(to_db(since.position))
        .fetch_all(&mut *tx)
        .await?;
        let seasons: Vec<SeasonRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SEASON_COLUMNS} FROM board_standings WHERE changed_at > ?"
        )))
        .bind(to_db(since.position))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        changes_from_rows(since, to, rows, seasons).map(Some)
    }

    async fn load(&self) -> Result<(Board, Anchor), StoreError> {
        let mut tx = self.pools.read.begin().await?;
        let (position, generation): (i64, i64) =
            sqlx::query_as("SELECT position, generation FROM projection_checkpoints WHERE projection = ?")
                .bind(PROJECTION)
                .fetch_one(&mut *tx)
                .await?;
        let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {STANDING_COLUMNS} FROM leaderboard")));
        let loaded = board_from_rows(position, generation, rows.fetch(&mut *tx)).await?;
        tx.commit().await?;
        Ok(loaded)
    }

    async fn load_seasons(&self, wanted: &[(String, Season)]) -> Result<Seasons, StoreError> {
        let mut tx = self.pools.read.begin().await?;
        let (position, generation): (i64, i64) =
            sqlx::query_as("SELECT position, generation FROM projection_checkpoints WHERE projection = ?")
                .bind(PROJECTION)
                .fetch_one(&mut *tx)
                .await?;
        let ready: Vec<(String, String)> = sqlx::query_as("SELECT board, definition FROM boards WHERE position = ?")
            .bind(position)
            .fetch_all(&mut *tx)
            .await?;
        let wanted: Vec<(&str, String)> =
            wanted.iter().map(|(board, season)| (board.as_str(), season.to_string())).collect();
        let standings: Vec<SeasonStanding> = convert_rows::<SeasonRow, _>(
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {SEASON_COLUMNS} FROM json_each(?1) AS w JOIN board_standings \
                 ON board = json_extract(w.value, '$[0]') AND season = json_extract(w.value, '$[1]') \
             WHERE board IN (SELECT board FROM boards WHERE position = ?2)"
            )))
            .bind(serde_json::to_string(&wanted).expect("strings serialise"))
            .bind(position)
            .fetch(&mut *tx),
        )
        .await?;
        tx.commit().await?;
        let anchor = Anchor { position: from_db(position), event_id: None, generation: from_db(generation) };
        Ok(Seasons { ready: ready.into_iter().collect(), standings, anchor })
    }

    async fn build_boards(&self, batch: u32) -> Result<BoardsBuilt, StoreError> {
        // Each transaction holds the one writer, so folds wait for it as for any other.
        let mut tx = self.pools.write.begin_with("BEGIN IMMEDIATE").await?;
        let (dropped, add) = sync_boards(&mut *tx, &self.folding.boards).await?;
        tx.commit().await?;
        let mut built = BoardsBuilt { dropped, ..BoardsBuilt::default() };
        for board in add {
            loop {
                let mut tx = self.pools.write.begin_with("BEGIN IMMEDIATE").await?;
                let checkpoint = from_db(read_checkpoint(&mut tx).await?);
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
            sqlx::query("UPDATE projection_checkpoints SET generation = generation + 1 WHERE projection = ?")
                .bind(PROJECTION)
                .execute(&self.pools.write)
                .await?;
        }
        Ok(built)
    }

    async fn snapshot_before(&self, position: u64) -> Result<Option<Snapshot>, StoreError> {
        let row: Option<SnapshotRow> = sqlx::query_as(
            "SELECT position, standings FROM board_snapshots WHERE position <= ? ORDER BY position DESC LIMIT 1",
        )
        .bind(to_db(position))
        .fetch_optional(&self.pools.read)
        .await?;
        row.map(Snapshot::try_from).transpose()
    }

    async fn changed_between(&self, after: u64, through: u64) -> Result<Vec<Changed>, StoreError> {
        let rows: Vec<ChangedRow> = sqlx::query_as(
            "SELECT from_position, position, standings FROM board_changes \
             WHERE position > ? AND position <= ? ORDER BY position",
        )
        .bind(to_db(after))
        .bind(to_db(through))
        .fetch_all(&self.pools.read)
        .await?;
        rows.into_iter().map(Changed::try_from).collect()
    }
}

async fn read_checkpoint(connection: &mut SqliteConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = ?")
        .bind(PROJECTION)
        .fetch_one(connection)
        .await?)
}

/// The log's events in `(after, through]`, in order.
async fn read_log(connection: &mut SqliteConnection, after: u64, through: u64) -> Result<Vec<StoredEvent>, StoreError> {
    let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_EVENT} WHERE position > ? AND position <= ? ORDER BY position"
    )))
    .bind(to_db(after))
    .bind(to_db(through))
    .fetch_all(connection)
    .await?;
    Ok(rows.into_iter().map(StoredEvent::from).collect())
}

/// Folds `run` as `postgres::fold_run` does.
async fn fold_run(
    connection: &mut SqliteConnection,
    from: u64,
    run: &[StoredEvent],
    folding: &Folding,
) -> Result<(u64, Vec<String>), StoreError> {
    let to = from + run.len() as u64;
    if run.is_empty() {
        return Ok((to, Vec::new()));
    }
    let (events, players) = decode_run(run)?;
    let rows: Vec<StandingRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {STANDING_COLUMNS} FROM leaderboard WHERE player_id IN (SELECT value FROM json_each(?))"
    )))
    .bind(serde_json::to_string(&players).expect("strings serialise"))
    .fetch_all(&mut *connection)
    .await?;
    let standings = folded_onto(rows, &events)?;
    for standing in &standings {
        sqlx::query(
            "INSERT INTO leaderboard (player_id, display_name, score, reached_at, banned, changed_at) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (player_id) DO UPDATE SET \
                 score = excluded.score, \
                 reached_at = excluded.reached_at, \
                 display_name = excluded.display_name, \
                 banned = excluded.banned, \
                 changed_at = excluded.changed_at",
        )
        .bind(standing.player_id.as_str())
        .bind(standing.name.as_ref().map(DisplayName::as_str))
        .bind(to_db(standing.score))
        .bind(to_db(standing.reached_at))
        .bind(standing.banned)
        .bind(to_db(to))
        .execute(&mut *connection)
        .await?;
    }
    sqlx::query("UPDATE projection_checkpoints SET position = ?, updated_at = CURRENT_TIMESTAMP WHERE projection = ?")
        .bind(to_db(to))
        .bind(PROJECTION)
        .execute(&mut *connection)
        .await?;
    sqlx::query(
        "INSERT INTO board_changes (position, from_position, standings) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(to_db(to))
    .bind(to_db(from))
    .bind(snapshot::encode(standings))
    .execute(&mut *connection)
    .await?;
    fold_boards(&mut *connection, folding.boards.named(), from, to, &events).await?;
    let flagged = folding.flag(connection, from, &events).await?;
    if snapshot::due(from, to, folding.snapshot_interval) {
        take_snapshot(connection, to).await?;
    }
    Ok((to, flagged))
}

impl FlagSql for SqliteConnection {
    async fn position_before(&mut self, position: u64, lookback: time::Duration) -> Result<Option<u64>, StoreError> {
        let before: Option<i64> = sqlx::query_scalar(
            "SELECT position FROM events \
             WHERE julianday(recorded_at) <= (SELECT julianday(recorded_at) FROM events WHERE position = ?) - ? / 86400.0 \
             ORDER BY julianday(recorded_at) DESC, position DESC LIMIT 1",
        )
        .bind(to_db(position))
        .bind(lookback.as_seconds_f64())
        .fetch_optional(&mut *self)
        .await?;
        Ok(before.map(from_db))
    }

    async fn read_log(&mut self, after: u64, through: u64) -> Result<Vec<StoredEvent>, StoreError> {
        read_log(self, after, through).await
    }

    async fn first_seen(&mut self, players: &[&str]) -> Result<Vec<FirstSeenRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT value AS player_id, \
                    (SELECT recorded_at FROM events WHERE player_id = value ORDER BY position LIMIT 1) AS first \
             FROM json_each(?)",
        )
        .bind(serde_json::to_string(players).expect("strings serialise"))
        .fetch_all(&mut *self)
        .await?)
    }

    async fn record(&mut self, flags: &[Flag]) -> Result<(), StoreError> {
        for flag in flags {
            sqlx::query(
                "INSERT INTO anomaly_flags (position, rule, player_id, events, flagged_at) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(to_db(flag.position))
            .bind(&flag.rule)
            .bind(flag.player_id.as_str())
            .bind(serde_json::to_string(&flag.events).expect("positions serialise"))
            .bind(flag.flagged_at)
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }
}

impl BoardSql for SqliteConnection {
    async fn kept(&mut self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT board, definition FROM boards ORDER BY board").fetch_all(&mut *self).await?)
    }

    async fn drop_board(&mut self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM board_standings WHERE board = ?").bind(id).execute(&mut *self).await?;
        sqlx::query("DELETE FROM boards WHERE board = ?").bind(id).execute(&mut *self).await?;
        Ok(())
    }

    async fn add_board(&mut self, board: &BoardDef) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO boards (board, definition) VALUES (?, ?)")
            .bind(board.id.as_str())
            .bind(board.definition())
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn board_position(&mut self, id: &str) -> Result<u64, StoreError> {
        // The transaction holds the only writer: nothing else moves it meanwhile.
        let position: i64 =
            sqlx::query_scalar("SELECT position FROM boards WHERE board = ?").bind(id).fetch_one(&mut *self).await?;
        Ok(from_db(position))
    }

    async fn read_run(&mut self, after: u64, through: u64) -> Result<Vec<StoredEvent>, StoreError> {
        read_log(self, after, through).await
    }

    async fn advance(&mut self, boards: &[BoardDef], from: u64, to: u64) -> Result<Vec<String>, StoreError> {
        let mut advanced = Vec::new();
        for board in boards {
            let moved: Option<String> = sqlx::query_scalar(
                "UPDATE boards SET position = ? WHERE board = ? AND definition = ? AND position = ? RETURNING board",
            )
            .bind(to_db(to))
            .bind(board.id.as_str())
            .bind(board.definition())
            .bind(to_db(from))
            .fetch_optional(&mut *self)
            .await?;
            advanced.extend(moved);
        }
        Ok(advanced)
    }

    async fn read_events(&mut self, positions: &[u64]) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_EVENT} WHERE position IN (SELECT value FROM json_each(?))"
        )))
        .bind(serde_json::to_string(positions).expect("numbers serialise"))
        .fetch_all(&mut *self)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    async fn read_seasons(&mut self, boards: &[&str], reads: &Reads) -> Result<Vec<SeasonRow>, StoreError> {
        let places: Vec<(&str, String, &str)> =
            reads.places.iter().map(|p| (p.board.as_str(), p.season.to_string(), p.player_id.as_str())).collect();
        let players: Vec<&str> = reads.players.iter().map(|p| p.as_str()).collect();
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {SEASON_COLUMNS} FROM json_each(?1) AS w JOIN board_standings \
                 ON board = json_extract(w.value, '$[0]') AND season = json_extract(w.value, '$[1]') \
                AND player_id = json_extract(w.value, '$[2]') \
             UNION \
             SELECT {SEASON_COLUMNS} FROM board_standings \
             WHERE player_id IN (SELECT value FROM json_each(?2)) AND board IN (SELECT value FROM json_each(?3))"
        )))
        .bind(serde_json::to_string(&places).expect("strings serialise"))
        .bind(serde_json::to_string(&players).expect("strings serialise"))
        .bind(serde_json::to_string(boards).expect("strings serialise"))
        .fetch_all(&mut *self)
        .await?)
    }

    async fn write_seasons(&mut self, standings: &[SeasonStanding], to: u64) -> Result<(), StoreError> {
        for s in standings {
            sqlx::query(
                "INSERT INTO board_standings \
                     (board, season, player_id, display_name, score, reached_at, banned, changed_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (board, season, player_id) DO UPDATE SET \
                     score = excluded.score, \
                     reached_at = excluded.reached_at, \
                     display_name = excluded.display_name, \
                     banned = excluded.banned, \
                     changed_at = excluded.changed_at",
            )
            .bind(s.board.as_str())
            .bind(s.season.to_string())
            .bind(s.standing.player_id.as_str())
            .bind(s.standing.name.as_ref().map(DisplayName::as_str))
            .bind(to_db(s.standing.score))
            .bind(to_db(s.standing.reached_at))
            .bind(s.standing.banned)
            .bind(to_db(to))
            .execute(&mut *self)
            .await?;
        }
        Ok(())
    }
}

/// Keeps every standing of the read model, as of `position`, as a snapshot.
async fn take_snapshot(connection: &mut SqliteConnection, position: u64) -> Result<(), StoreError> {
    let rows: Vec<StandingRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {STANDING_COLUMNS} FROM leaderboard")))
            .fetch_all(&mut *connection)
            .await?;
    let players = rows.len();
    sqlx::query("INSERT INTO board_snapshots (position, players, standings) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
        .bind(to_db(position))
        .bind(to_db(players as u64))
        .bind(snapshot::encode(standings_of(rows)?))
        .execute(&mut *connection)
        .await?;
    Ok(())
}

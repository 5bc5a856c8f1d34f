//! SQLite: the all-in-one binary's embedded database, one file. Its statements, how values are
//! bound (lists as JSON arrays read with `json_each`, bulk writes as multi-row `INSERT`s), and
//! its transactions.
//!
//! WAL mode with `synchronous = FULL`: a commit is on disk before it returns, so nothing
//! acknowledged is lost to a `kill -9` or a power cut. One connection writes (appends and
//! folds take turns on it, each transaction `BEGIN IMMEDIATE`); readers use a pool of their
//! own and never block the writer.

use std::path::Path;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt as _, TryStreamExt as _};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Arguments as _, AssertSqlSafe, Pool, Sqlite, SqliteConnection, Transaction};

use crate::rows::{EventRow, to_db};
use crate::sql::{Arg, Backend, Column, Notice, Statements, Write};
use crate::{EventLog, ReadModel, StoreError, StoredEvent};

/// The SQLite schema: event log, read model, checkpoints.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/sqlite");

/// The file name inside the data folder.
pub const FILE_NAME: &str = "scoreboard.db";

/// Values bound per statement at most (SQLite allows 32 766).
const VALUES_PER_STATEMENT: usize = 8_000;

/// The event log in SQLite.
pub type SqliteEventLog = EventLog<Lite>;

/// The read model in SQLite.
pub type SqliteLeaderboard = ReadModel<Lite>;

/// Opens (creating it if needed) `scoreboard.db` in `folder` and applies pending migrations.
pub async fn open(folder: &Path) -> Result<(SqliteEventLog, SqliteLeaderboard), StoreError> {
    std::fs::create_dir_all(folder).map_err(|error| StoreError::Unavailable(sqlx::Error::Io(error)))?;
    let options = SqliteConnectOptions::new()
        .filename(folder.join(FILE_NAME))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(5));
    // A file SQLite can open only for reading (its permissions, its folder's, a read-only
    // mount) fails when the connection sets up its journal, or else on the first append, long
    // after start: write its header once now (the same value) to find out.
    let not_writable = |source: sqlx::Error| match &source {
        sqlx::Error::Database(error)
            if error.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(|c| c & 0xff == 8) =>
        {
            StoreError::NotWritable { path: folder.join(FILE_NAME), source }
        }
        _ => StoreError::from(source),
    };
    let write =
        SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.map_err(not_writable)?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&write).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA user_version = {version}")))
        .execute(&write)
        .await
        .map_err(not_writable)?;
    MIGRATOR.run(&write).await.map_err(|error| StoreError::Database(error.into()))?;
    let read = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
    let backend = Lite { write, read };
    Ok((EventLog::on(backend.clone()), ReadModel::on(backend)))
}

/// What an online backup ([`backup`]) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// The log's head in the copy: every event up to it, none after.
    pub position: u64,
    /// How many of them the copy's Merkle tree holds.
    pub tree_size: u64,
    /// The latest signed checkpoint the copy's log covers, if any.
    pub checkpoint: Option<crate::Checkpoint>,
}

/// Copies the database in `folder` into the new file `to` while it serves and writes: one
/// consistent snapshot (SQLite's `VACUUM INTO`, in a read transaction, so writers go on), of
/// every table; says what the copy holds. `to` must not exist yet.
pub async fn backup(folder: &Path, to: &Path) -> Result<Backup, StoreError> {
    use sqlx::Connection as _;
    let source = SqliteConnectOptions::new().filename(folder.join(FILE_NAME)).read_only(true);
    let mut live = SqliteConnection::connect_with(&source.busy_timeout(Duration::from_secs(5))).await?;
    let target = to.to_str().ok_or_else(|| StoreError::InvalidRow(format!("{} is not UTF-8", to.display())))?;
    sqlx::query("VACUUM INTO ?1").bind(target).execute(&mut live).await.map_err(StoreError::Database)?;
    live.close().await?;
    let mut copy = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(to).read_only(true)).await?;
    let (position, tree_size): (i64, i64) =
        sqlx::query_as("SELECT position, tree_size FROM event_log_head").fetch_one(&mut copy).await?;
    let checkpoint: Option<crate::rows::CheckpointRow> = sqlx::query_as(
        "SELECT tree_size, root_hash, note FROM checkpoints WHERE tree_size <= ?1 ORDER BY tree_size DESC LIMIT 1",
    )
    .bind(tree_size)
    .fetch_optional(&mut copy)
    .await?;
    copy.close().await?;
    Ok(Backup {
        position: crate::rows::from_db(position),
        tree_size: crate::rows::from_db(tree_size),
        checkpoint: checkpoint.map(crate::Checkpoint::try_from).transpose()?,
    })
}

/// SQLite, as the store uses it: one writing connection and a pool of readers on one file.
#[derive(Clone, Debug)]
pub struct Lite {
    write: SqlitePool,
    read: SqlitePool,
}

/// `SELECT` of events, then the rest of the statement.
macro_rules! events {
    ($rest:literal) => {
        concat!("SELECT position, event_id, event_type, event_version, payload, recorded_at FROM events ", $rest)
    };
}

/// `SELECT` of board standings, then the rest of the statement.
macro_rules! seasons {
    ($rest:literal) => {
        concat!("SELECT board, season, player_id, display_name, score, reached_at, banned FROM board_standings ", $rest)
    };
}

static SQL: Statements = Statements {
    head: "SELECT position, tree_size FROM event_log_head",
    // BEGIN IMMEDIATE took the database's one write lock already.
    lock_head: "SELECT h.position AS head, h.tree_size, h.position AS seen, \
                e.position, e.event_id, e.event_type, e.event_version, e.payload, e.recorded_at \
         FROM event_log_head h LEFT JOIN events e \
           ON e.event_type IN ('PlayerBanned', 'PlayerUnbanned', 'ScoreRevoked') \
          AND e.player_id IN (SELECT value FROM json_each(?1)) \
         ORDER BY e.position",
    read_after: events!("WHERE position > ?1 ORDER BY position LIMIT ?2"),
    read_range: events!("WHERE position > ?1 AND position <= ?2 ORDER BY position"),
    read_event: events!("WHERE event_id = ?1"),
    read_player: events!("WHERE player_id = ?1 AND position > ?2 ORDER BY position LIMIT ?3"),
    read_positions: events!("WHERE position IN (SELECT value FROM json_each(?1)) ORDER BY position"),
    history: events!("WHERE player_id IN (SELECT value FROM json_each(?1)) AND position <= ?2 ORDER BY position"),
    // The types are literals, so SQLite can use the partial index `events_moderation`.
    moderation: events!(
        "WHERE event_type IN ('PlayerBanned', 'PlayerUnbanned', 'ScoreRevoked') \
         AND player_id IN (SELECT value FROM json_each(?1)) ORDER BY position"
    ),
    recorded: "SELECT action_id FROM events WHERE action_id IN (SELECT unhex(value) FROM json_each(?1))",
    originals: "SELECT action_id, claims_digest, position, event_id, event_type, event_version, payload, recorded_at \
         FROM events WHERE action_id IN (SELECT unhex(value) FROM json_each(?1))",
    // By Julian day, as migrations/sqlite/0007 indexes times: to the millisecond.
    position_at: "SELECT position FROM events WHERE julianday(recorded_at) <= julianday(?1) \
         ORDER BY julianday(recorded_at) DESC, position DESC LIMIT 1",
    position_before: "SELECT position FROM events \
         WHERE julianday(recorded_at) <= (SELECT julianday(recorded_at) FROM events WHERE position = ?1) - ?2 / 86400.0 \
         ORDER BY julianday(recorded_at) DESC, position DESC LIMIT 1",
    first_seen: "SELECT value AS player_id, \
         (SELECT recorded_at FROM events WHERE player_id = value ORDER BY position LIMIT 1) AS first \
         FROM json_each(?1)",
    leaves: "SELECT position, leaf_hash, event_type, event_version, payload FROM events \
         WHERE position > ?1 AND position <= ?2 AND position <= (SELECT tree_size FROM event_log_head) \
         ORDER BY position",
    leaves_at: "SELECT position, leaf_hash, event_type, event_version, payload FROM events \
         WHERE position IN (SELECT value FROM json_each(?1)) AND position <= (SELECT tree_size FROM event_log_head)",
    tiles: "SELECT t.level, t.idx, t.hashes FROM json_each(?1) AS l JOIN json_each(?2) AS i ON i.key = l.key \
         JOIN tiles t ON t.level = l.value AND t.idx = i.value",
    flags: "SELECT position, rule, player_id, events, flagged_at FROM anomaly_flags ORDER BY position DESC, rule LIMIT ?1",
    awarded_before: "SELECT value AS player_id FROM json_each(?1) WHERE EXISTS \
         (SELECT 1 FROM events WHERE player_id = value AND event_type = 'ScoreAwarded' AND position <= ?2)",
    usage_at: "SELECT granularity, bucket, board, by_action, new_players, players FROM usage_stats \
         WHERE granularity IN ('hour', 'day') AND bucket IN (SELECT value FROM json_each(?2)) \
         AND board IN (SELECT value FROM json_each(?1))",
    usage_range: "SELECT granularity, bucket, board, by_action, new_players, players FROM usage_stats \
         WHERE granularity = ?1 AND bucket >= ?2 AND bucket < ?3",
    keep_signer: "INSERT INTO audit_signer (singleton, verifier, private_key) VALUES (1, ?1, ?2) \
         ON CONFLICT (singleton) DO NOTHING",
    replace_signer: "INSERT INTO audit_signer (singleton, verifier, private_key) VALUES (1, ?1, ?2) \
         ON CONFLICT (singleton) DO UPDATE SET verifier = excluded.verifier, private_key = excluded.private_key",
    signer: "SELECT verifier, private_key FROM audit_signer",
    save_checkpoint: "INSERT INTO checkpoints (tree_size, root_hash, note) VALUES (?1, ?2, ?3) \
         ON CONFLICT (tree_size) DO NOTHING",
    checkpoints: "SELECT tree_size, root_hash, note FROM checkpoints WHERE tree_size > ?1 ORDER BY tree_size LIMIT ?2",
    latest_checkpoint: "SELECT tree_size, root_hash, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1",
    ping: "SELECT 1",

    checkpoint: "SELECT position, generation FROM projection_checkpoints WHERE projection = ?1",
    lock_checkpoint: "SELECT position, generation FROM projection_checkpoints WHERE projection = ?1",
    lock_checkpoint_log: "SELECT c.position AS checkpoint, c.generation, e.position, e.event_id, e.event_type, \
                e.event_version, e.payload, e.recorded_at \
         FROM projection_checkpoints c LEFT JOIN events e ON e.position > ?2 AND e.position <= ?3 \
         WHERE c.projection = ?1 ORDER BY e.position",
    standings: "SELECT player_id, display_name, score, reached_at, banned FROM leaderboard",
    boards: "SELECT board, definition, position FROM boards ORDER BY board",
    newest_season: "SELECT season FROM board_standings WHERE board = ?1 ORDER BY season DESC LIMIT 1",
    season: seasons!("WHERE board = ?1 AND season = ?2"),
    seasons: seasons!(
        "WHERE (board, season) IN (SELECT b.value, s.value FROM json_each(?1) AS b JOIN json_each(?2) AS s \
         ON s.key = b.key) AND board IN (SELECT board FROM boards WHERE position = ?3)"
    ),
    season_places: seasons!(
        "WHERE (board, season, player_id) IN (SELECT b.value, s.value, p.value FROM json_each(?1) AS b \
         JOIN json_each(?2) AS s ON s.key = b.key JOIN json_each(?3) AS p ON p.key = b.key) \
         UNION \
         SELECT board, season, player_id, display_name, score, reached_at, banned FROM board_standings \
         WHERE player_id IN (SELECT value FROM json_each(?4)) AND board IN (SELECT value FROM json_each(?5))"
    ),
    drop_standings: "DELETE FROM board_standings WHERE board = ?1",
    drop_board: "DELETE FROM boards WHERE board = ?1",
    drop_usage: "DELETE FROM usage_stats WHERE board = ?1",
    bump_generation: "UPDATE projection_checkpoints SET generation = generation + 1, updated_at = CURRENT_TIMESTAMP \
         WHERE projection = ?1 RETURNING generation",
    changes_since: "SELECT c.position AS checkpoint, c.generation, \
                (SELECT event_id FROM events WHERE position = ?2) AS at_since, \
                (SELECT event_id FROM events WHERE position = c.position) AS at_checkpoint, \
                ch.from_position, ch.position, ch.standings, ch.seasons \
         FROM projection_checkpoints c \
         LEFT JOIN board_changes ch ON ch.position > ?2 AND ch.position <= c.position \
         WHERE c.projection = ?1 ORDER BY ch.position LIMIT ?3",
    snapshot_before: "SELECT position, standings FROM board_snapshots WHERE position <= ?1 ORDER BY position DESC LIMIT 1",
    snapshot_due: "WITH last AS (SELECT coalesce(max(position), 0) AS position FROM board_snapshots) \
         SELECT last.position, coalesce((SELECT sum(entries) FROM board_changes WHERE position > last.position), 0) \
         FROM last",
    changed_between: "SELECT from_position, position, standings FROM board_changes \
         WHERE position > ?1 AND position <= ?2 ORDER BY position",
    // The read model's tables as the migrations leave them.
    create_next: &[
        "DROP TABLE IF EXISTS leaderboard_next",
        "DROP TABLE IF EXISTS board_standings_next",
        "DROP TABLE IF EXISTS boards_next",
        "DROP TABLE IF EXISTS board_changes_next",
        "DROP TABLE IF EXISTS board_snapshots_next",
        "DROP TABLE IF EXISTS anomaly_flags_next",
        "DROP TABLE IF EXISTS usage_stats_next",
        "CREATE TABLE leaderboard_next (player_id TEXT PRIMARY KEY, display_name TEXT, \
         score INTEGER NOT NULL CHECK (score >= 0), reached_at INTEGER NOT NULL, banned INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE board_standings_next (board TEXT NOT NULL, season TEXT NOT NULL, player_id TEXT NOT NULL, \
         display_name TEXT, score INTEGER NOT NULL CHECK (score >= 0), reached_at INTEGER NOT NULL CHECK (reached_at >= 0), \
         banned BOOLEAN NOT NULL DEFAULT FALSE, PRIMARY KEY (board, season, player_id))",
        "CREATE TABLE boards_next (board TEXT PRIMARY KEY, definition TEXT NOT NULL, \
         position INTEGER NOT NULL DEFAULT 0 CHECK (position >= 0))",
        "CREATE TABLE board_changes_next (position INTEGER PRIMARY KEY, from_position INTEGER NOT NULL, \
         standings BLOB NOT NULL, seasons BLOB, entries INTEGER NOT NULL DEFAULT 0)",
        "CREATE TABLE board_snapshots_next (position INTEGER PRIMARY KEY CHECK (position > 0), \
         players INTEGER NOT NULL, standings BLOB NOT NULL)",
        "CREATE TABLE anomaly_flags_next (position INTEGER NOT NULL, rule TEXT NOT NULL, player_id TEXT NOT NULL, \
         events TEXT NOT NULL, flagged_at TEXT NOT NULL, PRIMARY KEY (position, rule))",
        "CREATE TABLE usage_stats_next (granularity TEXT NOT NULL CHECK (granularity IN ('hour', 'day')), \
         bucket INTEGER NOT NULL, board TEXT NOT NULL, actions INTEGER NOT NULL CHECK (actions >= 0), \
         points INTEGER NOT NULL CHECK (points >= 0), by_action TEXT NOT NULL, \
         new_players INTEGER NOT NULL CHECK (new_players >= 0), players BLOB NOT NULL, \
         PRIMARY KEY (granularity, bucket, board))",
    ],
    // SQLite's tables are made with their keys.
    index_next: &[],
    swap_next: &[
        "DROP TABLE leaderboard",
        "DROP TABLE board_standings",
        "DROP TABLE boards",
        "DROP TABLE board_changes",
        "DROP TABLE board_snapshots",
        "DROP TABLE anomaly_flags",
        "DROP TABLE usage_stats",
        "ALTER TABLE leaderboard_next RENAME TO leaderboard",
        "ALTER TABLE board_standings_next RENAME TO board_standings",
        "ALTER TABLE boards_next RENAME TO boards",
        "ALTER TABLE board_changes_next RENAME TO board_changes",
        "ALTER TABLE board_snapshots_next RENAME TO board_snapshots",
        "ALTER TABLE anomaly_flags_next RENAME TO anomaly_flags",
        "ALTER TABLE usage_stats_next RENAME TO usage_stats",
        "CREATE INDEX board_standings_by_player ON board_standings (player_id)",
    ],
    published_seasons: "SELECT board, season, version, definition FROM season_results r WHERE NOT EXISTS \
         (SELECT 1 FROM season_results n WHERE n.board = r.board AND n.season = r.season AND n.version > r.version)",
    first_season: "SELECT min(season) FROM board_standings WHERE board = ?1",
    covering_checkpoint: "SELECT tree_size, root_hash, note FROM checkpoints WHERE tree_size >= ?1 ORDER BY tree_size LIMIT 1",
    amendments: "SELECT board, season FROM season_amendments ORDER BY board, season",
    amend_season: "INSERT INTO season_amendments (board, season) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    clear_amendment: "DELETE FROM season_amendments WHERE board = ?1 AND season = ?2",
    insert_results: "INSERT INTO season_results \
         (board, season, version, position, tree_size, entries, players, published_at, definition) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    results: "SELECT r.board, r.season, r.version, r.definition, r.position, r.tree_size, c.note, r.entries, r.published_at FROM season_results r JOIN checkpoints c ON c.tree_size = r.tree_size \
         WHERE r.board = ?1 AND r.season = ?2 AND (?3 = 0 OR r.version = ?3) \
         ORDER BY r.version DESC LIMIT 1",
    unrelayed: "SELECT r.board, r.season, r.version, r.definition, r.position, r.tree_size, c.note, r.entries, r.published_at FROM season_results r JOIN checkpoints c ON c.tree_size = r.tree_size \
         WHERE NOT r.relayed ORDER BY r.published_at, r.board, r.season, r.version",
    mark_relayed: "UPDATE season_results SET relayed = TRUE WHERE board = ?1 AND season = ?2 AND version = ?3",
};

/// A list as a JSON array, which the statements read with `json_each`.
fn json_list<T: serde::Serialize>(values: &[T]) -> String {
    serde_json::to_string(values).expect("lists of numbers and strings serialise")
}

/// `args` as SQLite binds them: lists as JSON arrays (UUIDs as hexadecimal text).
fn arguments(args: Vec<Arg<'_>>) -> Result<SqliteArguments, StoreError> {
    let mut bound = SqliteArguments::default();
    for arg in args {
        match arg {
            Arg::Int(v) => bound.add(v),
            Arg::Text(v) => bound.add(v.to_string()),
            Arg::OptText(v) => bound.add(v.map(str::to_string)),
            Arg::Uuid(v) => bound.add(v),
            Arg::Time(v) => bound.add(v),
            Arg::Float(v) => bound.add(v),
            Arg::Bytes(v) => bound.add(v.to_vec()),
            Arg::Ints(v) => bound.add(json_list(&v)),
            Arg::Texts(v) => bound.add(json_list(&v)),
            Arg::Uuids(v) => bound.add(json_list(&v.iter().map(|u| u.simple().to_string()).collect::<Vec<_>>())),
        }
        .map_err(encode_error)?;
    }
    Ok(bound)
}

fn encode_error(error: sqlx::error::BoxDynError) -> StoreError {
    StoreError::Database(sqlx::Error::Encode(error))
}

/// Binds the value of `column` at `row`.
fn bind_value(bound: &mut SqliteArguments, column: &Column<'_>, row: usize) -> Result<(), StoreError> {
    match column {
        Column::Int(v) => bound.add(v[row]),
        Column::Text(v) | Column::Json(v) => bound.add(v[row].to_string()),
        Column::OptText(v) => bound.add(v[row].map(str::to_string)),
        Column::Bool(v) => bound.add(v[row]),
        Column::Uuid(v) => bound.add(v[row]),
        Column::OptUuid(v) => bound.add(v[row]),
        Column::Bytes(v) => bound.add(v[row].to_vec()),
        Column::OptBytes(v) => bound.add(v[row].map(<[u8]>::to_vec)),
        Column::Time(v) => bound.add(v[row]),
    }
    .map_err(encode_error)
}

/// `INSERT INTO … VALUES (…), (…) …` of `rows` rows of `write`.
fn insert_statement(write: &Write<'_>, rows: usize) -> String {
    let placeholders = format!("({})", vec!["?"; write.values.len()].join(", "));
    format!(
        "INSERT INTO {} ({}) VALUES {} {}",
        write.table,
        write.columns.join(", "),
        vec![placeholders; rows].join(", "),
        write.conflict
    )
}

/// Writes `write` in multi-row statements; returns the rows written.
async fn insert(connection: &mut SqliteConnection, write: &Write<'_>) -> Result<u64, StoreError> {
    let per_statement = (VALUES_PER_STATEMENT / write.values.len().max(1)).max(1);
    let mut written = 0;
    let mut start = 0;
    while start < write.rows() {
        let end = (start + per_statement).min(write.rows());
        let mut bound = SqliteArguments::default();
        for row in start..end {
            for column in &write.values {
                bind_value(&mut bound, column, row)?;
            }
        }
        let statement = insert_statement(write, end - start);
        written += sqlx::query_with(AssertSqlSafe(statement), bound).execute(&mut *connection).await?.rows_affected();
        start = end;
    }
    Ok(written)
}

impl Backend for Lite {
    type Db = Sqlite;

    const SQL: &'static Statements = &SQL;

    fn writer(&self) -> &Pool<Sqlite> {
        &self.write
    }

    fn reader(&self) -> &Pool<Sqlite> {
        &self.read
    }

    fn readers_apart(&self, connections: u32) -> Self {
        let options = (*self.read.connect_options()).clone();
        let read = SqlitePoolOptions::new().max_connections(connections).connect_lazy_with(options);
        Self { write: self.write.clone(), read }
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn begin_derived(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        // One connection writes both the log and the read model: its commits stay synchronous.
        self.begin_write().await
    }

    async fn begin_read(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        // WAL gives a read transaction one snapshot for every statement.
        Ok(self.read.begin().await?)
    }

    crate::sql::runners!(Sqlite, SqliteConnection);

    async fn write<'c>(
        connection: &'c mut SqliteConnection,
        writes: &'c [Write<'c>],
        _notice: Option<Notice<'c>>,
    ) -> Result<Vec<u64>, StoreError> {
        let mut written = Vec::with_capacity(writes.len());
        for write in writes {
            written.push(insert(connection, write).await?);
        }
        Ok(written)
    }

    async fn load<'c>(connection: &'c mut SqliteConnection, write: &'c Write<'c>) -> Result<(), StoreError> {
        insert(connection, write).await.map(drop)
    }

    fn log<'c>(
        connection: &'c mut SqliteConnection,
        after: u64,
        through: u64,
    ) -> BoxStream<'c, Result<StoredEvent, StoreError>> {
        Self::stream::<EventRow>(connection, SQL.read_range, vec![Arg::Int(to_db(after)), Arg::Int(to_db(through))])
            .map_ok(StoredEvent::from)
            .boxed()
    }
}

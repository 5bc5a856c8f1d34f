//! PostgreSQL: the distributed services' database. Its statements, how values are bound (lists
//! as arrays, bulk writes as `unnest` in one statement, loads and log reads as binary `COPY`),
//! and its transactions.

mod copy;

use std::time::Duration;

use futures::stream::BoxStream;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Arguments as _, AssertSqlSafe, PgConnection, Pool, Postgres, Transaction};

use crate::sql::{Arg, Backend, Column, Notice, Statements, Write};
use crate::{EventLog, ReadModel, StoreError, StoredEvent};

/// The PostgreSQL schema: event log, read model, checkpoints.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// The `NOTIFY` channel on which every append announces the new head of the log.
pub const LOG_CHANNEL: &str = "scoreboard_log";

/// A pool for `url` that connects on first use, so a service can start before its database.
/// A URL of another kind (`mysql://…`) is refused here, for every caller, naming the schemes
/// accepted and never the rest of the URL (it may hold a password).
///
/// Every session gets `lock_timeout` and `idle_in_transaction_session_timeout` of
/// `lock_timeout`: a transaction waits that long for a lock at most, and a transaction whose
/// client went silent while holding locks (the log's append lock, the checkpoint's) is ended
/// by PostgreSQL after that long, instead of stalling every other replica until TCP gives up.
pub fn connect_lazy(url: &str, max_connections: u32, lock_timeout: Duration) -> Result<PgPool, sqlx::Error> {
    let refused = |why: String| Err(sqlx::Error::Configuration(why.into()));
    match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("postgres" | "postgresql") => {}
        Some(other) => {
            return refused(format!("the database URL must be postgres://… or postgresql://…, not {other}://…"));
        }
        None => return refused("the database URL must be a URL: postgres://… or postgresql://…".into()),
    }
    let options: PgConnectOptions = url.parse()?;
    let millis = format!("{}ms", lock_timeout.as_millis().max(1));
    Ok(PgPoolOptions::new().max_connections(max_connections).acquire_timeout(Duration::from_secs(3)).connect_lazy_with(
        options
            .application_name("scoreboard")
            .options([("lock_timeout", millis.as_str()), ("idle_in_transaction_session_timeout", millis.as_str())]),
    ))
}

/// The event log in PostgreSQL.
///
/// Positions are taken under the row lock of `event_log_head`, held until commit, so batches
/// from any number of processes commit in position order and leave no gaps.
pub type PgEventLog = EventLog<Pg>;

/// The read model in PostgreSQL: one row per player and board season, the checkpoint, and
/// snapshots and changes of the fold.
pub type PgLeaderboard = ReadModel<Pg>;

impl PgEventLog {
    /// The log in the database behind `pool` (migrated with [`MIGRATOR`]).
    pub fn new(pool: PgPool) -> Self {
        Self::on(Pg { read: pool.clone(), pool })
    }

    /// The pool, for callers that need a connection of their own (listeners, locks).
    pub fn pool(&self) -> &PgPool {
        &self.backend().pool
    }
}

impl PgLeaderboard {
    /// The read model in the database behind `pool` (migrated with [`MIGRATOR`]).
    pub fn new(pool: PgPool) -> Self {
        Self::on(Pg { read: pool.clone(), pool })
    }
}

/// PostgreSQL, as the store uses it.
#[derive(Clone, Debug)]
pub struct Pg {
    pool: PgPool,
    /// Where reads go: the same pool, or one of their own ([`Backend::readers_apart`]).
    read: PgPool,
}

/// `SELECT` of events, then the rest of the statement.
macro_rules! events {
    ($rest:literal) => {
        concat!(
            "SELECT position, event_id, event_type, event_version, payload::text AS payload, recorded_at FROM events ",
            $rest
        )
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
    lock_head: "WITH head AS (SELECT position, tree_size FROM event_log_head FOR UPDATE) \
         SELECT head.position AS head, head.tree_size, (SELECT position FROM event_log_head) AS seen, \
                e.position, e.event_id, e.event_type, e.event_version, e.payload::text AS payload, e.recorded_at \
         FROM head LEFT JOIN events e \
           ON e.event_type IN ('PlayerBanned', 'PlayerUnbanned', 'ScoreRevoked') AND e.player_id = ANY($1) \
         ORDER BY e.position",
    read_after: events!("WHERE position > $1 ORDER BY position LIMIT $2"),
    read_range: events!("WHERE position > $1 AND position <= $2 ORDER BY position"),
    read_event: events!("WHERE event_id = $1"),
    read_player: events!("WHERE player_id = $1 AND position > $2 ORDER BY position LIMIT $3"),
    read_positions: events!("WHERE position = ANY($1) ORDER BY position"),
    history: events!("WHERE player_id = ANY($1) AND position <= $2 ORDER BY position"),
    // The types are literals, so the planner can use the partial index `events_moderation`.
    moderation: events!(
        "WHERE event_type IN ('PlayerBanned', 'PlayerUnbanned', 'ScoreRevoked') \
         AND player_id = ANY($1) ORDER BY position"
    ),
    recorded: "SELECT action_id FROM events WHERE action_id = ANY($1)",
    originals: "SELECT action_id, claims_digest, position, event_id, event_type, event_version, payload::text AS payload, \
         recorded_at FROM events WHERE action_id = ANY($1)",
    position_at: "SELECT position FROM events WHERE recorded_at <= $1 ORDER BY recorded_at DESC, position DESC LIMIT 1",
    position_before: "SELECT position FROM events \
         WHERE recorded_at <= (SELECT recorded_at FROM events WHERE position = $1) - make_interval(secs => $2) \
         ORDER BY recorded_at DESC, position DESC LIMIT 1",
    first_seen: "SELECT p AS player_id, \
         (SELECT recorded_at FROM events WHERE player_id = p ORDER BY position LIMIT 1) AS first \
         FROM unnest($1::text[]) AS p",
    leaves: "SELECT position, leaf_hash, event_type, event_version, payload::text AS payload FROM events \
         WHERE position > $1 AND position <= $2 AND position <= (SELECT tree_size FROM event_log_head) \
         ORDER BY position",
    leaves_at: "SELECT position, leaf_hash, event_type, event_version, payload::text AS payload FROM events \
         WHERE position = ANY($1) AND position <= (SELECT tree_size FROM event_log_head)",
    tiles: "SELECT t.level, t.idx, t.hashes FROM unnest($1::int8[], $2::int8[]) AS w(level, idx) \
         JOIN tiles t ON t.level = w.level AND t.idx = w.idx",
    flags: "SELECT position, rule, player_id, events, flagged_at FROM anomaly_flags ORDER BY position DESC, rule LIMIT $1",
    awarded_before: "SELECT p AS player_id FROM unnest($1::text[]) AS p WHERE EXISTS \
         (SELECT 1 FROM events WHERE player_id = p AND event_type = 'ScoreAwarded' AND position <= $2)",
    usage_at: "SELECT granularity, bucket, board, by_action, new_players, players FROM usage_stats \
         WHERE granularity IN ('hour', 'day') AND bucket = ANY($2) AND board = ANY($1)",
    usage_range: "SELECT granularity, bucket, board, by_action, new_players, players FROM usage_stats \
         WHERE granularity = $1 AND bucket >= $2 AND bucket < $3",
    keep_signer: "INSERT INTO audit_signer (singleton, verifier, private_key) VALUES (1, $1, $2) \
         ON CONFLICT (singleton) DO NOTHING",
    replace_signer: "INSERT INTO audit_signer (singleton, verifier, private_key) VALUES (1, $1, $2) \
         ON CONFLICT (singleton) DO UPDATE SET verifier = EXCLUDED.verifier, private_key = EXCLUDED.private_key",
    signer: "SELECT verifier, private_key FROM audit_signer",
    save_checkpoint: "INSERT INTO checkpoints (tree_size, root_hash, note) VALUES ($1, $2, $3) \
         ON CONFLICT (tree_size) DO NOTHING",
    checkpoints: "SELECT tree_size, root_hash, note FROM checkpoints WHERE tree_size > $1 ORDER BY tree_size LIMIT $2",
    latest_checkpoint: "SELECT tree_size, root_hash, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1",
    ping: "SELECT 1",

    checkpoint: "SELECT position, generation FROM projection_checkpoints WHERE projection = $1",
    lock_checkpoint: "SELECT position, generation FROM projection_checkpoints WHERE projection = $1 FOR UPDATE",
    lock_checkpoint_log: "WITH c AS (SELECT position, generation FROM projection_checkpoints \
                         WHERE projection = $1 FOR UPDATE) \
         SELECT c.position AS checkpoint, c.generation, e.position, e.event_id, e.event_type, e.event_version, \
                e.payload::text AS payload, e.recorded_at \
         FROM c LEFT JOIN events e ON e.position > $2 AND e.position <= $3 ORDER BY e.position",
    standings: "SELECT player_id, display_name, score, reached_at, banned FROM leaderboard",
    boards: "SELECT board, definition, position FROM boards ORDER BY board",
    newest_season: "SELECT season FROM board_standings WHERE board = $1 ORDER BY season DESC LIMIT 1",
    season: seasons!("WHERE board = $1 AND season = $2"),
    seasons: seasons!(
        "\
         WHERE (board, season) IN (SELECT * FROM unnest($1::text[], $2::text[])) \
           AND board IN (SELECT board FROM boards WHERE position = $3)"
    ),
    season_places: seasons!(
        "WHERE (board, season, player_id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[])) \
         UNION \
         SELECT board, season, player_id, display_name, score, reached_at, banned FROM board_standings \
         WHERE player_id = ANY($4) AND board = ANY($5)"
    ),
    drop_standings: "DELETE FROM board_standings WHERE board = $1",
    drop_board: "DELETE FROM boards WHERE board = $1",
    drop_usage: "DELETE FROM usage_stats WHERE board = $1",
    bump_generation: "UPDATE projection_checkpoints SET generation = generation + 1, updated_at = now() \
         WHERE projection = $1 RETURNING generation",
    changes_since: "SELECT c.position AS checkpoint, c.generation, \
                (SELECT event_id FROM events WHERE position = $2) AS at_since, \
                (SELECT event_id FROM events WHERE position = c.position) AS at_checkpoint, \
                ch.from_position, ch.position, ch.standings, ch.seasons \
         FROM projection_checkpoints c \
         LEFT JOIN board_changes ch ON ch.position > $2 AND ch.position <= c.position \
         WHERE c.projection = $1 ORDER BY ch.position LIMIT $3",
    snapshot_before: "SELECT position, standings FROM board_snapshots WHERE position <= $1 ORDER BY position DESC LIMIT 1",
    snapshot_due: "WITH last AS (SELECT coalesce(max(position), 0) AS position FROM board_snapshots) \
         SELECT last.position, coalesce((SELECT sum(entries) FROM board_changes WHERE position > last.position), 0)::int8 \
         FROM last",
    changed_between: "SELECT from_position, position, standings FROM board_changes \
         WHERE position > $1 AND position <= $2 ORDER BY position",
    create_next: &[
        "DROP TABLE IF EXISTS leaderboard_next, board_standings_next, boards_next, board_changes_next, \
         board_snapshots_next, anomaly_flags_next, usage_stats_next",
        // Indexes keep the names the migrations gave them (and a rebuild restores them).
        "ALTER INDEX IF EXISTS leaderboard_next_pkey RENAME TO leaderboard_pkey",
        "ALTER INDEX IF EXISTS board_standings_next_pkey RENAME TO board_standings_pkey",
        "ALTER INDEX IF EXISTS board_standings_next_by_player RENAME TO board_standings_by_player",
        "ALTER INDEX IF EXISTS boards_next_pkey RENAME TO boards_pkey",
        "ALTER INDEX IF EXISTS board_changes_next_pkey RENAME TO board_changes_pkey",
        "ALTER INDEX IF EXISTS board_snapshots_next_pkey RENAME TO board_snapshots_pkey",
        "ALTER INDEX IF EXISTS anomaly_flags_next_pkey RENAME TO anomaly_flags_pkey",
        "ALTER INDEX IF EXISTS usage_stats_next_pkey RENAME TO usage_stats_pkey",
        "CREATE TABLE leaderboard_next (LIKE leaderboard INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
        "CREATE TABLE board_standings_next \
         (LIKE board_standings INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
        "CREATE TABLE boards_next (LIKE boards INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
        "ALTER TABLE boards_next ADD CONSTRAINT boards_next_pkey PRIMARY KEY (board)",
        "CREATE TABLE board_changes_next \
         (LIKE board_changes INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
        "ALTER TABLE board_changes_next ADD CONSTRAINT board_changes_next_pkey PRIMARY KEY (position)",
        "CREATE TABLE board_snapshots_next \
         (LIKE board_snapshots INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
        "ALTER TABLE board_snapshots_next ADD CONSTRAINT board_snapshots_next_pkey PRIMARY KEY (position)",
        "CREATE TABLE anomaly_flags_next \
         (LIKE anomaly_flags INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
        "ALTER TABLE anomaly_flags_next ADD CONSTRAINT anomaly_flags_next_pkey PRIMARY KEY (position, rule)",
        "CREATE TABLE usage_stats_next (LIKE usage_stats INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)",
        "ALTER TABLE usage_stats_next ADD CONSTRAINT usage_stats_next_pkey PRIMARY KEY (granularity, bucket, board)",
    ],
    index_next: &[
        "ALTER TABLE leaderboard_next ADD CONSTRAINT leaderboard_next_pkey PRIMARY KEY (player_id)",
        "ALTER TABLE board_standings_next ADD CONSTRAINT board_standings_next_pkey PRIMARY KEY (board, season, player_id)",
        "CREATE INDEX board_standings_next_by_player ON board_standings_next (player_id)",
    ],
    swap_next: &[
        "DROP TABLE leaderboard, board_standings, boards, board_changes, board_snapshots, anomaly_flags, usage_stats",
        "ALTER TABLE leaderboard_next RENAME TO leaderboard",
        "ALTER TABLE board_standings_next RENAME TO board_standings",
        "ALTER TABLE boards_next RENAME TO boards",
        "ALTER TABLE board_changes_next RENAME TO board_changes",
        "ALTER TABLE board_snapshots_next RENAME TO board_snapshots",
        "ALTER TABLE anomaly_flags_next RENAME TO anomaly_flags",
        "ALTER TABLE usage_stats_next RENAME TO usage_stats",
        "ALTER INDEX leaderboard_next_pkey RENAME TO leaderboard_pkey",
        "ALTER INDEX board_standings_next_pkey RENAME TO board_standings_pkey",
        "ALTER INDEX board_standings_next_by_player RENAME TO board_standings_by_player",
        "ALTER INDEX boards_next_pkey RENAME TO boards_pkey",
        "ALTER INDEX board_changes_next_pkey RENAME TO board_changes_pkey",
        "ALTER INDEX board_snapshots_next_pkey RENAME TO board_snapshots_pkey",
        "ALTER INDEX anomaly_flags_next_pkey RENAME TO anomaly_flags_pkey",
        "ALTER INDEX usage_stats_next_pkey RENAME TO usage_stats_pkey",
    ],
    published_seasons: "SELECT board, season, version, definition FROM season_results r WHERE NOT EXISTS \
         (SELECT 1 FROM season_results n WHERE n.board = r.board AND n.season = r.season AND n.version > r.version)",
    first_season: "SELECT min(season) FROM board_standings WHERE board = $1",
    covering_checkpoint: "SELECT tree_size, root_hash, note FROM checkpoints WHERE tree_size >= $1 ORDER BY tree_size LIMIT 1",
    amendments: "SELECT board, season FROM season_amendments ORDER BY board, season",
    amend_season: "INSERT INTO season_amendments (board, season) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    clear_amendment: "DELETE FROM season_amendments WHERE board = $1 AND season = $2",
    insert_results: "INSERT INTO season_results \
         (board, season, version, position, tree_size, entries, players, published_at, definition) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    results: "SELECT r.board, r.season, r.version, r.definition, r.position, r.tree_size, c.note, r.entries, r.published_at FROM season_results r JOIN checkpoints c ON c.tree_size = r.tree_size \
         WHERE r.board = $1 AND r.season = $2 AND ($3 = 0 OR r.version = $3) \
         ORDER BY r.version DESC LIMIT 1",
    unrelayed: "SELECT r.board, r.season, r.version, r.definition, r.position, r.tree_size, c.note, r.entries, r.published_at FROM season_results r JOIN checkpoints c ON c.tree_size = r.tree_size \
         WHERE NOT r.relayed ORDER BY r.published_at, r.board, r.season, r.version",
    mark_relayed: "UPDATE season_results SET relayed = TRUE WHERE board = $1 AND season = $2 AND version = $3",
};

/// `args` as PostgreSQL binds them: lists as arrays.
fn arguments(args: Vec<Arg<'_>>) -> Result<PgArguments, StoreError> {
    let mut bound = PgArguments::default();
    for arg in args {
        match arg {
            Arg::Int(v) => bound.add(v),
            Arg::Text(v) => bound.add(v),
            Arg::OptText(v) => bound.add(v),
            Arg::Uuid(v) => bound.add(v),
            Arg::Time(v) => bound.add(v),
            Arg::Float(v) => bound.add(v),
            Arg::Bytes(v) => bound.add(v),
            Arg::Ints(v) => bound.add(v),
            Arg::Texts(v) => bound.add(v),
            Arg::Uuids(v) => bound.add(v),
        }
        .map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))?;
    }
    Ok(bound)
}

/// Binds `column` as one array.
fn bind_column(bound: &mut PgArguments, column: &Column<'_>) -> Result<(), StoreError> {
    match column {
        Column::Int(v) => bound.add(v),
        Column::Text(v) | Column::Json(v) => bound.add(v),
        Column::OptText(v) => bound.add(v),
        Column::Bool(v) => bound.add(v),
        Column::Uuid(v) => bound.add(v),
        Column::OptUuid(v) => bound.add(v),
        Column::Bytes(v) => bound.add(v),
        Column::OptBytes(v) => bound.add(v),
        Column::Time(v) => bound.add(v),
    }
    .map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))
}

/// The array type `column` is bound as, and how its values are selected.
fn array_type(column: &Column<'_>) -> (&'static str, &'static str) {
    match column {
        Column::Int(_) => ("int8[]", ""),
        Column::Text(_) | Column::OptText(_) => ("text[]", ""),
        Column::Json(_) => ("text[]", "::json"),
        Column::Bool(_) => ("bool[]", ""),
        Column::Uuid(_) | Column::OptUuid(_) => ("uuid[]", ""),
        Column::Bytes(_) | Column::OptBytes(_) => ("bytea[]", ""),
        Column::Time(_) => ("timestamptz[]", ""),
    }
}

/// One statement for `writes`: each an `INSERT … SELECT FROM unnest(…)` in a CTE, the rows each
/// wrote counted, and `notice` sent.
fn write_statement(writes: &[&Write<'_>], notice: Option<Notice<'_>>) -> String {
    let mut parameter = 0;
    let mut ctes = Vec::new();
    let mut counts = Vec::new();
    for (i, write) in writes.iter().enumerate() {
        let mut arrays = Vec::new();
        let mut selected = Vec::new();
        for (c, column) in write.values.iter().enumerate() {
            parameter += 1;
            let (array, cast) = array_type(column);
            arrays.push(format!("${parameter}::{array}"));
            selected.push(format!("c{c}{cast}"));
        }
        let names: Vec<String> = (0..write.values.len()).map(|c| format!("c{c}")).collect();
        ctes.push(format!(
            "w{i} AS (INSERT INTO {} ({}) SELECT {} FROM unnest({}) AS v({}) {} RETURNING 1)",
            write.table,
            write.columns.join(", "),
            selected.join(", "),
            arrays.join(", "),
            names.join(", "),
            write.conflict
        ));
        counts.push(format!("(SELECT count(*) FROM w{i})"));
    }
    let from = match notice {
        Some(_) => format!(" FROM pg_notify(${}, ${})", parameter + 1, parameter + 2),
        None => String::new(),
    };
    let with = if ctes.is_empty() { String::new() } else { format!("WITH {} ", ctes.join(", ")) };
    format!("{with}SELECT ARRAY[{}]::int8[]{from}", if counts.is_empty() { "0".to_string() } else { counts.join(", ") })
}

impl Backend for Pg {
    type Db = Postgres;

    const SQL: &'static Statements = &SQL;

    fn writer(&self) -> &Pool<Postgres> {
        &self.pool
    }

    fn reader(&self) -> &Pool<Postgres> {
        &self.read
    }

    fn readers_apart(&self, connections: u32) -> Self {
        let options = (*self.pool.connect_options()).clone();
        let read = PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(options);
        Self { pool: self.pool.clone(), read }
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    async fn begin_derived(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.pool.begin_with("BEGIN; SET LOCAL synchronous_commit = off").await?)
    }

    async fn begin_read(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        Ok(self.read.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?)
    }

    crate::sql::runners!(Postgres, PgConnection);

    async fn write<'c>(
        connection: &'c mut PgConnection,
        writes: &'c [Write<'c>],
        notice: Option<Notice<'c>>,
    ) -> Result<Vec<u64>, StoreError> {
        let written: Vec<&Write<'_>> = writes.iter().filter(|w| w.rows() > 0).collect();
        if written.is_empty() && notice.is_none() {
            return Ok(vec![0; writes.len()]);
        }
        let mut bound = PgArguments::default();
        for write in &written {
            for column in &write.values {
                bind_column(&mut bound, column)?;
            }
        }
        if let Some(notice) = notice {
            bound.add(notice.channel).map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))?;
            bound.add(notice.payload).map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))?;
        }
        let statement = write_statement(&written, notice);
        let counts: Vec<i64> =
            sqlx::query_scalar_with(AssertSqlSafe(statement), bound).fetch_one(&mut *connection).await?;
        let mut counts = counts.into_iter();
        Ok(writes
            .iter()
            .map(|w| if w.rows() > 0 { counts.next().map_or(0, crate::rows::from_db) } else { 0 })
            .collect())
    }

    async fn load<'c>(connection: &'c mut PgConnection, write: &'c Write<'c>) -> Result<(), StoreError> {
        copy::load(connection, write).await
    }

    fn log<'c>(
        connection: &'c mut PgConnection,
        after: u64,
        through: u64,
    ) -> BoxStream<'c, Result<StoredEvent, StoreError>> {
        copy::log(connection, after, through)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_postgresql_urls_are_accepted_and_the_refusal_shows_no_secret() {
        let connect = |url: &str| connect_lazy(url, 1, Duration::from_secs(5)).map_err(|error| error.to_string());
        assert!(connect("postgres://u:p@h/d").is_ok());
        assert!(connect("postgresql://h/d").is_ok());
        let refused = connect("mysql://root:topsecret@h/d").unwrap_err();
        assert!(refused.contains("not mysql://") && refused.contains("postgres://") && !refused.contains("topsecret"));
        assert!(connect("topsecret").unwrap_err().contains("must be a URL"));
    }

    #[test]
    fn writes_become_one_statement_with_a_notice() {
        let events = Write {
            table: "t",
            columns: &["a", "b"],
            values: vec![Column::Int(vec![1]), Column::Json(vec!["{}"])],
            conflict: "ON CONFLICT (a) DO NOTHING",
        };
        let head = Write { table: "h", columns: &["p"], values: vec![Column::Int(vec![1])], conflict: "" };
        assert_eq!(
            write_statement(&[&events, &head], Some(Notice { channel: "c", payload: "1" })),
            "WITH w0 AS (INSERT INTO t (a, b) SELECT c0, c1::json FROM unnest($1::int8[], $2::text[]) AS v(c0, c1) \
             ON CONFLICT (a) DO NOTHING RETURNING 1), w1 AS (INSERT INTO h (p) SELECT c0 FROM unnest($3::int8[]) \
             AS v(c0)  RETURNING 1) SELECT ARRAY[(SELECT count(*) FROM w0), (SELECT count(*) FROM w1)]::int8[] \
             FROM pg_notify($4, $5)"
        );
    }
}

//! What a database supplies to the store: its SQL text, how values are bound, and how a
//! transaction begins. Everything a store operation *means* is written once, over [`Backend`];
//! `postgres` and `sqlite` hold statements and binding, not logic.

use futures::stream::BoxStream;
use sqlx::{Database, FromRow, Pool, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;

/// A row type both databases decode.
pub trait Row:
    for<'r> FromRow<'r, sqlx::postgres::PgRow> + for<'r> FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin + 'static
{
}

impl<T> Row for T where
    T: for<'r> FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin
        + 'static
{
}

/// One bound parameter of a statement.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    /// An integer.
    Int(i64),
    /// Text.
    Text(&'a str),
    /// Text or NULL.
    OptText(Option<&'a str>),
    /// A UUID.
    Uuid(Uuid),
    /// A time.
    Time(OffsetDateTime),
    /// A floating-point number.
    Float(f64),
    /// Bytes.
    Bytes(&'a [u8]),
    /// A list, matched with `= ANY($n)` (PostgreSQL) or `IN (SELECT value FROM json_each(?n))`.
    Ints(Vec<i64>),
    /// A list of text.
    Texts(Vec<&'a str>),
    /// A list of UUIDs (SQLite: hexadecimal text, to be `unhex`ed).
    Uuids(Vec<Uuid>),
}

/// A column of a bulk write: one value per row, in row order.
#[derive(Debug, Clone)]
pub enum Column<'a> {
    /// Integers.
    Int(Vec<i64>),
    /// Text.
    Text(Vec<&'a str>),
    /// Text or NULL.
    OptText(Vec<Option<&'a str>>),
    /// Booleans.
    Bool(Vec<bool>),
    /// UUIDs.
    Uuid(Vec<Uuid>),
    /// UUIDs or NULL.
    OptUuid(Vec<Option<Uuid>>),
    /// Bytes.
    Bytes(Vec<&'a [u8]>),
    /// Bytes or NULL.
    OptBytes(Vec<Option<&'a [u8]>>),
    /// Times.
    Time(Vec<OffsetDateTime>),
    /// JSON text, kept exactly as given.
    Json(Vec<&'a str>),
}

impl Column<'_> {
    /// How many rows it has values for.
    pub fn rows(&self) -> usize {
        match self {
            Self::Int(v) => v.len(),
            Self::Text(v) | Self::Json(v) => v.len(),
            Self::OptText(v) => v.len(),
            Self::Bool(v) => v.len(),
            Self::Uuid(v) => v.len(),
            Self::OptUuid(v) => v.len(),
            Self::Bytes(v) => v.len(),
            Self::OptBytes(v) => v.len(),
            Self::Time(v) => v.len(),
        }
    }
}

/// Many rows written into one table in one statement.
#[derive(Debug, Clone)]
pub struct Write<'a> {
    /// The table.
    pub table: &'a str,
    /// Its columns written, in the order of `values`.
    pub columns: &'static [&'static str],
    /// One column of values each.
    pub values: Vec<Column<'a>>,
    /// What a row whose key is there already does: an `ON CONFLICT …` clause both databases
    /// read alike (or empty).
    pub conflict: &'static str,
}

impl Write<'_> {
    /// How many rows it writes.
    pub fn rows(&self) -> usize {
        self.values.first().map_or(0, Column::rows)
    }
}

/// A change announced with a write, where the database can (PostgreSQL's `NOTIFY`).
#[derive(Debug, Clone, Copy)]
pub struct Notice<'a> {
    /// The channel.
    pub channel: &'static str,
    /// What it says.
    pub payload: &'a str,
}

/// A database as the store uses it.
pub trait Backend: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// sqlx's database.
    type Db: Database;

    /// Its statements.
    const SQL: &'static Statements;

    /// The pool that writes.
    fn writer(&self) -> &Pool<Self::Db>;

    /// The pool that only reads.
    fn reader(&self) -> &Pool<Self::Db>;

    /// The same database, read through a pool of `connections` of its own (connected when
    /// first used), so that what is read through it never waits for the other readers' pool.
    fn readers_apart(&self, connections: u32) -> Self;

    /// A transaction that writes, holding whatever lock makes writers take turns on this
    /// database (SQLite: its one write lock, from the first statement on).
    fn begin_write(&self) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send;

    /// A transaction that writes what can always be folded again from the log (the read
    /// model): as [`Backend::begin_write`], but its commit need not wait for the disk. A crash
    /// may lose the last such commits, all of each or nothing (the checkpoint with the
    /// standings); the folder folds them again from the log.
    fn begin_derived(&self) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send;

    /// A read-only transaction in which every statement sees one snapshot.
    fn begin_read(&self) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send;

    /// The rows `sql` returns.
    fn rows<'c, T: Row>(
        connection: &'c mut <Self::Db as Database>::Connection,
        sql: &'static str,
        args: Vec<Arg<'c>>,
    ) -> impl Future<Output = Result<Vec<T>, StoreError>> + Send + 'c;

    /// The rows `sql` returns, as they arrive.
    fn stream<'c, T: Row>(
        connection: &'c mut <Self::Db as Database>::Connection,
        sql: &'static str,
        args: Vec<Arg<'c>>,
    ) -> BoxStream<'c, Result<T, StoreError>>;

    /// Runs `sql`; returns how many rows it changed.
    fn execute<'c>(
        connection: &'c mut <Self::Db as Database>::Connection,
        sql: &'c str,
        args: Vec<Arg<'c>>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send + 'c;

    /// Writes `writes` (PostgreSQL: in one statement, with `notice`); returns how many rows
    /// each inserted or updated.
    fn write<'c>(
        connection: &'c mut <Self::Db as Database>::Connection,
        writes: &'c [Write<'c>],
        notice: Option<Notice<'c>>,
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> + Send + 'c;

    /// Writes `write` into a table made for it (no conflicts), as fast as the database loads
    /// rows (PostgreSQL: binary `COPY`).
    fn load<'c>(
        connection: &'c mut <Self::Db as Database>::Connection,
        write: &'c Write<'c>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'c;

    /// The log's events in `(after, through]`, in order, as fast as the database hands them out
    /// (PostgreSQL: binary `COPY`).
    fn log<'c>(
        connection: &'c mut <Self::Db as Database>::Connection,
        after: u64,
        through: u64,
    ) -> BoxStream<'c, Result<crate::StoredEvent, StoreError>>;
}

/// The statement runners of [`Backend`], alike on every database but for its sqlx types (`$db`,
/// `$connection`) and how it binds (a function `arguments(Vec<Arg>) -> Result<Arguments>` in
/// scope): expanded inside each back end's `impl Backend`.
macro_rules! runners {
    ($db:ty, $connection:ty) => {
        async fn rows<'c, T: $crate::sql::Row>(
            connection: &'c mut $connection,
            sql: &'static str,
            args: Vec<$crate::sql::Arg<'c>>,
        ) -> Result<Vec<T>, $crate::StoreError> {
            Ok(sqlx::query_as_with::<$db, T, _>(sql, arguments(args)?).fetch_all(connection).await?)
        }

        fn stream<'c, T: $crate::sql::Row>(
            connection: &'c mut $connection,
            sql: &'static str,
            args: Vec<$crate::sql::Arg<'c>>,
        ) -> futures::stream::BoxStream<'c, Result<T, $crate::StoreError>> {
            use futures::{StreamExt as _, TryStreamExt as _};
            match arguments(args) {
                Ok(bound) => sqlx::query_as_with::<$db, T, _>(sql, bound)
                    .fetch(connection)
                    .map_err($crate::StoreError::from)
                    .boxed(),
                Err(error) => futures::stream::once(async { Err(error) }).boxed(),
            }
        }

        async fn execute<'c>(
            connection: &'c mut $connection,
            sql: &'c str,
            args: Vec<$crate::sql::Arg<'c>>,
        ) -> Result<u64, $crate::StoreError> {
            let done = sqlx::query_with(sqlx::AssertSqlSafe(sql), arguments(args)?).execute(connection).await?;
            Ok(done.rows_affected())
        }
    };
}

pub(crate) use runners;

/// The first row `sql` returns, if any.
pub(crate) async fn row<B: Backend, T: Row>(
    connection: &mut <B::Db as Database>::Connection,
    sql: &'static str,
    args: Vec<Arg<'_>>,
) -> Result<Option<T>, StoreError> {
    Ok(B::rows(connection, sql, args).await?.into_iter().next())
}

/// The one row `sql` returns.
pub(crate) async fn one<B: Backend, T: Row>(
    connection: &mut <B::Db as Database>::Connection,
    sql: &'static str,
    args: Vec<Arg<'_>>,
) -> Result<T, StoreError> {
    row::<B, T>(connection, sql, args).await?.ok_or_else(|| {
        StoreError::InvalidRow(format!("no row from {}", sql.split_whitespace().take(6).collect::<Vec<_>>().join(" ")))
    })
}

/// Every statement of the store, in one database's dialect. Lists are bound as [`Arg`] lists;
/// the comments say what each returns.
#[derive(Debug)]
pub struct Statements {
    /// `(position, tree_size)` of the head.
    pub head: &'static str,
    /// The head locked until the transaction ends (appenders take turns), with the moderation
    /// events of `(players)`: `head, tree_size, seen` (the head the statement's snapshot saw: when
    /// it is not the head locked, an append committed while the lock was awaited, and the
    /// moderation events must be read again) and an event per row (none: NULLs).
    pub lock_head: &'static str,
    /// Events `(after, limit)`.
    pub read_after: &'static str,
    /// Events `(after, through)`.
    pub read_range: &'static str,
    /// The event `(event_id)`.
    pub read_event: &'static str,
    /// A player's events `(player, after, limit)`.
    pub read_player: &'static str,
    /// Events at `(positions)`.
    pub read_positions: &'static str,
    /// Events of `(players)` up to `(through)`, in order.
    pub history: &'static str,
    /// Moderation events of `(players)`, in order.
    pub moderation: &'static str,
    /// `(action_id)` of `(action_ids)` already recorded.
    pub recorded: &'static str,
    /// Originals of `(action_ids)`: `action_id, claims_digest` and the event.
    pub originals: &'static str,
    /// The position of the last event recorded at or before `(time)`.
    pub position_at: &'static str,
    /// The position of the last event recorded at least `(seconds)` before the event at
    /// `(position)`: bound as `(position, seconds)`.
    pub position_before: &'static str,
    /// Each of `(players)` with the time of their first event.
    pub first_seen: &'static str,
    /// Leaves `(after, through)` the tree holds: position, leaf hash (if kept), and the hashed row.
    pub leaves: &'static str,
    /// Leaves at `(positions)` the tree holds.
    pub leaves_at: &'static str,
    /// Tiles at `(levels, indexes)`.
    pub tiles: &'static str,
    /// The latest `(limit)` flags.
    pub flags: &'static str,
    /// `(player_id)` of `(players)` with an award at or before `(position)`.
    pub awarded_before: &'static str,
    /// Usage tallies of `(boards)` at bucket starts `(starts)`, either granularity (named, so
    /// that the primary key's index serves the lookup).
    pub usage_at: &'static str,
    /// Usage tallies of `(granularity)` with a start in `[from, to)`.
    pub usage_range: &'static str,
    /// Keeps a signer `(verifier, private_key)` unless one is kept.
    pub keep_signer: &'static str,
    /// Keeps a signer `(verifier, private_key)`, replacing any.
    pub replace_signer: &'static str,
    /// The signer kept.
    pub signer: &'static str,
    /// Keeps `(tree_size, root_hash, note)`.
    pub save_checkpoint: &'static str,
    /// Checkpoints `(after_size, limit)`.
    pub checkpoints: &'static str,
    /// The latest checkpoint.
    pub latest_checkpoint: &'static str,
    /// Anything, to see the database answer.
    pub ping: &'static str,

    /// `(position, generation)` of `(projection)`.
    pub checkpoint: &'static str,
    /// The same, locked until the transaction ends (folds take turns).
    pub lock_checkpoint: &'static str,
    /// The checkpoint of `(projection)` locked, with the log's events in `(after, through)`:
    /// `checkpoint, generation` and an event per row (none: NULLs).
    pub lock_checkpoint_log: &'static str,
    /// Every standing of `global`.
    pub standings: &'static str,
    /// The boards kept: `board, definition, position`.
    pub boards: &'static str,
    /// The newest season board `(board)` has standings in.
    pub newest_season: &'static str,
    /// Every standing of `(board, season)`.
    pub season: &'static str,
    /// Standings of `(boards, seasons)` pairs, on boards ready at `(position)`.
    pub seasons: &'static str,
    /// Standings at `(boards, seasons, players)` places, and every standing of `(players)` on
    /// `(boards)`.
    pub season_places: &'static str,
    /// Drops `(board)`'s standings.
    pub drop_standings: &'static str,
    /// Drops `(board)`.
    pub drop_board: &'static str,
    /// Drops `(board)`'s usage tallies.
    pub drop_usage: &'static str,
    /// Bumps the generation of `(projection)`; returns it.
    pub bump_generation: &'static str,
    /// What changed after `(position)` of `(projection)`, with where the read model stands:
    /// `checkpoint, generation, at_since, at_checkpoint` and the change rows.
    pub changes_since: &'static str,
    /// The latest snapshot at or before `(position)`.
    pub snapshot_before: &'static str,
    /// The position of the latest snapshot, and the global standings changed since.
    pub snapshot_due: &'static str,
    /// Change rows in `(after, through]`.
    pub changed_between: &'static str,
    /// Makes empty `*_next` tables beside the read model's, for a rebuild to fill; the
    /// standings tables without their indexes, which loading builds faster afterwards.
    pub create_next: &'static [&'static str],
    /// Indexes the standings tables once they are loaded.
    pub index_next: &'static [&'static str],
    /// Puts the `*_next` tables in the place of the read model's.
    pub swap_next: &'static [&'static str],
    /// `board, season, version, definition` of the latest results of every season published.
    pub published_seasons: &'static str,
    /// `(min)` of the seasons of `(board)` the read model holds (NULL: none).
    pub first_season: &'static str,
    /// The smallest checkpoint of at least `(size)` events, if any.
    pub covering_checkpoint: &'static str,
    /// `board, season` of every published season a fold changed since.
    pub amendments: &'static str,
    /// Marks `(board, season)` changed since it was published.
    pub amend_season: &'static str,
    /// Clears the mark of `(board, season)`.
    pub clear_amendment: &'static str,
    /// Publishes `(board, season, version, position, tree_size, entries, players, published_at,
    /// definition)`.
    pub insert_results: &'static str,
    /// The results of `(board, season)` at `(version)` (0: the latest), with the checkpoint's note.
    pub results: &'static str,
    /// Every version of results not sent to JetStream yet, in the order published.
    pub unrelayed: &'static str,
    /// Marks `(board, season, version)` sent.
    pub mark_relayed: &'static str,
}

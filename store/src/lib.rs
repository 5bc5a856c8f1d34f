//! Scoreboard's persistence: the event log (source of truth) and the leaderboard read model
//! with its projection checkpoint, on PostgreSQL (the distributed services) or SQLite (the
//! all-in-one binary's embedded default).
//!
//! What every operation means is written once, over a [`sql::Backend`] that supplies only SQL
//! text, parameter binding and how a transaction begins:
//!
//! - [`log`]: the event log, with the append protocol ([`append`]) and the Merkle tree kept as
//!   C2SP tiles ([`tree`]);
//! - [`fold`]: the read model folded once and in memory, written in bulk ([`read_model`] holds
//!   what query services read; [`rebuild`] builds one afresh);
//! - [`claims`]: what a transport says, checked against the log;
//! - [`usage`]: usage analytics, folded with the boards;
//! - [`snapshot`]: the compact encoding of snapshots and changes, and when a snapshot is due.
//!
//! Both databases pass one conformance suite (`tests/conformance.rs`).

mod append;
mod claims;
mod error;
mod fold;
mod log;
mod model;
pub mod postgres;
mod read_model;
mod rebuild;
mod results;
mod rows;
pub mod snapshot;
pub mod sql;
pub mod sqlite;
mod tree;
mod usage;

use events::Board;
use events::anomaly::Flag;
use events::boards::Season;
use time::OffsetDateTime;
use uuid::Uuid;

pub use error::StoreError;
pub use log::EventLog;
pub use model::{
    Anchor, AppendOutcome, Applied, BoardSeason, BoardsBuilt, Changes, Checkpoint, Claim, KeptSigner, NewEvent,
    Rebuilt, Refusal, SeasonResults, Seasons, StoredEvent, UsageFolded, UsageStats,
};
pub use postgres::{PgEventLog, PgLeaderboard};
pub use read_model::ReadModel;
pub use snapshot::{Changed, Snapshot};
pub use sqlite::{SqliteEventLog, SqliteLeaderboard};

/// How many events a transaction of [`LeaderboardStore::build_boards`] folds.
pub const BOARD_BUILD_BATCH: u32 = 10_000;

/// The event log: the source of truth.
///
/// Positions are dense (1, 2, 3 … without gaps) and become visible in order, so a reader
/// following the log by position never skips an event. Each action id is recorded at most
/// once. Nothing is ever updated or deleted.
pub trait EventStore: Clone + Send + Sync + 'static {
    /// Appends `batch` in one transaction and says, per event and in order, what became of it.
    /// Durable when it returns `Ok`.
    fn append(&self, batch: &[NewEvent]) -> impl Future<Output = Result<Vec<AppendOutcome>, StoreError>> + Send;

    /// The position of the last committed event (0 for an empty log).
    fn head(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Up to `limit` events after position `after`, in order.
    fn read_after(&self, after: u64, limit: u32) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// The event with id `event_id`, if the log holds it.
    fn read_event(&self, event_id: Uuid) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;

    /// Up to `limit` of one player's events after position `after`, in order.
    fn read_player(
        &self,
        player_id: &str,
        after: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// The latest `limit` anomaly flags, newest first.
    fn flags(&self, limit: u32) -> impl Future<Output = Result<Vec<Flag>, StoreError>> + Send;

    /// Usage analytics over `window`, as the read model holds them.
    fn usage(&self, window: &events::usage::Window) -> impl Future<Output = Result<UsageStats, StoreError>> + Send;

    /// The position of the last event recorded at or before `time` (0 when none was).
    fn position_at(&self, time: OffsetDateTime) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// How many events the Merkle tree over the log holds (the head, once every event is hashed).
    fn tree_size(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The hashes of `nodes` of the Merkle tree; nodes the tree does not hold are absent.
    fn read_nodes(
        &self,
        nodes: &[tlog::Node],
    ) -> impl Future<Output = Result<std::collections::HashMap<tlog::Node, tlog::Hash>, StoreError>> + Send;

    /// The bytes of the C2SP tile resource `path` as of a tree of `tree_size` leaves (hashes, or
    /// an entry bundle); `None` when that tree does not have it.
    fn read_tile(
        &self,
        path: tlog::tiles::TilePath,
        tree_size: u64,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Keeps `signer` as the checkpoint signer, unless one was kept before and `replace` is false;
    /// returns the signer kept.
    fn keep_signer(
        &self,
        signer: &KeptSigner,
        replace: bool,
    ) -> impl Future<Output = Result<KeptSigner, StoreError>> + Send;

    /// The checkpoint signer's verifier key, once one was kept.
    fn verifier_key(&self) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Keeps `checkpoint` (a checkpoint of the same size kept before stays).
    fn save_checkpoint(&self, checkpoint: &Checkpoint) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` checkpoints of trees larger than `after_size`, smallest first.
    fn checkpoints(
        &self,
        after_size: u64,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Checkpoint>, StoreError>> + Send;

    /// The checkpoint of the largest tree, if any.
    fn latest_checkpoint(&self) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;

    /// Checks that the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The same log, read through a pool of `connections` of its own: for reads that must
    /// never wait for (or hold up) the others.
    #[must_use]
    fn apart(&self, connections: u32) -> Self;
}

/// The leaderboard read model: every player's standing and the checkpoint of the log position
/// folded so far, always changed together.
pub trait LeaderboardStore: Clone + Send + Sync + 'static {
    /// The last log position folded in.
    fn checkpoint(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Folds the next events of the log, up to `limit` of them, exactly once: in one
    /// transaction that also moves the checkpoint.
    fn fold_next(&self, limit: u32) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// Folds the log through the highest position of `claims` that the log confirms, exactly
    /// once, in one transaction that reads the log, checks every claim against it and moves the
    /// checkpoint. What is folded is always the log's own events, never the claims; claims at or
    /// below the checkpoint are skipped, claims the log contradicts are reported as forged.
    fn fold_claimed(&self, claims: &[Claim]) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// What changed after `since`: the new standings of every player the folds after it
    /// touched, on every board, as of the checkpoint, with the anchor of that checkpoint, read
    /// in one statement from the folds' change rows. `None` when the read model does not
    /// continue `since` — it is behind it, holds another event at its position (the database was
    /// restored to an earlier point and has grown again), was rebuilt, or is too far ahead:
    /// reload the whole board.
    fn changes_since(&self, since: Anchor) -> impl Future<Output = Result<Option<Changes>, StoreError>> + Send;

    /// The whole board as of its checkpoint, read from one consistent snapshot, and where it
    /// stands.
    fn load(&self) -> impl Future<Output = Result<(Board, Anchor), StoreError>> + Send;

    /// The seasons `wanted` of boards other than `global`, read from one consistent snapshot.
    /// A player `ids` holds (`global`, already loaded) is given its id and name as they arrive,
    /// so that each is held once however many boards hold the player, and the copies read are
    /// dropped before the next row is read.
    fn load_seasons(
        &self,
        wanted: &[(String, Season)],
        ids: Option<&Board>,
    ) -> impl Future<Output = Result<Seasons, StoreError>> + Send;

    /// Makes the boards of the read model those it was given (see `boards`): drops the boards no
    /// longer defined, and builds the new ones (and those defined otherwise than before) from the
    /// whole log, `batch` events a transaction, while folding goes on; once they are all folded
    /// up to the checkpoint, bumps the generation so that query services load them. Only the one
    /// folder (the elected projector) calls it: it builds in the fold it keeps in memory.
    fn build_boards(&self, batch: u32) -> impl Future<Output = Result<BoardsBuilt, StoreError>> + Send;

    /// The latest snapshot of the fold at or before `position` (see [`snapshot`]), if any.
    fn snapshot_before(&self, position: u64) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// What the folds that ended in `(after, through]` changed, in order.
    fn changed_between(
        &self,
        after: u64,
        through: u64,
    ) -> impl Future<Output = Result<Vec<Changed>, StoreError>> + Send;

    /// Publishes the results of the seasons that closed by `now` (their end plus `grace`) and
    /// new versions of those moderation reached since (see `store::results`); returns what it
    /// published. Only the one folder calls it: it publishes from the fold it keeps.
    fn publish_results(
        &self,
        now: OffsetDateTime,
        grace: time::Duration,
    ) -> impl Future<Output = Result<Vec<SeasonResults>, StoreError>> + Send;
    /// The results of `season` of `board` at `version` (`None`: the latest), if published.
    fn season_results(
        &self,
        board: &str,
        season: Season,
        version: Option<u32>,
    ) -> impl Future<Output = Result<Option<SeasonResults>, StoreError>> + Send;
    /// Every version of results not sent to JetStream yet, in the order published.
    fn unrelayed_results(&self) -> impl Future<Output = Result<Vec<SeasonResults>, StoreError>> + Send;
    /// Marks `results` sent to JetStream.
    fn mark_relayed(&self, results: &SeasonResults) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The same read model, read through a pool of `connections` of its own: for reads that
    /// must never wait for (or hold up) the others.
    #[must_use]
    fn apart(&self, connections: u32) -> Self;
}

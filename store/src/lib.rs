//! Scoreboard's persistence: the event log (source of truth) and the leaderboard read model
//! with its projection checkpoint, on PostgreSQL (the distributed services) or SQLite (the
//! all-in-one binary's embedded default).
//!
//! Both back ends implement [`EventStore`] and [`LeaderboardStore`] and pass one conformance
//! suite (`tests/conformance.rs`). What appending and folding mean is decided once, in `plan`;
//! each back end only supplies the SQL of one transaction.

mod error;
mod plan;
pub mod postgres;
pub mod snapshot;
pub mod sqlite;

use std::sync::{Arc, Mutex};

use events::anomaly::{Detector, Flag, Rules};
use events::boards::{BoardDef, Boards, Reads, Season, SeasonStanding};
use events::{Board, BoardChange, DecodeError, DisplayName, Event, PlayerId, RecordedEvent, Standing};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

pub use error::StoreError;
pub use postgres::{PgEventLog, PgLeaderboard, Rebuilt};
pub use snapshot::{Changed, Snapshot};

/// How many events a transaction of [`LeaderboardStore::build_boards`] folds.
pub const BOARD_BUILD_BATCH: u32 = 10_000;
pub use sqlite::{SqliteEventLog, SqliteLeaderboard};

/// An event to append, with the digest of the token claims that caused it (if any).
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event.
    pub event: Event,
    /// SHA-256 of the canonical token claims: equal digests mean the same action.
    pub claims_digest: Option<[u8; 32]>,
}

/// What became of one event of an appended batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Appended now, at this position.
    Appended(RecordedEvent),
    /// Refused, and not appended: see [`Refusal`].
    Refused(Refusal),
    /// Its action id was recorded before (by an earlier batch, or earlier in this one): the
    /// original event, and whether it came from the same claims (a safe retry) or not (a conflict).
    AlreadyRecorded {
        /// The event recorded first for this action id.
        original: RecordedEvent,
        /// `true` when the claims digests are equal.
        same_claims: bool,
    },
}

/// Why an event was refused where the append order is decided, under the log's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// An award for a player who is banned (at this point of the log).
    #[error("the player is banned")]
    PlayerBanned,
    /// A ban of a player who is banned already.
    #[error("the player is banned already")]
    AlreadyBanned,
    /// An unban of a player who is not banned.
    #[error("the player is not banned")]
    NotBanned,
    /// A revocation of an award already taken back (by itself, or with all of its player's).
    #[error("the award was taken back already")]
    AlreadyRevoked,
}

/// A signed checkpoint of the Merkle tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The tree size it signs.
    pub tree_size: u64,
    /// The root hash at that size.
    pub root_hash: audit::Hash,
    /// The signed note, as signed.
    pub note: String,
}

/// The checkpoint signer's keys as kept in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptSigner {
    /// The verifier key (note format).
    pub verifier: String,
    /// The private key, when Scoreboard generated it.
    pub private_key: Option<String>,
}

/// An event as the log stores it: position, identity, and the exact payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Global position, dense from 1.
    pub position: u64,
    /// The event's id.
    pub event_id: Uuid,
    /// Type name, e.g. `ScoreAwarded`.
    pub event_type: String,
    /// Schema version of `payload`.
    pub event_version: i32,
    /// The payload exactly as written.
    pub payload: String,
    /// When it was recorded.
    pub recorded_at: OffsetDateTime,
}

impl StoredEvent {
    /// The exact bytes its leaf in the Merkle tree hashes (see [`audit::entry`]).
    pub fn entry(&self) -> String {
        audit::entry(self.position, &self.event_type, self.event_version, &self.payload)
    }

    /// Reads the payload back as an event.
    pub fn decode(&self) -> Result<RecordedEvent, DecodeError> {
        let event = Event::decode(&self.event_type, self.event_version, self.payload.as_bytes())?;
        Ok(RecordedEvent { position: self.position, event })
    }

    /// [`StoredEvent::decode`], as a store error.
    pub fn decoded(&self) -> Result<RecordedEvent, StoreError> {
        self.decode().map_err(|source| StoreError::Corrupt { position: self.position, source })
    }
}

/// What a transport (a JetStream message) says is the event at `position` of the log. It is
/// believed only where the log itself holds that very event: a transport is not an authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The position it claims.
    pub position: u64,
    /// The event id it carries.
    pub event_id: Uuid,
    /// Its event type.
    pub event_type: String,
    /// Its schema version.
    pub event_version: i32,
    /// Its payload bytes.
    pub payload: Vec<u8>,
}

impl Claim {
    /// `true` when `event` is exactly what this claim says.
    pub fn matches(&self, event: &StoredEvent) -> bool {
        self.position == event.position
            && self.event_id == event.event_id
            && self.event_type == event.event_type
            && self.event_version == event.event_version
            && self.payload == event.payload.as_bytes()
    }
}

impl From<&StoredEvent> for Claim {
    fn from(event: &StoredEvent) -> Self {
        Self {
            position: event.position,
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            event_version: event.event_version,
            payload: event.payload.as_bytes().to_vec(),
        }
    }
}

/// A board's place in the history of the log: the position it has folded through, and the id
/// of the event at that position when known. A log restored to an earlier point and grown again
/// can reach the same position with other events; the event id tells the two histories apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Anchor {
    /// The position folded through.
    pub position: u64,
    /// The id of the event at `position` (`None`: not known, or position 0).
    pub event_id: Option<Uuid>,
    /// The read model's generation: a rebuild swaps in a new one, which a board following the
    /// old one's changes must reload instead of patching.
    pub generation: u64,
}

/// What changed after an [`Anchor`], and the anchor it brings a board to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The new standings on `global`, from the anchor's position to the checkpoint.
    pub change: BoardChange,
    /// The new standings on the other boards, in any of their seasons, over the same span.
    pub seasons: Vec<SeasonStanding>,
    /// The checkpoint and the event there.
    pub anchor: Anchor,
}

/// What one fold transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The checkpoint before.
    pub from: u64,
    /// The checkpoint after (equal to `from` when nothing new was folded).
    pub to: u64,
    /// Claims at or below the checkpoint, skipped (redeliveries, duplicates).
    pub skipped: usize,
    /// Positions of claims the log contradicts (a forged or diverged message): never folded.
    pub forged: Vec<u64>,
    /// The rules that flagged a player in what was folded, one entry per flag.
    pub flagged: Vec<String>,
}

/// Seasons of boards other than `global`, as the read model holds them at its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seasons {
    /// The boards ready to serve (folded up to the checkpoint): id → definition
    /// ([`BoardDef::definition`]). A board being built, or defined otherwise, is not among them.
    pub ready: std::collections::BTreeMap<String, String>,
    /// Every standing of the seasons asked for, on the boards ready.
    pub standings: Vec<SeasonStanding>,
    /// Where the read model stands.
    pub anchor: Anchor,
}

/// What [`LeaderboardStore::build_boards`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardsBuilt {
    /// Boards folded from the log (new, or defined otherwise than before).
    pub built: Vec<String>,
    /// Boards dropped: no longer defined.
    pub dropped: Vec<String>,
    /// Events folded into the boards built.
    pub events: u64,
}

/// How a read model folds, beyond the standings: when it snapshots, the anomaly detector its
/// folds feed (shared by its clones; one projector folds at a time), and the boards other than
/// `global` it folds into.
#[derive(Clone, Debug)]
pub(crate) struct Folding {
    snapshot_interval: u64,
    rules: Rules,
    detector: Arc<Mutex<Option<Detector>>>,
    boards: Boards,
}

impl Default for Folding {
    fn default() -> Self {
        Self::new(snapshot::DEFAULT_INTERVAL, Rules::defaults())
    }
}

impl Folding {
    pub(crate) fn new(snapshot_interval: u64, rules: Rules) -> Self {
        Self { snapshot_interval: snapshot_interval.max(1), rules, detector: Arc::default(), boards: Boards::default() }
    }

    pub(crate) fn with_boards(self, boards: Boards) -> Self {
        Self { boards, ..self }
    }

    /// The detector, if it has observed the log exactly up to `position`; `None` when it must
    /// first be warmed up from the log.
    fn detector_at(&self, position: u64) -> Option<Detector> {
        let mut kept = self.detector.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.take().filter(|detector| detector.position() == position)
    }

    fn keep(&self, detector: Detector) {
        *self.detector.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(detector);
    }
}

/// The most events a detector rereads to warm up after a restart: if the log's last two windows
/// held more, a burst straddling the restart may go unflagged.
const WARM_UP_MAX: u64 = 100_000;

#[derive(FromRow)]
struct FlagRow {
    position: i64,
    rule: String,
    player_id: String,
    events: String,
    flagged_at: OffsetDateTime,
}

impl TryFrom<FlagRow> for Flag {
    type Error = StoreError;

    fn try_from(row: FlagRow) -> Result<Self, StoreError> {
        let invalid = || StoreError::InvalidRow(format!("flag at position {}", row.position));
        Ok(Flag {
            player_id: PlayerId::parse(&row.player_id).map_err(|_| invalid())?,
            rule: row.rule,
            events: serde_json::from_str(&row.events).map_err(|_| invalid())?,
            position: from_db(row.position),
            flagged_at: row.flagged_at,
        })
    }
}

#[derive(FromRow)]
struct FirstSeenRow {
    player_id: String,
    first: Option<OffsetDateTime>,
}

/// What flagging needs of a fold transaction: the SQL of one back end. What flagging means
/// (when the detector warms up, what it is told, what is recorded) is [`Folding::flag`]'s.
trait FlagSql: Send {
    /// The position of the last event recorded at least `lookback` before the event at
    /// `position`, if any.
    fn position_before(
        &mut self,
        position: u64,
        lookback: time::Duration,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// The log's events in `(after, through]`, in order.
    fn read_log(
        &mut self,
        after: u64,
        through: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// When each of `players` was first seen (their first event's `recorded_at`).
    fn first_seen(&mut self, players: &[&str]) -> impl Future<Output = Result<Vec<FirstSeenRow>, StoreError>> + Send;

    /// Records `flags` (none of them recorded before).
    fn record(&mut self, flags: &[Flag]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl Folding {
    /// Feeds `events` (the log's from `from + 1` on) to the anomaly detector, warming it up from
    /// the log first if it has not watched up to `from`, and records the flags it raises; returns
    /// their rules.
    async fn flag(
        &self,
        sql: &mut impl FlagSql,
        from: u64,
        events: &[RecordedEvent],
    ) -> Result<Vec<String>, StoreError> {
        if self.rules.is_empty() {
            return Ok(Vec::new());
        }
        let mut detector = match self.detector_at(from) {
            Some(detector) => detector,
            None => warm_up(sql, self.rules.clone(), from).await?,
        };
        tell_first_seen(sql, &mut detector, events).await?;
        let flags = detector.observe(events);
        self.keep(detector);
        if !flags.is_empty() {
            sql.record(&flags).await?;
        }
        Ok(flags.into_iter().map(|f| f.rule).collect())
    }
}

/// A detector that has observed the log's last two windows before `position` (at most
/// [`WARM_UP_MAX`] events), as one that had watched all along would have.
async fn warm_up(sql: &mut impl FlagSql, rules: Rules, position: u64) -> Result<Detector, StoreError> {
    let before = sql.position_before(position, rules.lookback()).await?;
    let since = before.unwrap_or(0).max(position.saturating_sub(WARM_UP_MAX));
    let (events, _) = decode_run(&sql.read_log(since, position).await?)?;
    let mut detector = Detector::new(rules, since);
    tell_first_seen(sql, &mut detector, &events).await?;
    detector.observe(&events);
    Ok(detector)
}

/// Tells `detector` when the players of `events` it does not know yet were first seen.
async fn tell_first_seen(
    sql: &mut impl FlagSql,
    detector: &mut Detector,
    events: &[RecordedEvent],
) -> Result<(), StoreError> {
    let unknown: Vec<&str> = detector.unknown_players(events).into_iter().map(|p| p.as_str()).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    for row in sql.first_seen(&unknown).await? {
        if let (Ok(player), Some(first)) = (PlayerId::parse(&row.player_id), row.first) {
            detector.first_seen(player, first);
        }
    }
    Ok(())
}

#[derive(FromRow)]
struct SeasonRow {
    board: String,
    season: String,
    #[sqlx(flatten)]
    standing: StandingRow,
}

/// The columns of a [`SeasonRow`].
const SEASON_COLUMNS: &str = "board, season, player_id, display_name, score, reached_at, banned";

impl TryFrom<SeasonRow> for SeasonStanding {
    type Error = StoreError;

    fn try_from(row: SeasonRow) -> Result<Self, StoreError> {
        let invalid = || StoreError::InvalidRow(format!("board_standings row {:?} {:?}", row.board, row.season));
        Ok(SeasonStanding {
            board: events::BoardId::parse(row.board.as_str()).map_err(|_| invalid())?,
            season: row.season.parse::<Season>().map_err(|_| invalid())?,
            standing: Standing::try_from(row.standing)?,
        })
    }
}

fn season_standings_of(rows: Vec<SeasonRow>) -> Result<Vec<SeasonStanding>, StoreError> {
    rows.into_iter().map(SeasonStanding::try_from).collect()
}

/// What folding into boards and building them needs of a transaction: the SQL of one back end.
/// What it means is [`fold_boards`]', [`sync_boards`]' and [`build_step`]'s.
trait BoardSql: Send {
    /// The boards the read model holds: id and definition.
    fn kept(&mut self) -> impl Future<Output = Result<Vec<(String, String)>, StoreError>> + Send;

    /// Drops board `id` and its standings.
    fn drop_board(&mut self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds `board`, folded up to position 0.
    fn add_board(&mut self, board: &BoardDef) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The position board `id` has folded through, locked until the transaction ends.
    fn board_position(&mut self, id: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The log's events in `(after, through]`, in order.
    fn read_run(
        &mut self,
        after: u64,
        through: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Moves the boards of `boards` whose position is `from` (and whose definition is still the
    /// one given) to `to`; returns the ids of those moved.
    fn advance(
        &mut self,
        boards: &[BoardDef],
        from: u64,
        to: u64,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// The log's events at `positions`.
    fn read_events(&mut self, positions: &[u64]) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// The standings `reads` names on `boards`.
    fn read_seasons(
        &mut self,
        boards: &[&str],
        reads: &Reads,
    ) -> impl Future<Output = Result<Vec<SeasonRow>, StoreError>> + Send;

    /// Writes `standings`, changed by the fold that ends at `to`.
    fn write_seasons(
        &mut self,
        standings: &[SeasonStanding],
        to: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Folds `events` (the log's `(from, to]`) into those of `boards` at position `from`, and moves
/// them to `to`.
async fn fold_boards(
    sql: &mut impl BoardSql,
    boards: &[BoardDef],
    from: u64,
    to: u64,
    events: &[RecordedEvent],
) -> Result<(), StoreError> {
    if boards.is_empty() || to == from {
        return Ok(());
    }
    let advanced = sql.advance(boards, from, to).await?;
    let boards: Vec<BoardDef> =
        boards.iter().filter(|b| advanced.iter().any(|id| id == b.id.as_str())).cloned().collect();
    if boards.is_empty() {
        return Ok(());
    }
    let positions = events::boards::revoked_positions(events);
    let mut revoked = std::collections::HashMap::new();
    if !positions.is_empty() {
        for stored in sql.read_events(&positions).await? {
            if let Event::ScoreAwarded(award) = stored.decoded()?.event {
                revoked.insert(stored.position, award);
            }
        }
    }
    let reads = events::boards::reads(&boards, &revoked, events);
    let ids: Vec<&str> = boards.iter().map(|b| b.id.as_str()).collect();
    let existing = season_standings_of(sql.read_seasons(&ids, &reads).await?)?;
    let standings = events::boards::fold_seasons(&boards, existing, &revoked, events);
    sql.write_seasons(&standings, to).await
}

/// Makes the read model's boards `boards`: drops those no longer defined (or defined otherwise)
/// and adds the new ones at position 0; returns the ids dropped and the boards to build.
async fn sync_boards(sql: &mut impl BoardSql, boards: &Boards) -> Result<(Vec<String>, Vec<BoardDef>), StoreError> {
    let (drop, add) = board_plan(&sql.kept().await?, boards);
    for id in &drop {
        sql.drop_board(id).await?;
    }
    for board in &add {
        sql.add_board(board).await?;
    }
    Ok((drop, add))
}

/// Folds the next `batch` events of the log, up to `checkpoint` (the live fold's, locked by the
/// caller), into `board`, which is being built; returns how many (0: it has caught up).
async fn build_step(sql: &mut impl BoardSql, board: &BoardDef, checkpoint: u64, batch: u32) -> Result<u64, StoreError> {
    let from = sql.board_position(board.id.as_str()).await?;
    if from >= checkpoint {
        return Ok(0);
    }
    let run = sql.read_run(from, checkpoint.min(from + u64::from(batch.max(1)))).await?;
    let (events, _) = decode_run(&run)?;
    let to = from + run.len() as u64;
    fold_boards(sql, std::slice::from_ref(board), from, to, &events).await?;
    tracing::info!(board = %board.id, position = to, checkpoint, "building board");
    Ok(run.len() as u64)
}

/// Which kept boards (`kept`: id and definition, as the read model holds them) to drop, and which
/// of `boards` to add and build from the log: a board whose definition changed is both.
fn board_plan(kept: &[(String, String)], boards: &Boards) -> (Vec<String>, Vec<BoardDef>) {
    let defined =
        |id: &str, definition: &str| boards.named().iter().any(|b| b.id.as_str() == id && b.definition() == definition);
    let drop = kept.iter().filter(|(id, definition)| !defined(id, definition)).map(|(id, _)| id.clone()).collect();
    let add = boards
        .named()
        .iter()
        .filter(|b| !kept.iter().any(|(id, definition)| id == b.id.as_str() && *definition == b.definition()))
        .cloned()
        .collect();
    (drop, add)
}

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

    /// The position of the last event recorded at or before `time` (0 when none was).
    fn position_at(&self, time: OffsetDateTime) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// How many events the Merkle tree over the log holds (the head, once every event is hashed).
    fn tree_size(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The stored hashes of `nodes` of the Merkle tree; nodes the tree does not hold are absent.
    fn read_nodes(
        &self,
        nodes: &[audit::Node],
    ) -> impl Future<Output = Result<std::collections::HashMap<audit::Node, audit::Hash>, StoreError>> + Send;

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
    /// touched, as of the checkpoint, with the anchor of that checkpoint, read from one
    /// consistent snapshot. `None` when the read model does not continue `since` — it is behind
    /// it, or holds another event at its position (the database was restored to an earlier
    /// point and has grown again): reload the whole board.
    fn changes_since(&self, since: Anchor) -> impl Future<Output = Result<Option<Changes>, StoreError>> + Send;

    /// The whole board as of its checkpoint, read from one consistent snapshot, and where it
    /// stands.
    fn load(&self) -> impl Future<Output = Result<(Board, Anchor), StoreError>> + Send;

    /// The seasons `wanted` of boards other than `global`, read from one consistent snapshot.
    fn load_seasons(&self, wanted: &[(String, Season)]) -> impl Future<Output = Result<Seasons, StoreError>> + Send;

    /// Makes the boards of the read model those it was given (see `folding`): drops the boards no
    /// longer defined, and builds the new ones (and those defined otherwise than before) from the
    /// whole log, `batch` events a transaction, while folding goes on; once they are all folded
    /// up to the checkpoint, bumps the generation so that query services load them.
    fn build_boards(&self, batch: u32) -> impl Future<Output = Result<BoardsBuilt, StoreError>> + Send;

    /// The latest snapshot of the fold at or before `position` (see [`snapshot`]), if any.
    fn snapshot_before(&self, position: u64) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// What the folds that ended in `(after, through]` changed, in order.
    fn changed_between(
        &self,
        after: u64,
        through: u64,
    ) -> impl Future<Output = Result<Vec<Changed>, StoreError>> + Send;
}

#[derive(FromRow)]
struct CheckpointRow {
    tree_size: i64,
    root_hash: Vec<u8>,
    note: String,
}

impl TryFrom<CheckpointRow> for Checkpoint {
    type Error = StoreError;

    fn try_from(row: CheckpointRow) -> Result<Self, StoreError> {
        let invalid = || StoreError::InvalidRow(format!("checkpoint of tree size {}", row.tree_size));
        Ok(Self {
            tree_size: u64::try_from(row.tree_size).map_err(|_| invalid())?,
            root_hash: row.root_hash.try_into().map_err(|_| invalid())?,
            note: row.note,
        })
    }
}

#[derive(FromRow)]
struct EventRow {
    position: i64,
    event_id: Uuid,
    event_type: String,
    event_version: i32,
    payload: String,
    recorded_at: OffsetDateTime,
}

impl From<EventRow> for StoredEvent {
    fn from(row: EventRow) -> Self {
        Self {
            position: from_db(row.position),
            event_id: row.event_id,
            event_type: row.event_type,
            event_version: row.event_version,
            payload: row.payload,
            recorded_at: row.recorded_at,
        }
    }
}

#[derive(FromRow)]
struct SnapshotRow {
    position: i64,
    standings: Vec<u8>,
}

impl TryFrom<SnapshotRow> for Snapshot {
    type Error = StoreError;

    fn try_from(row: SnapshotRow) -> Result<Self, StoreError> {
        snapshot::decode(from_db(row.position), &row.standings)
    }
}

#[derive(FromRow)]
struct ChangedRow {
    from_position: i64,
    position: i64,
    standings: Vec<u8>,
}

impl TryFrom<ChangedRow> for Changed {
    type Error = StoreError;

    fn try_from(row: ChangedRow) -> Result<Self, StoreError> {
        let Snapshot { position, standings } = snapshot::decode(from_db(row.position), &row.standings)?;
        Ok(Changed { from: from_db(row.from_position), position, standings })
    }
}

#[derive(FromRow)]
struct StandingRow {
    player_id: String,
    display_name: Option<String>,
    score: i64,
    reached_at: i64,
    banned: bool,
}

/// The columns of a [`StandingRow`].
const STANDING_COLUMNS: &str = "player_id, display_name, score, reached_at, banned";

impl TryFrom<StandingRow> for Standing {
    type Error = StoreError;

    fn try_from(row: StandingRow) -> Result<Self, StoreError> {
        let invalid = || StoreError::InvalidRow(format!("leaderboard row for {:?}", row.player_id));
        Ok(Standing {
            player_id: PlayerId::parse(row.player_id.as_str()).map_err(|_| invalid())?,
            name: row.display_name.as_deref().map(DisplayName::parse).transpose().map_err(|_| invalid())?,
            score: u64::try_from(row.score).map_err(|_| invalid())?,
            reached_at: u64::try_from(row.reached_at).map_err(|_| invalid())?,
            banned: row.banned,
        })
    }
}

/// The whole board of a read model's rows, as of `position` in `generation`, and its anchor. The
/// rows are converted one by one as they arrive: a million players never sit in memory twice.
async fn board_from_rows(
    position: i64,
    generation: i64,
    rows: impl futures::Stream<Item = Result<StandingRow, sqlx::Error>>,
) -> Result<(Board, Anchor), StoreError> {
    let anchor = Anchor { position: from_db(position), event_id: None, generation: from_db(generation) };
    Ok((Board::from_standings(anchor.position, convert_rows::<_, Standing>(rows).await?), anchor))
}

/// Rows converted one by one as they arrive.
async fn convert_rows<R, T: TryFrom<R, Error = StoreError>>(
    rows: impl futures::Stream<Item = Result<R, sqlx::Error>>,
) -> Result<Vec<T>, StoreError> {
    use futures::TryStreamExt as _;
    rows.map_err(StoreError::from).and_then(|row| std::future::ready(T::try_from(row))).try_collect().await
}

fn standings_of(rows: Vec<StandingRow>) -> Result<Vec<Standing>, StoreError> {
    rows.into_iter().map(Standing::try_from).collect()
}

/// Where the read model stands, read in one query: its checkpoint, and the ids of the log's
/// events at an anchor's position and at the checkpoint.
#[derive(FromRow)]
struct StandsRow {
    checkpoint: i64,
    generation: i64,
    at_since: Option<Uuid>,
    at_checkpoint: Option<Uuid>,
}

impl StandsRow {
    /// The anchor of the checkpoint, if the read model continues the history `since` was taken
    /// in: it is not behind `since`, and holds the same event at its position.
    fn continuing(self, since: Anchor) -> Option<Anchor> {
        let (checkpoint, generation) = (from_db(self.checkpoint), from_db(self.generation));
        let same_history = since.event_id.is_none() || since.event_id == self.at_since;
        (checkpoint >= since.position && same_history && since.generation == generation).then_some(Anchor {
            position: checkpoint,
            event_id: self.at_checkpoint,
            generation,
        })
    }
}

/// What the rows changed after `since` make, read with the checkpoint and the event there.
fn changes_from_rows(
    since: Anchor,
    to: Anchor,
    rows: Vec<StandingRow>,
    seasons: Vec<SeasonRow>,
) -> Result<Changes, StoreError> {
    let change = BoardChange { from: since.position, to: to.position, standings: standings_of(rows)? };
    Ok(Changes { change, seasons: season_standings_of(seasons)?, anchor: to })
}

/// The events of `run` (read from the log), decoded, and the players they touch.
fn decode_run(run: &[StoredEvent]) -> Result<(Vec<RecordedEvent>, Vec<String>), StoreError> {
    let events = run.iter().map(StoredEvent::decoded).collect::<Result<Vec<_>, _>>()?;
    let mut players: Vec<String> = events.iter().map(|e| e.event.player_id().to_string()).collect();
    players.sort_unstable();
    players.dedup();
    Ok((events, players))
}

/// The new standings of the players `events` touch, folded onto their `rows`.
fn folded_onto(rows: Vec<StandingRow>, events: &[RecordedEvent]) -> Result<Vec<Standing>, StoreError> {
    Ok(events::leaderboard::fold_onto(standings_of(rows)?, events))
}

/// Positions and scores are `u64` in the domain and `BIGINT` / `INTEGER` (signed) in SQL;
/// CHECK constraints keep them non-negative.
fn from_db(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

//! Rows as the statements return them, and what they are in the domain. Positions and scores
//! are `u64` in the domain and signed integers in SQL; CHECK constraints keep them
//! non-negative.

use events::anomaly::Flag;
use events::boards::{Season, SeasonStanding};
use events::{BoardId, DisplayName, PlayerId, Standing};
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Checkpoint, StoreError, StoredEvent};

/// The read model's row in `projection_checkpoints`.
pub(crate) const PROJECTION: &str = "leaderboard";

pub(crate) fn from_db(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

pub(crate) fn to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[derive(FromRow)]
pub(crate) struct EventRow {
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

/// The events of `rows`.
pub(crate) fn stored(rows: Vec<EventRow>) -> Vec<StoredEvent> {
    rows.into_iter().map(StoredEvent::from).collect()
}

/// An event of a `LEFT JOIN`: absent (all NULL) when nothing joined.
#[derive(FromRow)]
pub(crate) struct MaybeEventRow {
    position: Option<i64>,
    event_id: Option<Uuid>,
    event_type: Option<String>,
    event_version: Option<i32>,
    payload: Option<String>,
    recorded_at: Option<OffsetDateTime>,
}

impl MaybeEventRow {
    pub(crate) fn event(self) -> Option<StoredEvent> {
        Some(StoredEvent {
            position: from_db(self.position?),
            event_id: self.event_id?,
            event_type: self.event_type?,
            event_version: self.event_version?,
            payload: self.payload?,
            recorded_at: self.recorded_at?,
        })
    }
}

/// The head locked, with the moderation events read in the same statement.
#[derive(FromRow)]
pub(crate) struct LockedHeadRow {
    pub head: i64,
    pub tree_size: i64,
    pub seen: i64,
    #[sqlx(flatten)]
    pub event: MaybeEventRow,
}

/// The checkpoint locked, with the log's events read in the same statement.
#[derive(FromRow)]
pub(crate) struct LockedCheckpointRow {
    pub checkpoint: i64,
    pub generation: i64,
    #[sqlx(flatten)]
    pub event: MaybeEventRow,
}

/// The event first recorded for an action id, with its claims digest.
#[derive(FromRow)]
pub(crate) struct OriginalRow {
    pub action_id: Uuid,
    pub claims_digest: Option<Vec<u8>>,
    #[sqlx(flatten)]
    pub event: EventRow,
}

/// A leaf: its position, its hash where the row keeps it, and what it hashes.
#[derive(FromRow)]
pub(crate) struct LeafRow {
    position: i64,
    leaf_hash: Option<Vec<u8>>,
    event_type: String,
    event_version: i32,
    payload: String,
}

impl LeafRow {
    /// The position and the leaf hash (computed from the row where it keeps none).
    pub(crate) fn leaf(&self) -> Result<(u64, tlog::Hash), StoreError> {
        let position = from_db(self.position);
        let hash = match &self.leaf_hash {
            Some(hash) => {
                hash.as_slice().try_into().map_err(|_| invalid(format!("leaf hash at position {position}")))?
            }
            None => {
                tlog::leaf_hash(tlog::entry(position, &self.event_type, self.event_version, &self.payload).as_bytes())
            }
        };
        Ok((position, hash))
    }
}

#[derive(FromRow)]
pub(crate) struct TileRow {
    pub level: i16,
    pub idx: i64,
    pub hashes: Vec<u8>,
}

impl TileRow {
    /// The tile and its hashes.
    pub(crate) fn tile(self) -> Result<(tlog::tiles::Tile, Vec<tlog::Hash>), StoreError> {
        let bad = || invalid(format!("tile {} {}", self.level, self.idx));
        let tile = tlog::tiles::Tile {
            level: u8::try_from(self.level).map_err(|_| bad())?,
            index: u64::try_from(self.idx).map_err(|_| bad())?,
        };
        if !self.hashes.len().is_multiple_of(32) {
            return Err(bad());
        }
        let hashes = self.hashes.chunks_exact(32).map(|h| h.try_into().expect("32 bytes")).collect();
        Ok((tile, hashes))
    }
}

#[derive(FromRow)]
pub(crate) struct CheckpointRow {
    tree_size: i64,
    root_hash: Vec<u8>,
    note: String,
}

impl TryFrom<CheckpointRow> for Checkpoint {
    type Error = StoreError;

    fn try_from(row: CheckpointRow) -> Result<Self, StoreError> {
        let bad = || invalid(format!("checkpoint of tree size {}", row.tree_size));
        Ok(Self {
            tree_size: u64::try_from(row.tree_size).map_err(|_| bad())?,
            root_hash: row.root_hash.try_into().map_err(|_| bad())?,
            note: row.note,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct FlagRow {
    position: i64,
    rule: String,
    player_id: String,
    events: String,
    flagged_at: OffsetDateTime,
}

impl TryFrom<FlagRow> for Flag {
    type Error = StoreError;

    fn try_from(row: FlagRow) -> Result<Self, StoreError> {
        let bad = || invalid(format!("flag at position {}", row.position));
        Ok(Flag {
            player_id: PlayerId::parse(&row.player_id).map_err(|_| bad())?,
            rule: row.rule,
            events: serde_json::from_str(&row.events).map_err(|_| bad())?,
            position: from_db(row.position),
            flagged_at: row.flagged_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct FirstSeenRow {
    pub player_id: String,
    pub first: Option<OffsetDateTime>,
}

#[derive(FromRow)]
pub(crate) struct StandingRow {
    player_id: String,
    display_name: Option<String>,
    score: i64,
    reached_at: i64,
    banned: bool,
}

impl TryFrom<StandingRow> for Standing {
    type Error = StoreError;

    fn try_from(row: StandingRow) -> Result<Self, StoreError> {
        let bad = || invalid(format!("standing of {:?}", row.player_id));
        Ok(Standing {
            player_id: PlayerId::parse(row.player_id.as_str()).map_err(|_| bad())?,
            name: row.display_name.as_deref().map(DisplayName::parse).transpose().map_err(|_| bad())?,
            score: u64::try_from(row.score).map_err(|_| bad())?,
            reached_at: u64::try_from(row.reached_at).map_err(|_| bad())?,
            banned: row.banned,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct SeasonRow {
    board: String,
    season: String,
    #[sqlx(flatten)]
    standing: StandingRow,
}

impl TryFrom<SeasonRow> for SeasonStanding {
    type Error = StoreError;

    fn try_from(row: SeasonRow) -> Result<Self, StoreError> {
        let bad = || invalid(format!("board_standings row {:?} {:?}", row.board, row.season));
        Ok(SeasonStanding {
            board: BoardId::parse(row.board.as_str()).map_err(|_| bad())?,
            season: row.season.parse::<Season>().map_err(|_| bad())?,
            standing: Standing::try_from(row.standing)?,
        })
    }
}

/// A board as the read model keeps it.
#[derive(FromRow)]
pub(crate) struct BoardRow {
    pub board: String,
    pub definition: String,
    pub position: i64,
}

#[derive(FromRow)]
pub(crate) struct SnapshotRow {
    pub position: i64,
    pub standings: Vec<u8>,
}

/// What one fold changed on `global`.
#[derive(FromRow)]
pub(crate) struct ChangeRow {
    pub from_position: i64,
    pub position: i64,
    pub standings: Vec<u8>,
}

/// A row of `changes_since`: where the read model stands, and one change row (absent when
/// nothing changed).
#[derive(FromRow)]
pub(crate) struct ChangesSinceRow {
    pub checkpoint: i64,
    pub generation: i64,
    pub at_since: Option<Uuid>,
    pub at_checkpoint: Option<Uuid>,
    pub from_position: Option<i64>,
    pub position: Option<i64>,
    pub standings: Option<Vec<u8>>,
    pub seasons: Option<Vec<u8>>,
}

pub(crate) fn invalid(what: String) -> StoreError {
    StoreError::InvalidRow(what)
}

/// Rows converted one by one.
pub(crate) fn convert<R, T: TryFrom<R, Error = StoreError>>(rows: Vec<R>) -> Result<Vec<T>, StoreError> {
    rows.into_iter().map(T::try_from).collect()
}

/// A published season's latest version.
#[derive(FromRow)]
pub(crate) struct PublishedRow {
    pub board: String,
    pub season: String,
    pub version: i32,
    pub definition: String,
}

/// A season's results, with the note of the checkpoint that covers them.
#[derive(FromRow)]
pub(crate) struct ResultsRow {
    board: String,
    season: String,
    version: i32,
    definition: String,
    position: i64,
    tree_size: i64,
    note: String,
    entries: String,
    published_at: OffsetDateTime,
}

impl TryFrom<ResultsRow> for crate::SeasonResults {
    type Error = StoreError;

    fn try_from(row: ResultsRow) -> Result<Self, StoreError> {
        let bad = || invalid(format!("season_results row {:?} {:?} {}", row.board, row.season, row.version));
        Ok(Self {
            board: BoardId::parse(row.board.as_str()).map_err(|_| bad())?,
            season: row.season.parse::<Season>().map_err(|_| bad())?,
            version: u32::try_from(row.version).map_err(|_| bad())?,
            definition: row.definition,
            position: from_db(row.position),
            tree_size: from_db(row.tree_size),
            checkpoint: row.note,
            entries: serde_json::from_str(&row.entries).map_err(|_| bad())?,
            published_at: row.published_at,
        })
    }
}

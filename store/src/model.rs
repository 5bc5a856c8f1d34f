//! What the store's operations take and give: events to append and what became of them,
//! events as stored, checkpoints, and where a read model stands.

use events::boards::{Season, SeasonStanding};
use events::{BoardChange, DecodeError, Event, RecordedEvent, Standing};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;

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
    pub root_hash: tlog::Hash,
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
    /// The exact bytes its leaf in the Merkle tree hashes (see [`tlog::entry`]).
    pub fn entry(&self) -> String {
        tlog::entry(self.position, &self.event_type, self.event_version, &self.payload)
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
    /// What it added to usage analytics on `global`.
    pub usage: UsageFolded,
}

/// What one fold added to usage analytics on `global` ([`events::usage`]), for the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFolded {
    /// Actions and points, by action.
    pub by_action: std::collections::BTreeMap<String, events::usage::Count>,
    /// Players awarded for the first time ever.
    pub new_players: u64,
    /// The distinct players of the newest hour and day the fold counted in, as the read model
    /// holds them after it.
    pub active: Vec<(events::usage::Granularity, u64)>,
}

/// Usage analytics over a window, as the read model holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageStats {
    /// The read model's checkpoint: every event up to it is counted, none after.
    pub position: u64,
    /// The window, in whole buckets.
    pub window: events::usage::Window,
    /// `global`'s series first, then every board's with a tally in the window.
    pub series: Vec<events::usage::Series>,
}

/// Seasons of boards other than `global`, as the read model holds them at its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seasons {
    /// The boards ready to serve (folded up to the checkpoint): id → definition
    /// ([`BoardDef::definition`]). A board being built, or defined otherwise, is not among them.
    pub ready: std::collections::BTreeMap<String, String>,
    /// The seasons asked for, on the boards ready, each with every standing it holds (a season
    /// without any is left out).
    pub seasons: Vec<BoardSeason>,
    /// Where the read model stands.
    pub anchor: Anchor,
}

/// Every standing of one season of one board, as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardSeason {
    /// The board.
    pub board: events::BoardId,
    /// The season.
    pub season: Season,
    /// Its standings, in no particular order.
    pub standings: Vec<Standing>,
}

impl Seasons {
    /// Takes the standings of `season` of `board` (none if it holds none).
    pub fn take(&mut self, board: &str, season: Season) -> Vec<Standing> {
        self.seasons
            .iter_mut()
            .find(|held| held.board.as_str() == board && held.season == season)
            .map(|held| std::mem::take(&mut held.standings))
            .unwrap_or_default()
    }

    /// Every standing, each with its board and season.
    pub fn into_standings(self) -> impl Iterator<Item = SeasonStanding> {
        self.seasons.into_iter().flat_map(|held| {
            let (board, season) = (held.board, held.season);
            held.standings.into_iter().map(move |standing| SeasonStanding { board: board.clone(), season, standing })
        })
    }
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

/// What a rebuild did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rebuilt {
    /// The checkpoint at which the rebuilt read model took over.
    pub position: u64,
    /// The read model's generation from then on.
    pub generation: u64,
}

/// A season's results as published: one version, never changed (see [`events::results`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeasonResults {
    /// The board.
    pub board: events::BoardId,
    /// The season.
    pub season: events::boards::Season,
    /// 1 for the first; each amendment (moderation reaching the season later) is the next.
    pub version: u32,
    /// The board's definition they were folded by (`events::boards::BoardDef::definition`).
    pub definition: String,
    /// The log position the results are the fold of.
    pub position: u64,
    /// The size of the signed checkpoint that covers `position`.
    pub tree_size: u64,
    /// That checkpoint's signed note.
    pub checkpoint: String,
    /// The players on the board, ranked.
    pub entries: Vec<events::results::Placed>,
    /// When the folder published them.
    pub published_at: time::OffsetDateTime,
}

impl SeasonResults {
    /// The results as published, `limit` entries from rank `offset + 1`.
    pub fn published(&self, offset: usize, limit: usize) -> events::results::Published {
        events::results::Published {
            board: self.board.clone(),
            season: self.season.to_string(),
            version: self.version,
            definition: self.definition.clone(),
            final_position: self.position,
            checkpoint: events::results::SignedCheckpoint { tree_size: self.tree_size, note: self.checkpoint.clone() },
            entries: self.entries.iter().skip(offset).take(limit).cloned().collect(),
            total_players: self.entries.len() as u64,
            published_at: self.published_at,
        }
    }
}

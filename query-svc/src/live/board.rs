//! One board held in memory (the current season of one board), and the snapshot of its top
//! that live streams and the reads of the top pages share.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use events::boards::Season;
use events::{Behind, Board, BoardChange};
use serde::Serialize;
use tokio::sync::watch;

/// The most entries one page or stream may show.
pub const MAX_LIMIT: usize = 100;

/// One line of the board as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Entry {
    /// 1-based rank.
    pub rank: u64,
    /// The player.
    pub player_id: String,
    /// Their display name, or `null`.
    pub name: Option<String>,
    /// Their score.
    pub score: u64,
}

impl From<events::Ranked<'_>> for Entry {
    fn from(ranked: events::Ranked<'_>) -> Self {
        Self {
            rank: ranked.rank,
            player_id: ranked.standing.player_id.to_string(),
            name: ranked.standing.name.as_ref().map(ToString::to_string),
            score: ranked.standing.score,
        }
    }
}

/// The body of `GET /v1/leaderboard` and of every stream message; on a named board's routes,
/// with the board and season.
#[derive(Debug, Serialize)]
pub struct LeaderboardView<'a> {
    /// The board, on `/v1/boards/{board}/…`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board: Option<&'a str>,
    /// Its season, on `/v1/boards/{board}/…`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub season: Option<Season>,
    /// The page.
    pub entries: &'a [Entry],
    /// The last log position folded into it.
    pub position: u64,
    /// Players on the whole board.
    pub total_players: u64,
}

/// The top of the board at one position, shared by every live stream and by the reads of the
/// top pages; each shows its first `limit` entries. Encoded bodies are kept per limit, so a
/// thousand clients watching the top 10, or reading it, cost one encoding per change.
#[derive(Debug)]
pub struct Snapshot {
    /// The board's id.
    pub board: Arc<str>,
    /// The season shown.
    pub season: Season,
    /// The last log position folded in.
    pub position: u64,
    /// Players on the whole board.
    pub total_players: u64,
    /// Counts the snapshots this board has published, so a stream can tell how many it skipped.
    pub sequence: u64,
    top: Vec<Entry>,
    encoded: Mutex<HashMap<(usize, bool), Body>>,
}

impl Snapshot {
    fn of(id: Arc<str>, season: Season, board: &Board, sequence: u64) -> Self {
        Self {
            board: id,
            season,
            position: board.position(),
            total_players: board.len() as u64,
            sequence,
            top: board.page(0, MAX_LIMIT).into_iter().map(Entry::from).collect(),
            encoded: Mutex::default(),
        }
    }

    /// The first `limit` entries.
    pub fn entries(&self, limit: usize) -> &[Entry] {
        &self.top[..limit.min(self.top.len())]
    }

    /// The JSON body for a client showing `limit` entries (at most [`MAX_LIMIT`]); `labelled`:
    /// with the board and season. Byte for byte the body of `GET /v1/leaderboard?limit=…`
    /// (`labelled`: of `GET /v1/boards/{board}/leaderboard`) at this position.
    pub fn body(&self, limit: usize, labelled: bool) -> Body {
        let mut cache = self.encoded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry((limit, labelled))
            .or_insert_with(|| {
                let view = LeaderboardView {
                    board: labelled.then_some(&*self.board),
                    season: labelled.then_some(self.season),
                    entries: self.entries(limit),
                    position: self.position,
                    total_players: self.total_players,
                };
                Body(serde_json::to_string(&view).expect("views always serialise").into())
            })
            .clone()
    }
}

/// An encoded body: JSON text, shared. Streams write it as text and reads answer with it as
/// bytes, both from the one allocation, without copying it or checking it again.
#[derive(Debug, Clone)]
pub struct Body(Arc<str>);

impl Body {
    /// The text.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The same text as the bytes of a response body.
    pub fn bytes(&self) -> Bytes {
        Bytes::from_owner(self.clone())
    }
}

impl AsRef<[u8]> for Body {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// A board's season held in memory: which season, and its standings.
struct Held {
    season: Season,
    board: Board,
}

/// The in-memory board (the current season of one board) and the channel that tells live
/// streams about each new snapshot.
pub struct LiveBoard {
    id: Arc<str>,
    held: RwLock<Held>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    loaded: watch::Sender<bool>,
}

impl Default for LiveBoard {
    fn default() -> Self {
        Self::new(events::boards::GLOBAL, Season::AllTime)
    }
}

impl LiveBoard {
    /// Board `id`, not loaded yet, showing an empty `season`.
    pub fn new(id: &str, season: Season) -> Self {
        let id: Arc<str> = id.into();
        Self {
            held: RwLock::new(Held { season, board: Board::new() }),
            snapshots: watch::Sender::new(Arc::new(Snapshot::of(id.clone(), season, &Board::new(), 0))),
            loaded: watch::Sender::new(false),
            id,
        }
    }

    /// Reads the board.
    pub fn read<R>(&self, f: impl FnOnce(&Board) -> R) -> R {
        f(&self.held.read().unwrap_or_else(std::sync::PoisonError::into_inner).board)
    }

    /// The season held.
    pub fn season(&self) -> Season {
        self.held.read().unwrap_or_else(std::sync::PoisonError::into_inner).season
    }

    /// The board's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// A receiver that sees every new snapshot (only the newest, if several came in between).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.subscribe()
    }

    /// `true` once the board was loaded from the read model.
    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    /// The last log position folded into the board.
    pub fn position(&self) -> u64 {
        self.read(Board::position)
    }

    /// Replaces the board with one loaded from the read model. It may be older than the board
    /// it replaces (the read model was restored to an earlier point): the board follows the
    /// database, and live streams wait until it passes what they already showed.
    pub fn replace(&self, loaded: Board) {
        let season = self.season();
        self.replace_season(season, loaded);
    }

    /// Holds `season` from now on, with the board `loaded` from the read model.
    pub fn replace_season(&self, season: Season, loaded: Board) {
        let mut held = self.held.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        *held = Held { season, board: loaded };
        self.publish(&held);
        self.loaded.send_replace(true);
    }

    /// Marks the board as not served (its read model is being built).
    pub fn unload(&self) {
        self.loaded.send_replace(false);
    }

    /// Applies a change; `Err` when the board missed the changes before it.
    pub fn apply(&self, change: &BoardChange) -> Result<(), Behind> {
        let mut held = self.held.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.board.apply_change(change)? {
            self.publish(&held);
        }
        Ok(())
    }

    /// Publishes a snapshot of `held` (called with the board's write lock held, so snapshots are
    /// numbered in order).
    fn publish(&self, held: &Held) {
        let sequence = self.snapshots.borrow().sequence + 1;
        self.snapshots.send_replace(Arc::new(Snapshot::of(self.id.clone(), held.season, &held.board, sequence)));
    }

    /// Waits up to `timeout` for the board to fold position `position`; `false` if it did not.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let mut snapshots = self.subscribe();
        let reached = snapshots.wait_for(|snapshot| snapshot.position >= position);
        matches!(tokio::time::timeout(timeout, reached).await, Ok(Ok(_)))
    }
}

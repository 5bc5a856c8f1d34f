//! The board a query service serves: held in memory, kept current from the projector's
//! change announcements, reloaded from PostgreSQL at start and whenever a change was missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use events::{Behind, Board, BoardChange};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use platform::backoff::Backoff;
use serde::Serialize;
use store::LeaderboardStore;
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::BroadcastStream;
use tokio_util::sync::CancellationToken;

/// The most entries one page or stream may show.
pub const MAX_LIMIT: usize = 100;

/// One line of the board as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// The body of `GET /v1/leaderboard` and of every stream message.
#[derive(Debug, Serialize)]
pub struct LeaderboardView<'a> {
    /// The page.
    pub entries: &'a [Entry],
    /// The last log position folded into it.
    pub position: u64,
    /// Players on the whole board.
    pub total_players: u64,
}

/// The top of the board at one position, shared by every live stream; each stream shows its
/// first `limit` entries. Encoded bodies are cached per limit, so a thousand clients watching
/// the top 10 cost one encoding per change.
#[derive(Debug)]
pub struct Snapshot {
    /// The last log position folded in.
    pub position: u64,
    /// Players on the whole board.
    pub total_players: u64,
    top: Vec<Entry>,
    encoded: Mutex<HashMap<usize, Arc<str>>>,
}

impl Snapshot {
    fn of(board: &Board) -> Self {
        Self {
            position: board.position(),
            total_players: board.len() as u64,
            top: board.page(0, MAX_LIMIT).into_iter().map(Entry::from).collect(),
            encoded: Mutex::default(),
        }
    }

    /// The first `limit` entries.
    pub fn entries(&self, limit: usize) -> &[Entry] {
        &self.top[..limit.min(self.top.len())]
    }

    /// The JSON body for a client showing `limit` entries.
    pub fn body(&self, limit: usize) -> Arc<str> {
        let mut cache = self.encoded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .entry(limit)
            .or_insert_with(|| {
                let view = LeaderboardView {
                    entries: self.entries(limit),
                    position: self.position,
                    total_players: self.total_players,
                };
                serde_json::to_string(&view).expect("views always serialise").into()
            })
            .clone()
    }
}

/// The in-memory board and the channel that tells live streams about each new snapshot.
pub struct LiveBoard {
    board: RwLock<Board>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    loaded: watch::Sender<bool>,
}

impl Default for LiveBoard {
    fn default() -> Self {
        Self {
            board: RwLock::new(Board::new()),
            snapshots: watch::Sender::new(Arc::new(Snapshot::of(&Board::new()))),
            loaded: watch::Sender::new(false),
        }
    }
}

impl LiveBoard {
    /// Reads the board.
    pub fn read<R>(&self, f: impl FnOnce(&Board) -> R) -> R {
        f(&self.board.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// A receiver that sees every new snapshot (only the newest, if several came in between).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.subscribe()
    }

    /// `true` once the board was loaded from the read model.
    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    /// Replaces the board with one loaded from the read model; never moves backwards.
    pub fn replace(&self, loaded: Board) {
        let mut board = self.board.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if loaded.position() >= board.position() {
            *board = loaded;
            self.snapshots.send_replace(Arc::new(Snapshot::of(&board)));
        }
        self.loaded.send_replace(true);
    }

    /// Applies a change; `Err` when the board missed the changes before it.
    pub fn apply(&self, change: &BoardChange) -> Result<(), Behind> {
        let mut board = self.board.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if board.apply_change(change)? {
            self.snapshots.send_replace(Arc::new(Snapshot::of(&board)));
        }
        Ok(())
    }

    /// Waits up to `timeout` for the board to fold position `position`; `false` if it did not.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let mut snapshots = self.subscribe();
        let reached = snapshots.wait_for(|snapshot| snapshot.position >= position);
        matches!(tokio::time::timeout(timeout, reached).await, Ok(Ok(_)))
    }
}

/// Where a query side hears of the projector's changes.
#[derive(Debug)]
pub enum ChangeFeed {
    /// A core NATS subject (between processes).
    Nats {
        /// The client.
        client: async_nats::Client,
        /// The subject.
        subject: String,
    },
    /// A broadcast channel in the same process.
    InProcess(broadcast::Receiver<BoardChange>),
}

/// What a query side hears: a change, or the news that it missed some.
enum Heard {
    Change(BoardChange),
    Missed,
}

impl ChangeFeed {
    /// Starts listening; `None` if `shutdown` fired first.
    async fn listen(self, shutdown: &CancellationToken) -> Option<BoxStream<'static, Heard>> {
        match self {
            Self::InProcess(receiver) => {
                Some(BroadcastStream::new(receiver).map(|heard| heard.map_or(Heard::Missed, Heard::Change)).boxed())
            }
            Self::Nats { client, subject } => loop {
                match client.subscribe(subject.clone()).await {
                    Ok(subscription) => {
                        break Some(
                            subscription
                                .filter_map(|message| async move {
                                    match serde_json::from_slice(&message.payload) {
                                        Ok(change) => Some(Heard::Change(change)),
                                        Err(error) => {
                                            tracing::warn!(error.message = %error, "ignoring a malformed board change");
                                            None
                                        }
                                    }
                                })
                                .boxed(),
                        );
                    }
                    Err(error) => {
                        tracing::warn!(error.message = %error, "cannot subscribe to board changes; retrying");
                        tokio::select! {
                            () = shutdown.cancelled() => break None,
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                }
            },
        }
    }
}

/// Keeps `live` current until `shutdown`: loads the board, then applies each change heard on
/// `feed`, and reloads whenever a change shows that one was missed.
pub async fn keep_current<R: LeaderboardStore>(
    live: Arc<LiveBoard>,
    read_model: R,
    feed: ChangeFeed,
    shutdown: CancellationToken,
) {
    // Listen before loading, so that no change between the load and the first message is lost.
    let Some(mut changes) = feed.listen(&shutdown).await else { return };
    'reload: loop {
        let mut backoff = Backoff::default();
        loop {
            match read_model.load().await {
                Ok(board) => {
                    tracing::info!(position = board.position(), players = board.len(), "board loaded");
                    metrics::counter!("query_board_loads_total").increment(1);
                    live.replace(board);
                    break;
                }
                Err(error) => {
                    tracing::warn!(error.message = %error, retry_in = ?backoff.delay(), "cannot load the board");
                }
            }
            if !backoff.wait(&shutdown).await {
                return;
            }
        }
        loop {
            let heard = tokio::select! {
                () = shutdown.cancelled() => return,
                heard = changes.next() => heard,
            };
            match heard {
                None => {
                    tracing::warn!("the board change feed ended");
                    return;
                }
                Some(Heard::Missed) => {
                    tracing::info!("missed board changes; reloading");
                    continue 'reload;
                }
                Some(Heard::Change(change)) => {
                    if let Err(behind) = live.apply(&change) {
                        tracing::info!(%behind, "missed a board change; reloading");
                        continue 'reload;
                    }
                    metrics::gauge!("query_board_position").set(change.to as f64);
                }
            }
        }
    }
}

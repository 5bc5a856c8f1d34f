//! The board a query service serves: held in memory, loaded from the read model at start and
//! kept current by reading from the read model what changed after the position it holds.
//!
//! The projector's announcements (a new checkpoint on a NATS subject) only say when to look:
//! the standings themselves always come from PostgreSQL, so a message anyone can publish on
//! NATS can make a replica read, never make it believe. A replica also looks every
//! [`POLL`] by itself, which repairs a lost announcement. It keeps the [`Anchor`] of its board
//! (the position and the event there), so it notices a read model restored to an earlier
//! point — whether its checkpoint is behind the board or has grown past it with other events —
//! and then reloads the board, which moves back with the database.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use events::boards::Season;
use events::{Behind, Board, BoardChange};
use futures::stream::BoxStream;
use futures::{FutureExt as _, StreamExt as _};
use platform::backoff::Backoff;
use serde::Serialize;
use store::{Anchor, Changes, LeaderboardStore};
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::BroadcastStream;
use tokio_util::sync::CancellationToken;

use crate::boards::LiveBoards;

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

/// The top of the board at one position, shared by every live stream; each stream shows its
/// first `limit` entries. Encoded bodies are cached per limit, so a thousand clients watching
/// the top 10 cost one encoding per change.
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
    encoded: Mutex<HashMap<(usize, bool), Arc<str>>>,
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

    /// The JSON body for a client showing `limit` entries; `labelled`: with the board and season.
    pub fn body(&self, limit: usize, labelled: bool) -> Arc<str> {
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
                serde_json::to_string(&view).expect("views always serialise").into()
            })
            .clone()
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

/// How often a query side looks at the read model when no announcement came.
pub const POLL: Duration = Duration::from_secs(2);

/// Where a query side hears that the read model moved.
#[derive(Debug)]
pub enum ChangeFeed {
    /// A core NATS subject (between processes): the decimal checkpoint.
    Nats {
        /// The client.
        client: async_nats::Client,
        /// The subject.
        subject: String,
    },
    /// A broadcast channel in the same process.
    InProcess(broadcast::Receiver<u64>),
}

impl ChangeFeed {
    /// Starts listening; `None` if `shutdown` fired first. Each item is the position an
    /// announcement claims, or `None` for "look anyway" (announcements were missed).
    async fn listen(self, shutdown: &CancellationToken) -> Option<BoxStream<'static, Option<u64>>> {
        match self {
            Self::InProcess(receiver) => Some(BroadcastStream::new(receiver).map(Result::ok).boxed()),
            Self::Nats { client, subject } => loop {
                match client.subscribe(subject.clone()).await {
                    Ok(subscription) => {
                        break Some(
                            subscription
                                .filter_map(|message| async move {
                                    let claimed = std::str::from_utf8(&message.payload).ok()?.parse().ok();
                                    if claimed.is_none() {
                                        metrics::counter!("query_announcements_ignored_total").increment(1);
                                    }
                                    claimed.map(Some)
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

/// How often a query side looks at its clock for a new season.
pub const CLOCK_TICK: Duration = Duration::from_secs(1);

/// Keeps `boards` current until `shutdown`: loads them, then, whenever `feed` announces a
/// position beyond the board's (and every [`POLL`]), reads what changed from `read_model`; and
/// starts each board's new season when the clock reaches it.
pub async fn keep_current<R: LeaderboardStore>(
    boards: Arc<LiveBoards>,
    read_model: R,
    feed: ChangeFeed,
    shutdown: CancellationToken,
) {
    let live = boards.global().clone();
    // Listen before loading, so that no change between the load and the first message is lost.
    let Some(mut announcements) = feed.listen(&shutdown).await else { return };
    // Where the board stands in the log's history; the event there is learnt on the first read.
    let Some(mut anchor) = load(&boards, &read_model, &shutdown).await else { return };
    let mut poll = tokio::time::interval(POLL);
    let mut clock = tokio::time::interval(CLOCK_TICK);
    loop {
        let mut claimed = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = clock.tick() => {
                if boards.roll_over(&read_model).await.is_err() {
                    let Some(loaded) = load(&boards, &read_model, &shutdown).await else { return };
                    anchor = loaded;
                }
                continue;
            }
            _ = poll.tick() => None,
            heard = announcements.next() => match heard {
                Some(claimed) => claimed,
                None => {
                    tracing::warn!("the board change feed ended");
                    return;
                }
            },
        };
        // Announcements that came meanwhile are answered by the same read.
        while let Some(Some(more)) = announcements.next().now_or_never() {
            claimed = claimed.zip(more).map(|(a, b)| a.max(b));
        }
        if claimed.is_some_and(|claimed| claimed <= live.position()) {
            continue;
        }
        match read_model.changes_since(anchor).await {
            Ok(Some(Changes { change, seasons, anchor: reached })) => {
                if claimed.is_some_and(|claimed| claimed > change.to) {
                    metrics::counter!("query_announcements_unconfirmed_total").increment(1);
                    tracing::debug!(
                        ?claimed,
                        checkpoint = change.to,
                        "an announcement claimed more than the read model holds"
                    );
                }
                anchor = reached;
                let applied = match live.apply(&change) {
                    Ok(()) => boards.apply(&change, &seasons, &read_model).await,
                    Err(behind) => Err(behind.into()),
                };
                if let Err(stale) = applied {
                    tracing::info!(reason = %stale, "the boards moved while reading; reloading");
                    let Some(loaded) = load(&boards, &read_model, &shutdown).await else { return };
                    anchor = loaded;
                }
                metrics::gauge!("query_board_position").set(live.position() as f64);
            }
            Ok(None) => {
                tracing::warn!(
                    board = live.position(),
                    "the read model does not continue the board (restored?); reloading"
                );
                let Some(loaded) = load(&boards, &read_model, &shutdown).await else { return };
                anchor = loaded;
            }
            Err(error) => tracing::warn!(error.message = %error, "cannot read board changes; retrying"),
        }
    }
}

/// Loads every board whole (`global`, then the current seasons of the others), retrying until
/// it succeeds; returns where `global` stands, or `None` if `shutdown` fired first.
async fn load<R: LeaderboardStore>(
    boards: &LiveBoards,
    read_model: &R,
    shutdown: &CancellationToken,
) -> Option<Anchor> {
    let mut backoff = Backoff::default();
    loop {
        match read_model.load().await {
            Ok((board, anchor)) => match boards.load_named(read_model, &board).await {
                Ok(()) => {
                    tracing::info!(position = board.position(), players = board.len(), "board loaded");
                    metrics::counter!("query_board_loads_total").increment(1);
                    metrics::gauge!("query_board_position").set(board.position() as f64);
                    boards.global().replace(board);
                    return Some(anchor);
                }
                Err(error) => {
                    tracing::warn!(error.message = %error, retry_in = ?backoff.delay(), "cannot load the boards")
                }
            },
            Err(error) => tracing::warn!(error.message = %error, retry_in = ?backoff.delay(), "cannot load the board"),
        }
        if !backoff.wait(shutdown).await {
            return None;
        }
    }
}

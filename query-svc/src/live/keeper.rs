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

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt as _, StreamExt as _};
use platform::backoff::Backoff;
use store::{Anchor, Changes, LeaderboardStore};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_util::sync::CancellationToken;

use crate::kept::Kept;
use crate::live::boards::LiveBoards;

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
    kept: Kept,
    shutdown: CancellationToken,
) {
    let live = boards.global().clone();
    // Listen before loading, so that no change between the load and the first message is lost.
    let Some(mut announcements) = feed.listen(&shutdown).await else { return };
    // Where the board stands in the log's history; the event there is learnt on the first read.
    let Some(mut anchor) = load(&boards, &read_model, &kept, &shutdown).await else { return };
    let mut poll = tokio::time::interval(POLL);
    let mut clock = tokio::time::interval(CLOCK_TICK);
    loop {
        let mut claimed = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = clock.tick() => {
                if boards.roll_over(&read_model).await.is_err() {
                    let Some(loaded) = load(&boards, &read_model, &kept, &shutdown).await else { return };
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
                // Every fold changes the live seasons; what is kept is the others'.
                kept.changed(boards.not_live(&seasons));
                let applied = match live.apply(&change) {
                    Ok(()) => boards.apply(&change, &seasons, &read_model).await,
                    Err(behind) => Err(behind.into()),
                };
                if let Err(stale) = applied {
                    tracing::info!(reason = %stale, "the boards moved while reading; reloading");
                    let Some(loaded) = load(&boards, &read_model, &kept, &shutdown).await else { return };
                    anchor = loaded;
                }
                metrics::gauge!("query_board_position").set(live.position() as f64);
            }
            Ok(None) => {
                tracing::warn!(
                    board = live.position(),
                    "the read model does not continue the board (restored?); reloading"
                );
                let Some(loaded) = load(&boards, &read_model, &kept, &shutdown).await else { return };
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
    kept: &Kept,
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
                    kept.forget_all();
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

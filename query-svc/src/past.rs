//! The board at a past position: the read model's latest snapshot of the fold before it, with
//! the log's events after the snapshot folded on top (at most one snapshot interval of them).

use events::leaderboard::PastBoard;
use store::{EventStore, LeaderboardStore, Snapshot, StoreError};

/// Events read from the log per query while folding a tail.
const PAGE: u64 = 1000;

/// The board exactly as it stood after position `position` (or the log's head, if it is shorter).
pub async fn board_at<S: EventStore, R: LeaderboardStore>(
    log: &S,
    read_model: &R,
    position: u64,
) -> Result<PastBoard, StoreError> {
    let snapshot =
        read_model.snapshot_before(position).await?.unwrap_or(Snapshot { position: 0, standings: Vec::new() });
    let mut tail = Vec::new();
    let mut after = snapshot.position;
    while after < position {
        let page = log.read_after(after, (position - after).min(PAGE) as u32).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for stored in &page {
            tail.push(stored.decoded()?);
        }
    }
    Ok(PastBoard::new(snapshot.position, snapshot.standings, &tail))
}

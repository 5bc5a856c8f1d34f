//! The board at a past position: the read model's latest snapshot of the fold before it, the
//! standings each fold after the snapshot changed (one compact row per fold transaction), and
//! the log's events after the last of those (at most one fold batch of them).

use events::leaderboard::PastBoard;
use store::{EventStore, LeaderboardStore, Snapshot, StoreError};

/// The board exactly as it stood after position `position` (or the log's head, if it is shorter).
pub async fn board_at<S: EventStore, R: LeaderboardStore>(
    log: &S,
    read_model: &R,
    position: u64,
) -> Result<PastBoard, StoreError> {
    let snapshot =
        read_model.snapshot_before(position).await?.unwrap_or(Snapshot { position: 0, standings: Vec::new() });
    // The changes are used while they follow one another from the snapshot on (a read model
    // older than them has none for its first folds: the log covers the rest).
    let mut through = snapshot.position;
    let mut changed = Vec::new();
    for change in read_model.changed_between(snapshot.position, position).await? {
        if change.from != through {
            break;
        }
        through = change.position;
        changed.extend(change.standings);
    }
    let mut tail = Vec::new();
    loop {
        let after = through + tail.len() as u64;
        if after >= position {
            break;
        }
        let page = log.read_after(after, (position - after).min(10_000) as u32).await?;
        if page.is_empty() {
            break;
        }
        for stored in &page {
            tail.push(stored.decoded()?);
        }
    }
    Ok(PastBoard::new(snapshot.position, snapshot.standings, through, changed, &tail))
}

//! Checking the read model against the log: replay the log up to the read model's checkpoint
//! and compare, player by player.

use std::collections::BTreeSet;

use events::{Board, Standing};
use store::{EventStore, LeaderboardStore, StoreError};

/// Events read from the log per query while replaying.
const PAGE: u32 = 5000;

/// One player on whom the read model and the log disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The player.
    pub player_id: String,
    /// What the read model holds.
    pub read_model: Option<Standing>,
    /// What the log folds to.
    pub log: Option<Standing>,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The checkpoint compared at.
    pub position: u64,
    /// Players on the board.
    pub players: usize,
    /// Every disagreement.
    pub differences: Vec<Difference>,
}

/// Replays the log into a board, up to and including `position`.
pub async fn replay<S: EventStore>(log: &S, position: u64) -> Result<Board, StoreError> {
    let mut board = Board::new();
    while board.position() < position {
        let page = log.read_after(board.position(), PAGE).await?;
        if page.is_empty() {
            break;
        }
        for stored in page.iter().take_while(|e| e.position <= position) {
            let recorded =
                stored.decode().map_err(|source| StoreError::Corrupt { position: stored.position, source })?;
            board.apply(&recorded);
        }
        if page.last().is_some_and(|e| e.position >= position) {
            break;
        }
    }
    Ok(board)
}

/// Compares the read model with the fold of the log up to the read model's checkpoint.
pub async fn verify<S: EventStore, R: LeaderboardStore>(log: &S, read_model: &R) -> Result<Report, StoreError> {
    let (projected, _) = read_model.load().await?;
    let replayed = replay(log, projected.position()).await?;
    // Banned players included: the read model must hold their scores for when they are unbanned.
    let players: BTreeSet<String> =
        projected.standings().chain(replayed.standings()).map(|s| s.player_id.to_string()).collect();
    let differences = players
        .into_iter()
        .filter_map(|player| {
            let (read_model, log) = (projected.standing_of(&player).cloned(), replayed.standing_of(&player).cloned());
            (read_model != log).then_some(Difference { player_id: player, read_model, log })
        })
        .collect();
    Ok(Report { position: projected.position(), players: projected.len(), differences })
}

/// `verify` against the PostgreSQL database of `database`, printed: every difference, then a
/// summary. `true` when the read model is the fold of the log.
pub async fn verify_and_print(database: &platform::config::DatabaseConfig) -> anyhow::Result<bool> {
    let pool = database.pool.connect_lazy(&database.database_url)?;
    let report = verify(&store::PgEventLog::new(pool.clone()), &store::PgLeaderboard::new(pool)).await?;
    for difference in &report.differences {
        println!("{}: read model {:?}, log {:?}", difference.player_id, difference.read_model, difference.log);
    }
    println!(
        "checked {} players at position {}: {} difference(s)",
        report.players,
        report.position,
        report.differences.len()
    );
    Ok(report.differences.is_empty())
}

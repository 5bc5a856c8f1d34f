//! Checking the read model against the log: replay the log up to the read model's checkpoint
//! and compare, player by player.

use std::collections::{BTreeMap, BTreeSet};

use events::boards::{BoardDef, Boards, Place, Season};
use events::{Board, RecordedEvent, Standing};
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

/// One standing on which a board's read model and the log disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeasonDifference {
    /// The board, season and player.
    pub place: Place,
    /// What the read model holds.
    pub read_model: Option<Standing>,
    /// What the log folds to.
    pub log: Option<Standing>,
}

/// The outcome of [`verify_boards`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardsReport {
    /// The checkpoint compared at.
    pub position: u64,
    /// Standings compared, over every board and season.
    pub standings: usize,
    /// Boards defined but not ready in the read model (being built, or defined otherwise).
    pub not_ready: Vec<String>,
    /// Every disagreement.
    pub differences: Vec<SeasonDifference>,
}

/// Compares every season of the boards other than `global` the read model holds ready with
/// the fold of the log (`events::boards`) up to the read model's checkpoint.
pub async fn verify_boards<S: EventStore, R: LeaderboardStore>(
    log: &S,
    read_model: &R,
    boards: &Boards,
) -> Result<BoardsReport, StoreError> {
    loop {
        let ready = read_model.load_seasons(&[]).await?;
        let (ready_boards, not_ready): (Vec<BoardDef>, Vec<BoardDef>) =
            boards.named().iter().cloned().partition(|def| ready.ready.get(def.id.as_str()) == Some(&def.definition()));
        let events = read_log(log, ready.anchor.position).await?;
        let awards = events::boards::awards_of(&events);
        let folded: BTreeMap<Place, Standing> = events::boards::fold_seasons(&ready_boards, [], &awards, &[], &events)
            .into_iter()
            .map(|s| (s.place(), s.standing))
            .collect();
        let wanted: BTreeSet<(String, Season)> = folded.keys().map(|p| (p.board.to_string(), p.season)).collect();
        let loaded = read_model.load_seasons(&wanted.into_iter().collect::<Vec<_>>()).await?;
        if loaded.anchor.position != ready.anchor.position {
            continue; // The fold moved meanwhile: compare again at one position.
        }
        let projected: BTreeMap<Place, Standing> =
            loaded.standings.into_iter().map(|s| (s.place(), s.standing)).collect();
        let places: BTreeSet<&Place> = folded.keys().chain(projected.keys()).collect();
        let differences = places
            .into_iter()
            .filter(|place| folded.get(*place) != projected.get(*place))
            .map(|place| SeasonDifference {
                place: place.clone(),
                read_model: projected.get(place).cloned(),
                log: folded.get(place).cloned(),
            })
            .collect();
        return Ok(BoardsReport {
            position: loaded.anchor.position,
            standings: projected.len(),
            not_ready: not_ready.into_iter().map(|def| def.id.to_string()).collect(),
            differences,
        });
    }
}

/// The log's events up to and including `position`, decoded.
async fn read_log<S: EventStore>(log: &S, position: u64) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events: Vec<RecordedEvent> = Vec::new();
    loop {
        let after = events.last().map_or(0, |e| e.position);
        if after >= position {
            return Ok(events);
        }
        let page = log.read_after(after, PAGE).await?;
        if page.is_empty() {
            return Ok(events);
        }
        for stored in page.iter().take_while(|e| e.position <= position) {
            events.push(stored.decoded()?);
        }
    }
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

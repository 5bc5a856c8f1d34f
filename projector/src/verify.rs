//! Checking the read model against the log: replay the log up to the read model's checkpoint
//! and compare, player by player (and usage analytics, bucket by bucket).

use std::collections::{BTreeMap, BTreeSet};

use events::boards::{BoardDef, BoardDefs, Place, Season};
use events::usage::{Bucket, Granularity, Tally, Usage, Window};
use events::{Board, Event, RecordedEvent, Standing};
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

/// The outcome of [`verify_read_model`].
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
pub async fn verify_read_model<S: EventStore, R: LeaderboardStore>(
    log: &S,
    read_model: &R,
) -> Result<Report, StoreError> {
    let (projected, _) = read_model.load().await?;
    let replayed = replay(log, projected.position()).await?;
    // Banned players included: the read model must hold their scores for when they are unbanned.
    let players: BTreeSet<String> =
        projected.standings().chain(replayed.standings()).map(|s| s.player_id.to_string()).collect();
    let differences = players
        .into_iter()
        .filter_map(|player| {
            let (read_model, log) =
                (projected.held_standing(&player).cloned(), replayed.held_standing(&player).cloned());
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
    boards: &BoardDefs,
) -> Result<BoardsReport, StoreError> {
    loop {
        let ready = read_model.load_seasons(&[], None).await?;
        let (ready_boards, not_ready): (Vec<BoardDef>, Vec<BoardDef>) =
            boards.named().iter().cloned().partition(|def| ready.ready.get(def.id.as_str()) == Some(&def.definition()));
        let events = read_log(log, ready.anchor.position).await?;
        let awards = events::boards::awards_of(&events);
        let folded: BTreeMap<Place, Standing> = events::boards::fold_seasons(&ready_boards, [], &awards, &[], &events)
            .into_iter()
            .map(|s| (s.place(), s.standing))
            .collect();
        let wanted: BTreeSet<(String, Season)> = folded.keys().map(|p| (p.board.to_string(), p.season)).collect();
        let loaded = read_model.load_seasons(&wanted.into_iter().collect::<Vec<_>>(), None).await?;
        if loaded.anchor.position != ready.anchor.position {
            continue; // The fold moved meanwhile: compare again at one position.
        }
        let position = loaded.anchor.position;
        let projected: BTreeMap<Place, Standing> = loaded.into_standings().map(|s| (s.place(), s.standing)).collect();
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
            position,
            standings: projected.len(),
            not_ready: not_ready.into_iter().map(|def| def.id.to_string()).collect(),
            differences,
        });
    }
}

/// One bucket on which the read model's usage analytics and the count of the log disagree.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageDifference {
    /// The board and bucket.
    pub bucket: Bucket,
    /// What the read model holds.
    pub read_model: Option<Tally>,
    /// What counting the log gives.
    pub log: Option<Tally>,
}

/// The outcome of [`verify_usage`].
#[derive(Debug, Clone, PartialEq)]
pub struct UsageReport {
    /// The checkpoint compared at.
    pub position: u64,
    /// Buckets compared (hours and days, every board ready).
    pub buckets: usize,
    /// Every disagreement.
    pub differences: Vec<UsageDifference>,
}

/// Counts the log's usage ([`events::usage`]) up to the read model's checkpoint and compares
/// it, hour by hour and day by day, with what the read model holds, on `global` and on each
/// board of `boards` that is ready: actions, points, new players and the sketch of the distinct
/// players (merged in any order, the same) must be equal.
pub async fn verify_usage<S: EventStore, R: LeaderboardStore>(
    log: &S,
    read_model: &R,
    boards: &BoardDefs,
) -> Result<UsageReport, StoreError> {
    let ready = read_model.load_seasons(&[], None).await?.ready;
    let global = BoardDef::global();
    let counted: Vec<&BoardDef> = std::iter::once(&global)
        .chain(boards.named().iter().filter(|def| ready.get(def.id.as_str()) == Some(&def.definition())))
        .collect();
    let position = read_model.checkpoint().await?;
    let mut events = read_log(log, position).await?;
    let awarded = || {
        events
            .iter()
            .filter(|e| matches!(e.event, Event::ScoreAwarded(_)))
            .map(|e| e.event.recorded_at().unix_timestamp())
    };
    let (Some(first), Some(last)) = (awarded().min(), awarded().max()) else {
        return Ok(UsageReport { position, buckets: 0, differences: Vec::new() });
    };
    // Each window as the read model holds it, at the position it was read at (the fold may move
    // meanwhile)…
    let mut held = Vec::new();
    for granularity in Granularity::ALL {
        let step = granularity.seconds();
        let (mut from, end) = (first - first.rem_euclid(step), last - last.rem_euclid(step) + step);
        while from < end {
            let window = Window { granularity, from, to: end.min(from + step * granularity.max_buckets()) };
            held.push((window, log.usage(&window).await?));
            from = window.to;
        }
    }
    // …and the log counted up to that same position.
    let newest = held.iter().map(|(_, stats)| stats.position).max().unwrap_or(position);
    extend_log(log, &mut events, newest).await?;
    let mut report = UsageReport { position: newest, buckets: 0, differences: Vec::new() };
    let mut counts: BTreeMap<u64, Usage> = BTreeMap::new();
    for (window, stats) in &held {
        let expected = counts.entry(stats.position).or_insert_with(|| {
            let through = events.partition_point(|e| e.position <= stats.position);
            Usage::of(&events[..through], counted.iter().copied(), |_| false)
        });
        let series = stats.series.iter().filter(|s| counted.iter().any(|def| def.id == s.board));
        compare(&mut report, series, &events::usage::series(window, &expected.tallies), window.granularity);
    }
    Ok(report)
}

/// Adds to `report` the buckets where `held` and `wanted` disagree.
fn compare<'a>(
    report: &mut UsageReport,
    held: impl Iterator<Item = &'a events::usage::Series>,
    wanted: &'a [events::usage::Series],
    granularity: Granularity,
) {
    let buckets = |series: &'a events::usage::Series| {
        series.buckets.iter().map(move |(start, tally)| {
            (Bucket { board: series.board.clone(), granularity, start: *start }, tally.clone())
        })
    };
    let held: BTreeMap<Bucket, Tally> = held.flat_map(buckets).collect();
    let wanted: BTreeMap<Bucket, Tally> = wanted.iter().flat_map(buckets).collect();
    let keys: BTreeSet<&Bucket> = held.keys().chain(wanted.keys()).collect();
    report.buckets += keys.len();
    for bucket in keys {
        let (read_model, log) = (held.get(bucket), wanted.get(bucket));
        let agree = match (read_model, log) {
            (Some(a), Some(b)) => a == b,
            (Some(t), None) | (None, Some(t)) => t == &Tally::default(),
            (None, None) => true,
        };
        if !agree {
            report.differences.push(UsageDifference {
                bucket: bucket.clone(),
                read_model: read_model.cloned(),
                log: log.cloned(),
            });
        }
    }
}

/// The log's events up to and including `position`, decoded.
async fn read_log<S: EventStore>(log: &S, position: u64) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events = Vec::new();
    extend_log(log, &mut events, position).await?;
    Ok(events)
}

/// `events` (the log's first, in order) with the log's next up to and including `position`.
async fn extend_log<S: EventStore>(log: &S, events: &mut Vec<RecordedEvent>, position: u64) -> Result<(), StoreError> {
    loop {
        let after = events.last().map_or(0, |e| e.position);
        if after >= position {
            return Ok(());
        }
        let page = log.read_after(after, PAGE).await?;
        if page.is_empty() {
            return Ok(());
        }
        for stored in page.iter().take_while(|e| e.position <= position) {
            events.push(stored.decoded()?);
        }
    }
}

/// [`verify_read_model`] against the PostgreSQL database of `database`, printed: every difference, then a
/// summary. `true` when the read model is the fold of the log.
pub async fn verify_read_model_and_print(database: &platform::config::DatabaseConfig) -> anyhow::Result<bool> {
    let pool = database.pool.connect_lazy(&database.database_url)?;
    let (log, read_model) = (store::PgEventLog::new(pool.clone()), store::PgLeaderboard::new(pool));
    let report = verify_read_model(&log, &read_model).await?;
    for difference in &report.differences {
        println!("{}: read model {:?}, log {:?}", difference.player_id, difference.read_model, difference.log);
    }
    println!(
        "checked {} players at position {}: {} difference(s)",
        report.players,
        report.position,
        report.differences.len()
    );
    let usage = verify_usage(&log, &read_model, &BoardDefs::default()).await?;
    for difference in &usage.differences {
        println!("usage {:?}: read model {:?}, log {:?}", difference.bucket, difference.read_model, difference.log);
    }
    println!(
        "checked usage of {} hours and days of global at position {}: {} difference(s)",
        usage.buckets,
        usage.position,
        usage.differences.len()
    );
    Ok(report.differences.is_empty() && usage.differences.is_empty())
}

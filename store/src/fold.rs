//! Folding the log into the read model, once and in memory.
//!
//! The folder (one projector at a time, or the all-in-one) keeps the fold in memory — every
//! board's standings in its newest season ([`events::fold::Fold`]) and the anomaly detector —
//! loaded once from the read model. Each batch is one transaction that locks the checkpoint,
//! reads the log's events (checking a transport's claims against them), folds them in memory
//! and writes what they changed in bulk: the standings, one change row, the checkpoint, the
//! boards' positions, any flags, and the usage analytics of the hours and days it touched
//! ([`crate::usage`]). Memory takes the batch only once the transaction committed; a
//! transaction that fails, or a checkpoint memory does not match (another folder, a rebuild),
//! drops memory, which is loaded again from the read model.
//!
//! Boards added later (or defined otherwise) are built from the whole log by the same folder,
//! a batch at a time between live batches, each in its own fold at its own position; one that
//! reaches the checkpoint joins the live fold.

use std::collections::{BTreeSet, HashMap};

use events::anomaly::{Detector, Flag, Rules};
use events::boards::{BoardDef, BoardDefs, GLOBAL, Reads, Season, SeasonStanding};
use events::fold::{Delta, Fold, Loaded};
use events::{BoardId, Event, RecordedEvent, ScoreAwarded, Standing};
use futures::TryStreamExt as _;
use sqlx::Database;
use tokio::sync::Mutex;

use crate::claims;
use crate::rows::{
    BoardRow, EventRow, FirstSeenRow, LockedCheckpointRow, PROJECTION, PublishedRow, SeasonRow, StandingRow, convert,
    from_db, stored, to_db,
};
use crate::snapshot::{self, Due};
use crate::sql::{self, Arg, Backend, Column, Write};
use crate::usage::{self, UsageRows};
use crate::{Applied, BoardsBuilt, Claim, StoreError, StoredEvent};

type Connection<B> = <<B as Backend>::Db as Database>::Connection;

/// The most events a detector rereads to warm up after a restart: if the log's last two windows
/// held more, a burst straddling the restart may go unflagged.
const WARM_UP_MAX: u64 = 100_000;

/// How a read model folds: its settings, and the fold in memory (shared by its clones; one
/// folder folds at a time).
#[derive(Debug)]
pub(crate) struct Folding {
    pub(crate) snapshot_interval: u64,
    pub(crate) rules: Rules,
    pub(crate) boards: BoardDefs,
    pub(crate) state: Mutex<Option<State>>,
}

impl Default for Folding {
    fn default() -> Self {
        Self::new(snapshot::DEFAULT_INTERVAL, Rules::defaults(), BoardDefs::default())
    }
}

impl Folding {
    pub(crate) fn new(snapshot_interval: u64, rules: Rules, boards: BoardDefs) -> Self {
        Self { snapshot_interval: snapshot_interval.max(1), rules, boards, state: Mutex::new(None) }
    }
}

/// The fold in memory, as of the read model's checkpoint.
#[derive(Debug)]
pub(crate) struct State {
    /// `global` and the boards ready (folded up to the checkpoint).
    pub(crate) fold: Fold,
    /// The read model's generation it was loaded in.
    generation: u64,
    /// `None` without rules.
    detector: Option<Detector>,
    /// When the next snapshot is due.
    due: Due,
    /// Boards being built from the log, each at its own position.
    building: Vec<Fold>,
    /// Boards dropped and added when memory was loaded: query services reload once the new ones
    /// are built.
    changed_boards: (Vec<String>, Vec<String>),
    /// The latest version of the results of each season published (see [`crate::results`]).
    pub(crate) published: Published,
    /// The log's head when each season closing was first seen: its results wait until the fold
    /// holds that position, and with it every event of the season.
    pub(crate) due_heads: HashMap<(BoardId, Season), u64>,
}

/// The tables a read model lives in: the live one, or the one a rebuild fills beside it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tables {
    /// Its checkpoint's row (`None`: the live one's is the checkpoint it will take over at).
    pub projection: Option<&'static str>,
    pub standings: &'static str,
    pub seasons: &'static str,
    pub boards: &'static str,
    pub changes: &'static str,
    pub snapshots: &'static str,
    pub flags: &'static str,
    pub usage: &'static str,
}

impl Tables {
    pub(crate) const LIVE: Self = Self {
        projection: Some(PROJECTION),
        standings: "leaderboard",
        seasons: "board_standings",
        boards: "boards",
        changes: "board_changes",
        snapshots: "board_snapshots",
        flags: "anomaly_flags",
        usage: "usage_stats",
    };

    pub(crate) const NEXT: Self = Self {
        projection: None,
        standings: "leaderboard_next",
        seasons: "board_standings_next",
        boards: "boards_next",
        changes: "board_changes_next",
        snapshots: "board_snapshots_next",
        flags: "anomaly_flags_next",
        usage: "usage_stats_next",
    };
}

/// Where a fold's events come from.
pub(crate) enum Source<'a> {
    /// The log, up to this many events.
    Next(u32),
    /// What a transport claims, checked against the log.
    Claims(&'a [Claim]),
}

/// Why a transaction stopped short.
pub(crate) enum Stop {
    /// Memory does not match the read model: load it again.
    Stale,
    Failed(StoreError),
}

impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Self {
        Self::Failed(error)
    }
}

impl From<sqlx::Error> for Stop {
    fn from(error: sqlx::Error) -> Self {
        Self::Failed(error.into())
    }
}

/// Folds through `backend`'s read model as `folding` says.
pub(crate) async fn fold<B: Backend>(
    backend: &B,
    folding: &Folding,
    source: Source<'_>,
) -> Result<Applied, StoreError> {
    let mut guard = folding.state.lock().await;
    loop {
        let mut state = match guard.take() {
            Some(state) => state,
            None => load(backend, folding).await?,
        };
        match fold_batch(backend, folding, &mut state, &source).await {
            Ok(applied) => {
                *guard = Some(state);
                return Ok(applied);
            }
            Err(Stop::Stale) => tracing::info!("the read model moved under the fold in memory; loading it again"),
            Err(Stop::Failed(error)) => return Err(error),
        }
    }
}

/// Makes the read model's boards those of `folding` and builds the new ones from the log, a
/// batch at a time, letting folds run between batches; once all are built, bumps the
/// generation so that query services load them.
pub(crate) async fn build_boards<B: Backend>(
    backend: &B,
    folding: &Folding,
    batch: u32,
) -> Result<BoardsBuilt, StoreError> {
    let mut built = BoardsBuilt::default();
    loop {
        let mut guard = folding.state.lock().await;
        let mut state = match guard.take() {
            Some(state) => state,
            None => load(backend, folding).await?,
        };
        if state.building.is_empty() {
            let (dropped, added) = std::mem::take(&mut state.changed_boards);
            if !dropped.is_empty() || !added.is_empty() {
                let mut connection = backend.writer().acquire().await?;
                let (generation,): (i64,) =
                    sql::one::<B, _>(&mut connection, B::SQL.bump_generation, vec![Arg::Text(PROJECTION)]).await?;
                state.generation = from_db(generation);
            }
            built.dropped = dropped;
            built.built = added;
            *guard = Some(state);
            return Ok(built);
        }
        match build_step(backend, &mut state, batch).await {
            Ok(folded) => {
                built.events += folded;
                *guard = Some(state);
            }
            Err(Stop::Stale) => {}
            Err(Stop::Failed(error)) => return Err(error),
        }
    }
}

/// Folds one batch into the live boards.
async fn fold_batch<B: Backend>(
    backend: &B,
    folding: &Folding,
    state: &mut State,
    source: &Source<'_>,
) -> Result<Applied, Stop> {
    // Memory says where the checkpoint is; the statement that locks it reads the log from there.
    let from = state.fold.position();
    let through = match source {
        Source::Next(limit) => Some(from + u64::from(*limit)),
        Source::Claims(claims) => claims::claimed_window(claims, from),
    };
    let mut tx = backend.begin_derived().await?;
    let mut log = locked_checkpoint_log::<B>(&mut tx, state, through.unwrap_or(from)).await?;
    let (run, skipped, forged) = match (source, through) {
        (Source::Next(_), _) => (log, 0, Vec::new()),
        (Source::Claims(claims), None) => (log, claims.len(), Vec::new()),
        (Source::Claims(claims), Some(through)) => {
            let confirmation = claims::confirm(claims, from, through, &log);
            log.truncate((confirmation.to - from) as usize);
            (log, confirmation.skipped, confirmation.forged)
        }
    };
    if run.is_empty() {
        tx.commit().await?;
        return Ok(Applied { from, to: from, skipped, forged, flagged: Vec::new(), usage: Default::default() });
    }
    let events = decode(&run)?;
    let delta = fold_in::<B>(&mut tx, &state.fold, &events).await?;
    let flags = match &mut state.detector {
        Some(detector) => flag::<B>(&mut tx, detector, &state.fold, &events).await?,
        None => Vec::new(),
    };
    let (added, merged) = usage::fold::<B>(&mut tx, &state.fold, &events, state.fold.defs()).await?;
    let boards: Vec<BoardDef> = state.fold.defs().filter(|def| def.id.as_str() != GLOBAL).cloned().collect();
    let rows = FoldRows::of(&delta, &boards, &flags);
    let usage_rows = UsageRows::of(&merged.tallies);
    let mut writes = rows.writes(Tables::LIVE);
    writes.push(usage_rows.write(Tables::LIVE.usage));
    B::write(&mut tx, &writes, None).await?;
    amend::<B>(&mut tx, &state.published, &delta).await?;
    tx.commit().await?;
    let to = delta.to;
    state.due.changes += delta.of(GLOBAL).count() as u64;
    state.fold.apply(delta);
    if state.due.now(to, state.fold.len(GLOBAL) as u64, folding.snapshot_interval) {
        write_snapshot::<B>(&mut *backend.writer().acquire().await?, Tables::LIVE, to, state.fold.standings(GLOBAL))
            .await?;
        state.due = Due { last: to, changes: 0 };
    }
    let flagged = flags.into_iter().map(|f| f.rule).collect();
    Ok(Applied { from, to, skipped, forged, flagged, usage: usage::folded(&added, &merged) })
}

/// Folds the next batch of the first board being built; returns how many events.
async fn build_step<B: Backend>(backend: &B, state: &mut State, batch: u32) -> Result<u64, Stop> {
    let mut tx = backend.begin_derived().await?;
    let checkpoint = locked_checkpoint::<B>(&mut tx, state).await?;
    let building = &mut state.building[0];
    let from = building.position();
    let run = read_log::<B>(&mut tx, from, checkpoint.min(from + u64::from(batch.max(1)))).await?;
    let events = decode(&run)?;
    let delta = fold_in::<B>(&mut tx, building, &events).await?;
    let boards: Vec<BoardDef> = building.defs().cloned().collect();
    let (_, merged) = usage::fold::<B>(&mut tx, building, &events, &boards).await?;
    let usage_rows = UsageRows::of(&merged.tallies);
    let to = delta.to;
    let rows = FoldRows::of(&delta, &boards, &[]);
    let mut writes = rows.board_writes(Tables::LIVE);
    writes.push(usage_rows.write(Tables::LIVE.usage));
    B::write(&mut tx, &writes, None).await?;
    tx.commit().await?;
    building.apply(delta);
    tracing::info!(boards = ?boards.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), position = to, checkpoint, "building boards");
    if to == checkpoint {
        let built = state.building.remove(0);
        state.fold.adopt(built);
    }
    Ok(run.len() as u64)
}

/// The checkpoint locked, if memory is at it (and in the same generation), and the log's
/// events from there through `through`.
async fn locked_checkpoint_log<B: Backend>(
    connection: &mut Connection<B>,
    state: &State,
    through: u64,
) -> Result<Vec<StoredEvent>, Stop> {
    let from = state.fold.position();
    let args = vec![Arg::Text(PROJECTION), Arg::Int(to_db(from)), Arg::Int(to_db(through))];
    let rows: Vec<LockedCheckpointRow> = B::rows(connection, B::SQL.lock_checkpoint_log, args).await?;
    let first = rows.first().ok_or_else(|| StoreError::InvalidRow("no checkpoint of the read model".into()))?;
    if from_db(first.checkpoint) != from || from_db(first.generation) != state.generation {
        return Err(Stop::Stale);
    }
    Ok(rows.into_iter().filter_map(|row| row.event.event()).collect())
}

/// Marks the published seasons `delta` changes as amended, in the fold's own transaction.
async fn amend<B: Backend>(
    connection: &mut Connection<B>,
    published: &Published,
    delta: &Delta,
) -> Result<(), StoreError> {
    if published.is_empty() {
        return Ok(());
    }
    let amended: BTreeSet<(&BoardId, Season)> = delta
        .standings
        .iter()
        .filter(|s| published.contains_key(&(s.board.clone(), s.season)))
        .map(|s| (&s.board, s.season))
        .collect();
    for (board, season) in amended {
        let season = season.to_string();
        B::execute(connection, B::SQL.amend_season, vec![Arg::Text(board.as_str()), Arg::Text(&season)]).await?;
    }
    Ok(())
}

/// The latest version of every season published, and the board's definition it was folded by.
pub(crate) type Published = HashMap<(BoardId, Season), (u32, String)>;

/// The latest version of every season published.
pub(crate) async fn published<B: Backend>(connection: &mut Connection<B>) -> Result<Published, StoreError> {
    let rows: Vec<PublishedRow> = B::rows(connection, B::SQL.published_seasons, vec![]).await?;
    let mut published = HashMap::new();
    for row in rows {
        let bad = || crate::rows::invalid(format!("season_results row {:?} {:?}", row.board, row.season));
        let board = BoardId::parse(row.board.as_str()).map_err(|_| bad())?;
        let season = row.season.parse::<Season>().map_err(|_| bad())?;
        let version = u32::try_from(row.version).map_err(|_| bad())?;
        published.insert((board, season), (version, row.definition));
    }
    Ok(published)
}

/// The checkpoint, locked, if memory is at it (and in the same generation).
pub(crate) async fn locked_checkpoint<B: Backend>(connection: &mut Connection<B>, state: &State) -> Result<u64, Stop> {
    let (position, generation): (i64, i64) =
        sql::one::<B, _>(connection, B::SQL.lock_checkpoint, vec![Arg::Text(PROJECTION)]).await?;
    let (position, generation) = (from_db(position), from_db(generation));
    if position != state.fold.position() || generation != state.generation {
        return Err(Stop::Stale);
    }
    Ok(position)
}

/// The log's events in `(after, through]`, in order.
async fn read_log<B: Backend>(
    connection: &mut Connection<B>,
    after: u64,
    through: u64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let rows: Vec<EventRow> =
        B::rows(connection, B::SQL.read_range, vec![Arg::Int(to_db(after)), Arg::Int(to_db(through))]).await?;
    Ok(stored(rows))
}

fn decode(run: &[StoredEvent]) -> Result<Vec<RecordedEvent>, StoreError> {
    run.iter().map(StoredEvent::decoded).collect()
}

/// What folding `events` into `fold` changes, with what memory lacks read from the read model.
async fn fold_in<B: Backend>(
    connection: &mut Connection<B>,
    fold: &Fold,
    events: &[RecordedEvent],
) -> Result<Delta, StoreError> {
    let revoked = revoked_awards::<B>(connection, events).await?;
    let wanted = fold.reads(events, &revoked);
    let cold = read_places::<B>(connection, &wanted, fold).await?;
    let earlier = histories::<B>(connection, &wanted, fold.position()).await?;
    Ok(fold.fold(events, &revoked, cold, &earlier))
}

/// The events of the players `wanted` names (those whose kept award is taken back) up to
/// `through`, read from the log.
pub(crate) async fn histories<B: Backend>(
    connection: &mut Connection<B>,
    wanted: &Reads,
    through: u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if wanted.histories.is_empty() {
        return Ok(Vec::new());
    }
    let players = wanted.histories.iter().map(|p| p.as_str()).collect();
    let rows: Vec<EventRow> =
        B::rows(connection, B::SQL.history, vec![Arg::Texts(players), Arg::Int(to_db(through))]).await?;
    decode(&stored(rows))
}

/// The awards `events` revoke one by one, by position, read from the log.
pub(crate) async fn revoked_awards<B: Backend>(
    connection: &mut Connection<B>,
    events: &[RecordedEvent],
) -> Result<HashMap<u64, ScoreAwarded>, StoreError> {
    let positions = events::boards::revoked_positions(events);
    if positions.is_empty() {
        return Ok(HashMap::new());
    }
    let positions = positions.into_iter().map(to_db).collect();
    let rows: Vec<EventRow> = B::rows(connection, B::SQL.read_positions, vec![Arg::Ints(positions)]).await?;
    let mut awards = HashMap::new();
    for event in stored(rows) {
        if let Event::ScoreAwarded(award) = event.decoded()?.event {
            awards.insert(event.position, award);
        }
    }
    Ok(awards)
}

/// The standings `wanted` names, as the read model holds them.
async fn read_places<B: Backend>(
    connection: &mut Connection<B>,
    wanted: &Reads,
    fold: &Fold,
) -> Result<Vec<SeasonStanding>, StoreError> {
    if wanted.places.is_empty() && wanted.players.is_empty() {
        return Ok(Vec::new());
    }
    let seasons: Vec<String> = wanted.places.iter().map(|p| p.season.to_string()).collect();
    let boards: Vec<&str> = fold.defs().map(|def| def.id.as_str()).collect();
    let args = vec![
        Arg::Texts(wanted.places.iter().map(|p| p.board.as_str()).collect()),
        Arg::Texts(seasons.iter().map(String::as_str).collect()),
        Arg::Texts(wanted.places.iter().map(|p| p.player_id.as_str()).collect()),
        Arg::Texts(wanted.players.iter().map(|p| p.as_str()).collect()),
        Arg::Texts(boards),
    ];
    let rows: Vec<SeasonRow> = B::rows(connection, B::SQL.season_places, args).await?;
    convert(rows)
}

/// Feeds `events` to `detector`, telling it first when the players it does not know were first
/// seen; returns the flags raised.
pub(crate) async fn flag<B: Backend>(
    connection: &mut Connection<B>,
    detector: &mut Detector,
    fold: &Fold,
    events: &[RecordedEvent],
) -> Result<Vec<Flag>, StoreError> {
    let unknown: Vec<events::PlayerId> = detector.unknown_players(events).into_iter().cloned().collect();
    if !unknown.is_empty() {
        let known: BTreeSet<&str> = fold.standings(GLOBAL).map(|s| s.player_id.as_str()).collect();
        let (seen_before, new): (Vec<_>, Vec<_>) = unknown.iter().partition(|p| known.contains(p.as_str()));
        // A player the fold never saw is first seen in this batch.
        for player in new {
            if let Some(first) = events.iter().find(|e| e.event.player_id() == player) {
                detector.first_seen(player.clone(), first.event.recorded_at());
            }
        }
        tell_first_seen::<B>(connection, detector, seen_before.iter().map(|p| p.as_str()).collect()).await?;
    }
    Ok(detector.observe(events))
}

/// Tells `detector` when `players` were first seen, as the log says.
async fn tell_first_seen<B: Backend>(
    connection: &mut Connection<B>,
    detector: &mut Detector,
    players: Vec<&str>,
) -> Result<(), StoreError> {
    if players.is_empty() {
        return Ok(());
    }
    let rows: Vec<FirstSeenRow> = B::rows(connection, B::SQL.first_seen, vec![Arg::Texts(players)]).await?;
    for row in rows {
        if let (Ok(player), Some(first)) = (events::PlayerId::parse(row.player_id), row.first) {
            detector.first_seen(player, first);
        }
    }
    Ok(())
}

/// Writes a snapshot of `standings` (every standing of `global`) at `position`.
pub(crate) async fn write_snapshot<'a, B: Backend>(
    connection: &mut Connection<B>,
    tables: Tables,
    position: u64,
    standings: impl Iterator<Item = &'a Standing>,
) -> Result<(), StoreError> {
    let standings: Vec<&Standing> = standings.collect();
    let bytes = snapshot::encode(standings.iter().copied());
    let write = Write {
        table: tables.snapshots,
        columns: &["position", "players", "standings"],
        values: vec![
            Column::Int(vec![to_db(position)]),
            Column::Int(vec![to_db(standings.len() as u64)]),
            Column::Bytes(vec![&bytes]),
        ],
        conflict: "ON CONFLICT (position) DO NOTHING",
    };
    B::write(connection, std::slice::from_ref(&write), None).await?;
    Ok(())
}

/// Loads the fold from the read model: makes its boards those defined first (dropping the
/// others, adding the new ones to be built), then reads every standing of `global` and the
/// newest season of every board, and warms the detector up.
pub(crate) async fn load<B: Backend>(backend: &B, folding: &Folding) -> Result<State, StoreError> {
    let started = std::time::Instant::now();
    let changed_boards = sync_boards(backend, &folding.boards).await?;
    let mut tx = backend.begin_read().await?;
    let (position, generation): (i64, i64) =
        sql::one::<B, _>(&mut tx, B::SQL.checkpoint, vec![Arg::Text(PROJECTION)]).await?;
    let (position, generation) = (from_db(position), from_db(generation));
    let global: Vec<Standing> = B::stream::<StandingRow>(&mut tx, B::SQL.standings, vec![])
        .and_then(|row| std::future::ready(Standing::try_from(row)))
        .try_collect()
        .await?;
    let mut live = vec![Loaded { def: BoardDef::global(), season: Some(Season::AllTime), standings: global }];
    let mut building = Vec::new();
    let kept: Vec<BoardRow> = B::rows(&mut tx, B::SQL.boards, vec![]).await?;
    for def in folding.boards.named() {
        let Some(row) = kept.iter().find(|row| row.board == def.id.as_str()) else { continue };
        let loaded = newest_season::<B>(&mut tx, def).await?;
        match from_db(row.position) {
            at if at == position => live.push(loaded),
            at => building.push(Fold::load(at, [loaded])),
        }
    }
    let (last, changes): (i64, i64) = sql::one::<B, _>(&mut tx, B::SQL.snapshot_due, vec![]).await?;
    let published = published::<B>(&mut tx).await?;
    tx.commit().await?;
    let fold = Fold::load(position, live);
    let detector = match folding.rules.is_empty() {
        true => None,
        false => Some(warm_up::<B>(&mut *backend.reader().acquire().await?, folding.rules.clone(), position).await?),
    };
    tracing::info!(
        position,
        players = fold.len(GLOBAL),
        seconds = started.elapsed().as_secs_f64(),
        "the fold is loaded from the read model"
    );
    let due = Due { last: from_db(last), changes: from_db(changes) };
    Ok(State { fold, generation, detector, due, building, changed_boards, published, due_heads: HashMap::new() })
}

/// Board `def`'s newest season, as the read model holds it.
async fn newest_season<B: Backend>(connection: &mut Connection<B>, def: &BoardDef) -> Result<Loaded, StoreError> {
    let newest: Option<(String,)> =
        sql::row::<B, _>(connection, B::SQL.newest_season, vec![Arg::Text(def.id.as_str())]).await?;
    let Some((season,)) = newest else { return Ok(Loaded { def: def.clone(), season: None, standings: Vec::new() }) };
    let rows: Vec<SeasonRow> =
        B::rows(connection, B::SQL.season, vec![Arg::Text(def.id.as_str()), Arg::Text(&season)]).await?;
    let standings: Vec<SeasonStanding> = convert(rows)?;
    let season = standings.first().map(|s| s.season);
    Ok(Loaded { def: def.clone(), season, standings: standings.into_iter().map(|s| s.standing).collect() })
}

/// Drops the boards the read model keeps that are no longer defined (or are defined otherwise)
/// and adds the new ones at position 0; returns the ids dropped and added.
async fn sync_boards<B: Backend>(backend: &B, boards: &BoardDefs) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let mut tx = backend.begin_derived().await?;
    let _: (i64, i64) = sql::one::<B, _>(&mut tx, B::SQL.lock_checkpoint, vec![Arg::Text(PROJECTION)]).await?;
    let kept: Vec<BoardRow> = B::rows(&mut tx, B::SQL.boards, vec![]).await?;
    let (drop, add) = board_plan(&kept, boards);
    for id in &drop {
        B::execute(&mut tx, B::SQL.drop_standings, vec![Arg::Text(id)]).await?;
        B::execute(&mut tx, B::SQL.drop_board, vec![Arg::Text(id)]).await?;
        B::execute(&mut tx, B::SQL.drop_usage, vec![Arg::Text(id)]).await?;
    }
    let added = BoardPositions::of(&add, 0);
    B::write(&mut tx, std::slice::from_ref(&added.write(Tables::LIVE)), None).await?;
    tx.commit().await?;
    Ok((drop, add.iter().map(|b| b.id.to_string()).collect()))
}

/// Which kept boards to drop, and which of `boards` to add and build from the log: a board whose
/// definition changed is both.
fn board_plan(kept: &[BoardRow], boards: &BoardDefs) -> (Vec<String>, Vec<BoardDef>) {
    let defined =
        |id: &str, definition: &str| boards.named().iter().any(|b| b.id.as_str() == id && b.definition() == definition);
    let drop = kept.iter().filter(|row| !defined(&row.board, &row.definition)).map(|row| row.board.clone()).collect();
    let add = boards
        .named()
        .iter()
        .filter(|b| !kept.iter().any(|row| row.board == b.id.as_str() && row.definition == b.definition()))
        .cloned()
        .collect();
    (drop, add)
}

/// A detector that has observed the log's last two windows before `position` (at most
/// [`WARM_UP_MAX`] events), as one that had watched all along would have.
pub(crate) async fn warm_up<B: Backend>(
    connection: &mut Connection<B>,
    rules: Rules,
    position: u64,
) -> Result<Detector, StoreError> {
    let before: Option<(i64,)> = sql::row::<B, _>(
        connection,
        B::SQL.position_before,
        vec![Arg::Int(to_db(position)), Arg::Float(rules.lookback().as_seconds_f64())],
    )
    .await?;
    let since = before.map_or(0, |(p,)| from_db(p)).max(position.saturating_sub(WARM_UP_MAX));
    let events = decode(&read_log::<B>(connection, since, position).await?)?;
    let mut detector = Detector::new(rules, since);
    let unknown: Vec<String> = detector.unknown_players(&events).iter().map(|p| p.to_string()).collect();
    tell_first_seen::<B>(connection, &mut detector, unknown.iter().map(String::as_str).collect()).await?;
    detector.observe(&events);
    Ok(detector)
}

/// Boards and the position they are folded through, as rows.
pub(crate) struct BoardPositions {
    ids: Vec<String>,
    definitions: Vec<String>,
    positions: Vec<i64>,
}

impl BoardPositions {
    pub(crate) fn of(boards: &[BoardDef], position: u64) -> Self {
        Self {
            ids: boards.iter().map(|b| b.id.to_string()).collect(),
            definitions: boards.iter().map(BoardDef::definition).collect(),
            positions: vec![to_db(position); boards.len()],
        }
    }

    pub(crate) fn write(&self, tables: Tables) -> Write<'_> {
        Write {
            table: tables.boards,
            columns: &["board", "definition", "position"],
            values: vec![
                Column::Text(self.ids.iter().map(String::as_str).collect()),
                Column::Text(self.definitions.iter().map(String::as_str).collect()),
                Column::Int(self.positions.clone()),
            ],
            conflict: "ON CONFLICT (board) DO UPDATE SET position = excluded.position",
        }
    }
}

/// Standings as rows: `global`'s into the standings table, the others' into the seasons table.
pub(crate) struct StandingRows {
    boards: Vec<String>,
    seasons: Vec<String>,
    players: Vec<String>,
    names: Vec<Option<String>>,
    scores: Vec<i64>,
    reached: Vec<i64>,
    banned: Vec<bool>,
}

impl StandingRows {
    pub(crate) fn of<'a>(standings: impl IntoIterator<Item = &'a SeasonStanding>) -> Self {
        let mut rows = Self {
            boards: Vec::new(),
            seasons: Vec::new(),
            players: Vec::new(),
            names: Vec::new(),
            scores: Vec::new(),
            reached: Vec::new(),
            banned: Vec::new(),
        };
        for s in standings {
            rows.push_place(&s.board, s.season, &s.standing);
        }
        rows
    }

    pub(crate) fn of_global<'a>(standings: impl IntoIterator<Item = &'a Standing>) -> Self {
        let mut rows = Self::of([]);
        for standing in standings {
            rows.push(standing);
        }
        rows
    }

    /// Adds the standing of a player on `board` in `season`.
    pub(crate) fn push_place(&mut self, board: &BoardId, season: Season, standing: &Standing) {
        self.boards.push(board.to_string());
        self.seasons.push(season.to_string());
        self.push(standing);
    }

    fn push(&mut self, s: &Standing) {
        self.players.push(s.player_id.to_string());
        self.names.push(s.name.as_ref().map(ToString::to_string));
        self.scores.push(to_db(s.score));
        self.reached.push(to_db(s.reached_at));
        self.banned.push(s.banned);
    }

    fn standing_columns(&self) -> Vec<Column<'_>> {
        vec![
            Column::Text(self.players.iter().map(String::as_str).collect()),
            Column::OptText(self.names.iter().map(Option::as_deref).collect()),
            Column::Int(self.scores.clone()),
            Column::Int(self.reached.clone()),
            Column::Bool(self.banned.clone()),
        ]
    }

    /// `global`'s standings, each replacing the player's.
    pub(crate) fn global(&self, table: &'static str) -> Write<'_> {
        Write {
            table,
            columns: &["player_id", "display_name", "score", "reached_at", "banned"],
            values: self.standing_columns(),
            conflict: "ON CONFLICT (player_id) DO UPDATE SET display_name = excluded.display_name, \
                       score = excluded.score, reached_at = excluded.reached_at, banned = excluded.banned",
        }
    }

    /// Other boards' standings, each replacing the one at its board, season and player.
    pub(crate) fn seasons(&self, table: &'static str) -> Write<'_> {
        let mut values = vec![
            Column::Text(self.boards.iter().map(String::as_str).collect()),
            Column::Text(self.seasons.iter().map(String::as_str).collect()),
        ];
        values.extend(self.standing_columns());
        Write {
            table,
            columns: &["board", "season", "player_id", "display_name", "score", "reached_at", "banned"],
            values,
            conflict: "ON CONFLICT (board, season, player_id) DO UPDATE SET display_name = excluded.display_name, \
                       score = excluded.score, reached_at = excluded.reached_at, banned = excluded.banned",
        }
    }
}

/// What one fold transaction writes, as rows.
pub(crate) struct FoldRows {
    global: StandingRows,
    seasons: StandingRows,
    boards: BoardPositions,
    checkpoint: i64,
    log: ChangeRows,
}

impl FoldRows {
    /// The rows of `delta`, which moves `boards` (other than `global`) and the checkpoint to its
    /// end, and of `flags`.
    pub(crate) fn of(delta: &Delta, boards: &[BoardDef], flags: &[Flag]) -> Self {
        Self {
            global: StandingRows::of_global(delta.of(GLOBAL).map(|s| &s.standing)),
            seasons: StandingRows::of(delta.standings.iter().filter(|s| s.board.as_str() != GLOBAL)),
            boards: BoardPositions::of(boards, delta.to),
            checkpoint: to_db(delta.to),
            log: ChangeRows::of(delta, flags),
        }
    }

    /// Every write of a fold into `tables`.
    pub(crate) fn writes(&self, tables: Tables) -> Vec<Write<'_>> {
        let mut writes = vec![self.global.global(tables.standings), self.seasons.seasons(tables.seasons)];
        writes.extend(self.log.writes(tables));
        writes.push(self.boards.write(tables));
        writes.extend(tables.projection.map(|projection| checkpoint_write(projection, self.checkpoint)));
        writes
    }

    /// The writes of a board being built: its standings and position only.
    fn board_writes(&self, tables: Tables) -> Vec<Write<'_>> {
        vec![self.seasons.seasons(tables.seasons), self.boards.write(tables)]
    }
}

/// What records a fold rather than its standings, as rows: its change row and its flags.
pub(crate) struct ChangeRows {
    change: (i64, i64, Vec<u8>, Vec<u8>, i64),
    flags: FlagRows,
}

impl ChangeRows {
    pub(crate) fn of(delta: &Delta, flags: &[Flag]) -> Self {
        let global: Vec<&Standing> = delta.of(GLOBAL).map(|s| &s.standing).collect();
        let seasons: Vec<SeasonStanding> =
            delta.standings.iter().filter(|s| s.board.as_str() != GLOBAL).cloned().collect();
        Self {
            change: (
                to_db(delta.to),
                to_db(delta.from),
                snapshot::encode(global.iter().copied()),
                snapshot::encode_seasons(&seasons),
                global.len() as i64,
            ),
            flags: FlagRows::of(flags),
        }
    }

    pub(crate) fn writes(&self, tables: Tables) -> [Write<'_>; 2] {
        let (position, from, standings, seasons, entries) = &self.change;
        [
            Write {
                table: tables.changes,
                columns: &["position", "from_position", "standings", "seasons", "entries"],
                values: vec![
                    Column::Int(vec![*position]),
                    Column::Int(vec![*from]),
                    Column::Bytes(vec![standings]),
                    Column::Bytes(vec![seasons]),
                    Column::Int(vec![*entries]),
                ],
                conflict: "ON CONFLICT (position) DO NOTHING",
            },
            self.flags.write(tables.flags),
        ]
    }
}

/// The checkpoint of `projection` moved to `position`.
pub(crate) fn checkpoint_write(projection: &'static str, position: i64) -> Write<'static> {
    Write {
        table: "projection_checkpoints",
        columns: &["projection", "position"],
        values: vec![Column::Text(vec![projection]), Column::Int(vec![position])],
        conflict: "ON CONFLICT (projection) DO UPDATE SET position = excluded.position, updated_at = CURRENT_TIMESTAMP",
    }
}

/// Anomaly flags as rows.
pub(crate) struct FlagRows {
    positions: Vec<i64>,
    rules: Vec<String>,
    players: Vec<String>,
    events: Vec<String>,
    flagged_at: Vec<time::OffsetDateTime>,
}

impl FlagRows {
    pub(crate) fn of(flags: &[Flag]) -> Self {
        Self {
            positions: flags.iter().map(|f| to_db(f.position)).collect(),
            rules: flags.iter().map(|f| f.rule.clone()).collect(),
            players: flags.iter().map(|f| f.player_id.to_string()).collect(),
            events: flags.iter().map(|f| serde_json::to_string(&f.events).expect("positions serialise")).collect(),
            flagged_at: flags.iter().map(|f| f.flagged_at).collect(),
        }
    }

    pub(crate) fn write(&self, table: &'static str) -> Write<'_> {
        Write {
            table,
            columns: &["position", "rule", "player_id", "events", "flagged_at"],
            values: vec![
                Column::Int(self.positions.clone()),
                Column::Text(self.rules.iter().map(String::as_str).collect()),
                Column::Text(self.players.iter().map(String::as_str).collect()),
                Column::Text(self.events.iter().map(String::as_str).collect()),
                Column::Time(self.flagged_at.clone()),
            ],
            conflict: "ON CONFLICT DO NOTHING",
        }
    }
}

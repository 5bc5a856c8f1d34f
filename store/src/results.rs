//! Season results, published by the folder (see [`events::results`]).
//!
//! Each time it is asked ([`publish`]), under the fold's lock and in a transaction that locks
//! the checkpoint, the folder publishes the results of every season of a board that has closed
//! by its clock since the board's last published season (from the first season the read model
//! holds of it), and a new version of every published season a fold changed since
//! (`season_amendments`, written by that fold's own transaction). A season waits until the fold
//! holds the log's head as it was when its closing was first seen — every event of the season,
//! which was appended before it closed — and until a signed checkpoint covers the fold's
//! position. Nothing published is ever changed; a version identical to the previous one is not
//! published.

use events::boards::{BoardDef, GLOBAL, Season, SeasonKind, SeasonStanding};
use events::results::{closed, placed};
use sqlx::Database;
use time::{Duration, OffsetDateTime};

use crate::fold::{self, Folding, State, Stop};
use crate::rows::{CheckpointRow, ResultsRow, SeasonRow, convert, from_db, to_db};
use crate::sql::{self, Arg, Backend};
use crate::{Checkpoint, SeasonResults, StoreError};

type Connection<B> = <<B as Backend>::Db as Database>::Connection;

/// Publishes what is due by `now` (seasons closing `grace` after their end); returns what it
/// published.
pub(crate) async fn publish<B: Backend>(
    backend: &B,
    folding: &Folding,
    now: OffsetDateTime,
    grace: Duration,
) -> Result<Vec<SeasonResults>, StoreError> {
    let mut guard = folding.state.lock().await;
    loop {
        let mut state = match guard.take() {
            Some(state) => state,
            None => fold::load(backend, folding).await?,
        };
        match publish_due(backend, &mut state, now, grace).await {
            Ok(published) => {
                *guard = Some(state);
                return Ok(published);
            }
            Err(Stop::Stale) => tracing::info!("the read model moved under the fold in memory; loading it again"),
            // Memory is as it was: a failed round changed nothing of the fold.
            Err(Stop::Failed(error)) => {
                *guard = Some(state);
                return Err(error);
            }
        }
    }
}

/// A season to publish: closed (its `latest` version, if any, folded by another definition of
/// the board), or amended since its `latest` version.
struct Due {
    def: BoardDef,
    season: Season,
    latest: Option<u32>,
}

async fn publish_due<B: Backend>(
    backend: &B,
    state: &mut State,
    now: OffsetDateTime,
    grace: Duration,
) -> Result<Vec<SeasonResults>, Stop> {
    // What is due is read without a lock: most rounds find nothing, and take no writer's turn.
    let due = due::<B>(&mut *backend.reader().acquire().await?, state, now, grace).await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = backend.begin_derived().await?;
    let position = fold::locked_checkpoint::<B>(&mut tx, state).await?;
    // Every event of a season was appended before its closing was seen: the fold must hold them.
    let (head, _): (i64, i64) = sql::one::<B, _>(&mut tx, B::SQL.head, vec![]).await?;
    let ready: Vec<Due> = due
        .into_iter()
        .filter(|due| {
            let seen = *state.due_heads.entry((due.def.id.clone(), due.season)).or_insert(from_db(head));
            position >= seen
        })
        .collect();
    let covering: Option<CheckpointRow> =
        sql::row::<B, _>(&mut tx, B::SQL.covering_checkpoint, vec![Arg::Int(to_db(position))]).await?;
    let (Some(covering), false) = (covering.map(Checkpoint::try_from).transpose()?, ready.is_empty()) else {
        tx.commit().await?;
        return Ok(Vec::new());
    };
    let mut published = Vec::new();
    for due in ready {
        let season = due.season.to_string();
        let board = due.def.id.as_str();
        let rows: Vec<SeasonRow> = B::rows(&mut tx, B::SQL.season, vec![Arg::Text(board), Arg::Text(&season)]).await?;
        let standings: Vec<SeasonStanding> = convert(rows)?;
        let entries = placed(&due.def, standings.into_iter().map(|s| s.standing));
        let encoded = serde_json::to_string(&entries).expect("entries serialise");
        let definition = due.def.definition();
        let changed = match due.latest {
            None => true,
            Some(version) => {
                let args = vec![Arg::Text(board), Arg::Text(&season), Arg::Int(i64::from(version))];
                let previous: Option<ResultsRow> = sql::row::<B, _>(&mut tx, B::SQL.results, args).await?;
                let previous: Option<SeasonResults> = previous.map(SeasonResults::try_from).transpose()?;
                previous.is_none_or(|previous| previous.entries != entries || previous.definition != definition)
            }
        };
        B::execute(&mut tx, B::SQL.clear_amendment, vec![Arg::Text(board), Arg::Text(&season)]).await?;
        state.due_heads.remove(&(due.def.id.clone(), due.season));
        if !changed {
            continue;
        }
        let version = due.latest.map_or(1, |v| v + 1);
        let args = vec![
            Arg::Text(board),
            Arg::Text(&season),
            Arg::Int(i64::from(version)),
            Arg::Int(to_db(position)),
            Arg::Int(to_db(covering.tree_size)),
            Arg::Text(&encoded),
            Arg::Int(to_db(entries.len() as u64)),
            Arg::Time(now),
            Arg::Text(&definition),
        ];
        B::execute(&mut tx, B::SQL.insert_results, args).await?;
        published.push(SeasonResults {
            board: due.def.id.clone(),
            season: due.season,
            version,
            definition: definition.clone(),
            position,
            tree_size: covering.tree_size,
            checkpoint: covering.note.clone(),
            entries,
            published_at: now,
        });
    }
    tx.commit().await?;
    for results in &published {
        state.published.insert((results.board.clone(), results.season), (results.version, results.definition.clone()));
    }
    Ok(published)
}

/// The seasons of the boards ready that are due: closed since the board's last season published
/// by its definition now (or its first: a board defined otherwise publishes its seasons again,
/// as new versions where they were published before), and amended.
async fn due<B: Backend>(
    connection: &mut Connection<B>,
    state: &State,
    now: OffsetDateTime,
    grace: Duration,
) -> Result<Vec<Due>, StoreError> {
    let mut due = Vec::new();
    let seasonal = state.fold.defs().filter(|def| def.id.as_str() != GLOBAL && def.season != SeasonKind::AllTime);
    for def in seasonal {
        let definition = def.definition();
        let last = state
            .published
            .iter()
            .filter(|((board, _), (_, by))| board == &def.id && by == &definition)
            .map(|((_, season), _)| *season)
            .max();
        let first = match last {
            Some(last) => last.next(),
            None => {
                let (first,): (Option<String>,) =
                    sql::one::<B, _>(connection, B::SQL.first_season, vec![Arg::Text(def.id.as_str())]).await?;
                first.and_then(|season| season.parse::<Season>().ok())
            }
        };
        let Some(first) = first else { continue };
        due.extend(closed(first, now, grace).map(|season| {
            let latest = state.published.get(&(def.id.clone(), season)).map(|(version, _)| *version);
            Due { def: def.clone(), season, latest }
        }));
    }
    let amended: Vec<(String, String)> = B::rows(connection, B::SQL.amendments, vec![]).await?;
    for (board, season) in amended {
        let Some(def) = state.fold.defs().find(|def| def.id.as_str() == board) else { continue };
        let Ok(season) = season.parse::<Season>() else { continue };
        let latest = state.published.get(&(def.id.clone(), season)).map(|(version, _)| *version);
        due.push(Due { def: def.clone(), season, latest });
    }
    Ok(due)
}

/// The results of `season` of `board` at `version` (`None`: the latest), if published.
pub(crate) async fn read<B: Backend>(
    connection: &mut Connection<B>,
    board: &str,
    season: Season,
    version: Option<u32>,
) -> Result<Option<SeasonResults>, StoreError> {
    let season = season.to_string();
    let args = vec![Arg::Text(board), Arg::Text(&season), Arg::Int(i64::from(version.unwrap_or(0)))];
    let row: Option<ResultsRow> = sql::row::<B, _>(connection, B::SQL.results, args).await?;
    row.map(SeasonResults::try_from).transpose()
}

/// Every version of results not sent to JetStream yet, in the order published.
pub(crate) async fn unrelayed<B: Backend>(connection: &mut Connection<B>) -> Result<Vec<SeasonResults>, StoreError> {
    let rows: Vec<ResultsRow> = B::rows(connection, B::SQL.unrelayed, vec![]).await?;
    convert(rows)
}

/// Marks `results` sent to JetStream.
pub(crate) async fn mark_relayed<B: Backend>(
    connection: &mut Connection<B>,
    results: &SeasonResults,
) -> Result<(), StoreError> {
    let season = results.season.to_string();
    let args = vec![Arg::Text(results.board.as_str()), Arg::Text(&season), Arg::Int(i64::from(results.version))];
    B::execute(connection, B::SQL.mark_relayed, args).await?;
    Ok(())
}

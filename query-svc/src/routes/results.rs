//! Season results: the final standings of a closed season, with the log position they are the
//! fold of and the signed checkpoint that covers it (published by the folder; see
//! `store::results`).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use events::boards::{Season, SeasonKind};
use events::results::Published;
use platform::Problem;
use platform::client::ClientIp;
use platform::openapi::PROBLEM_JSON;
use serde::Deserialize;
use store::{EventStore, LeaderboardStore};

use crate::admission::Cost;
use crate::error::QueryError;
use crate::params::{Offset, ResultsLimit, ResultsVersion, Strict};
use crate::state::Reader;

/// The parameters of a season's results.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResultsQuery {
    /// How many entries to show.
    #[param(inline)]
    limit: Option<ResultsLimit>,
    /// How many entries to skip from the top.
    #[param(inline)]
    offset: Option<Offset>,
    /// A version of the results (1 is the first); the latest by default.
    #[param(inline)]
    version: Option<ResultsVersion>,
}

/// The `board` and `season` of a path.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SeasonPath {
    /// The board's id.
    #[param(pattern = "^[a-z0-9_-]{1,64}$")]
    #[allow(dead_code)]
    board: String,
    /// The season, as the board restarts: `2026-11-23`, `2026-W48` or `2026-11`.
    #[allow(dead_code)]
    season: String,
}

/// The final standings of a season that has closed, once published: with the log position
/// they are the fold of and the signed checkpoint that covers it, so that anyone can check them
/// against the log (`scoreboard-admin verify-results`). Moderation that reaches the season
/// later publishes a new version; every version stays readable.
#[utoipa::path(get, path = "/v1/boards/{board}/seasons/{season}/results", tag = "boards",
    params(SeasonPath, ResultsQuery),
    responses(
        (status = 200, description = "A page of the season's results", body = Published),
        (status = 404, description = "No such board (`unknown_board`), or no results of that season (and version) published \
            (`results_not_published`): the season has not closed, or has not been folded and signed since",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn results<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    path: Result<Path<(String, String)>, PathRejection>,
    Strict(query): Strict<ResultsQuery>,
) -> Result<Json<Published>, QueryError> {
    let Path((id, season)) = path.map_err(|rejection| QueryError::InvalidRequest(rejection.body_text()))?;
    let (def, _) = reader.boards.get(&id).ok_or_else(|| QueryError::UnknownBoard(id.clone()))?;
    if def.season == SeasonKind::AllTime {
        return Err(QueryError::InvalidRequest(format!("board {id:?} is all-time: no season of it closes")));
    }
    let season = Season::parse(def.season, &season).map_err(|e| QueryError::InvalidRequest(e.to_string()))?;
    let (limit, offset) = (ResultsLimit::or_default(query.limit) as usize, Offset::or_default(query.offset) as usize);
    // A read of the database, kept off the hot path like a past season's.
    let _reading = reader.admit(client, Cost::Heavy)?;
    let version = query.version.map(|v| u32::try_from(v.get()).unwrap_or(u32::MAX));
    let (read_model, board) = (reader.read_model.clone(), id.clone());
    let results =
        reader.apart.run(async move { Ok(read_model.season_results(&board, season, version).await?) }).await?;
    let results = results.ok_or_else(|| {
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        let ends = season.ends_at().and_then(|t| t.format(rfc3339).ok()).unwrap_or_default();
        let which = version.map(|v| format!("version {v} of the results")).unwrap_or("results".into());
        QueryError::ResultsNotPublished(format!(
            "no {which} of {season} of board {id:?} published: results are published once the season has \
             closed (its end, {ends}, plus SEASON_GRACE), been folded and been signed"
        ))
    })?;
    Ok(Json(results.published(offset, limit)))
}

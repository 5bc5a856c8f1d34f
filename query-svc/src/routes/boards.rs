//! The endpoints of boards and seasons: the boards, a page of a season, a player's standing and
//! neighbourhood in it.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse as _, Response};
use events::Board;
use events::boards::Season;
use platform::Problem;
use platform::client::ClientIp;
use platform::openapi::PROBLEM_JSON;
use serde::{Deserialize, Serialize};
use store::{EventStore, LeaderboardStore};
use time::OffsetDateTime;

use crate::admission::Cost;
use crate::error::QueryError;
use crate::live::{Entry, LiveBoard, read_season};
use crate::params::{Limit, Offset, Players, Position, Radius, Strict};
use crate::state::{Reader, json};

/// The parameters of a page of a season.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeasonPageQuery {
    /// The season: `all-time`, `2026-11-23`, `2026-W48` or `2026-11`, as the board restarts;
    /// the current one by default.
    season: Option<String>,
    /// How many entries to show.
    #[param(inline)]
    limit: Option<Limit>,
    /// How many entries to skip from the top.
    #[param(inline)]
    offset: Option<Offset>,
    /// Read your writes: wait (bounded) until the board has folded this position, else
    /// `503 projection_lagging`.
    #[param(inline)]
    min_position: Option<Position>,
    /// A board of friends: these players only (at most 100 ids, comma-separated; those not on the
    /// board left out), each with their rank on the whole season, in rank order; `limit` and
    /// `offset` page them as they page the board.
    #[param(inline)]
    players: Option<Players>,
}

/// The parameters of a player's standing in a season.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeasonPlayerQuery {
    /// The season, as on the board's page; the current one by default.
    season: Option<String>,
    /// Read your writes, as on the board's page.
    #[param(inline)]
    min_position: Option<Position>,
}

/// The parameters of a player's neighbourhood in a season.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AroundQuery {
    /// The season, as on the board's page; the current one by default.
    season: Option<String>,
    /// Read your writes, as on the board's page.
    #[param(inline)]
    min_position: Option<Position>,
    /// How many entries on each side of the player (0 … 50).
    #[param(inline)]
    radius: Option<Radius>,
}

/// The `board` and `player_id` of a path.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BoardPath {
    /// The board's id (a key of `BOARDS`, or `global`).
    #[param(pattern = "^[a-z0-9_-]{1,64}$")]
    #[allow(dead_code)]
    board: String,
}

/// A season of a board, as the endpoints read it: the live one, or a past (or future) one read
/// from the read model (and kept while it is asked for).
enum Shown {
    Live(Arc<LiveBoard>),
    Read(Arc<Board>),
}

impl Shown {
    fn read<T>(&self, f: impl FnOnce(&Board) -> T) -> T {
        match self {
            Self::Live(live) => live.read(f),
            Self::Read(board) => f(board),
        }
    }
}

impl<S: EventStore, R: LeaderboardStore> Reader<S, R> {
    /// The season asked for of board `id`, once the board has folded `min_position`; a season
    /// other than the live one is a read of the database for `client`.
    async fn season_of(
        &self,
        client: std::net::IpAddr,
        id: &str,
        season: Option<&str>,
        min_position: Option<u64>,
    ) -> Result<(String, Season, Shown), QueryError> {
        let (def, live) = self.boards.get(id).ok_or_else(|| QueryError::UnknownBoard(id.to_string()))?;
        if !live.is_loaded() && self.live.is_loaded() {
            return Err(QueryError::BoardNotReady(id.to_string()));
        }
        let season = match season {
            None => live.season(),
            Some(text) => Season::parse(def.season, text).map_err(|e| QueryError::InvalidRequest(e.to_string()))?,
        };
        self.ready_on(live, min_position).await?;
        if season == live.season() {
            return Ok((def.id.to_string(), season, Shown::Live(live.clone())));
        }
        let read = async || {
            let _reading = self.admit(client, Cost::Heavy)?;
            let (read_model, def) = (self.read_model.clone(), def.clone());
            self.apart.run(async move { Ok(read_season(&*read_model, &def, season).await?) }).await
        };
        let board =
            self.kept.season(id, season, read).await?.ok_or_else(|| QueryError::BoardNotReady(id.to_string()))?;
        Ok((def.id.to_string(), season, Shown::Read(board)))
    }
}

/// A board and its current season.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BoardInfo {
    id: String,
    /// The actions that count; `null`: all of them.
    actions: Option<Vec<String>>,
    /// How a player's awards make their score: `sum`, `best` (their highest), `min` (their
    /// lowest, ranked lowest first: a time) or `last` (their latest).
    #[schema(example = "sum")]
    aggregate: &'static str,
    season: SeasonInfo,
}

/// A board's kind of season and the current one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeasonInfo {
    /// `all-time`, `daily`, `weekly` (ISO weeks) or `monthly`, in UTC.
    kind: &'static str,
    /// The current season's id, e.g. `2026-W48`.
    #[schema(value_type = String)]
    current: Season,
    /// When it started (`null` for all time).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    starts_at: Option<OffsetDateTime>,
    /// When the next starts (`null` for all time).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    ends_at: Option<OffsetDateTime>,
}

/// The answer to `GET /v1/boards`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BoardList {
    boards: Vec<BoardInfo>,
}

/// Every board, `global` first, with its current season.
#[utoipa::path(get, path = "/v1/boards", tag = "boards",
    responses((status = 200, description = "The boards", body = BoardList)))]
pub async fn list<S: EventStore, R: LeaderboardStore>(State(reader): State<Reader<S, R>>) -> Json<BoardList> {
    let boards = reader
        .boards
        .definitions()
        .iter()
        .map(|def| {
            let held = reader.boards.get(def.id.as_str()).map(|(_, live)| live.season());
            let current = held.into_iter().fold(reader.boards.current(def), Season::max);
            BoardInfo {
                id: def.id.to_string(),
                actions: def.actions.as_ref().map(|a| a.iter().map(ToString::to_string).collect()),
                aggregate: def.aggregate.as_str(),
                season: SeasonInfo {
                    kind: def.season.as_str(),
                    current,
                    starts_at: current.starts_at(),
                    ends_at: current.ends_at(),
                },
            }
        })
        .collect();
    Json(BoardList { boards })
}

/// The answer to `GET /v1/boards/{board}/leaderboard`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeasonPage {
    board: String,
    #[schema(value_type = String)]
    season: Season,
    entries: Vec<Entry>,
    position: u64,
    total_players: u64,
}

fn board_path(path: Result<Path<String>, PathRejection>) -> Result<String, QueryError> {
    path.map(|Path(board)| board).map_err(|rejection| QueryError::InvalidRequest(rejection.body_text()))
}

/// A page of one season of a board, ranked as `/v1/leaderboard` is.
#[utoipa::path(get, path = "/v1/boards/{board}/leaderboard", tag = "boards", operation_id = "board_leaderboard",
    params(BoardPath, SeasonPageQuery),
    responses(
        (status = 200, description = "A page of the season (empty for a season without events)", body = SeasonPage),
        (status = 404, description = "No such board (`unknown_board`), or `min_position` far beyond the log (`unknown_position`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn leaderboard<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    path: Result<Path<String>, PathRejection>,
    Strict(query): Strict<SeasonPageQuery>,
) -> Result<Response, QueryError> {
    let id = board_path(path)?;
    let (limit, offset) = (Limit::or_default(query.limit) as usize, Offset::or_default(query.offset) as usize);
    let (board, season, shown) =
        reader.season_of(client, &id, query.season.as_deref(), query.min_position.map(Position::get)).await?;
    if let Some(players) = &query.players {
        return Ok(Json(shown.read(|b| SeasonPage {
            board,
            season,
            entries: b.among(players.ids()).into_iter().skip(offset).take(limit).map(Entry::from).collect(),
            position: b.position(),
            total_players: b.len() as u64,
        }))
        .into_response());
    }
    if let (Shown::Live(live), 0) = (&shown, offset) {
        // The top of the live season: the bytes its live streams send, encoded once per change.
        return Ok(json(live.snapshot().body(limit, true).bytes()));
    }
    Ok(Json(shown.read(|b| SeasonPage {
        board,
        season,
        entries: b.page(offset, limit).into_iter().map(Entry::from).collect(),
        position: b.position(),
        total_players: b.len() as u64,
    }))
    .into_response())
}

/// The answer to `GET /v1/boards/{board}/players/{player_id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SeasonStandingView {
    board: String,
    #[schema(value_type = String)]
    season: Season,
    player_id: String,
    name: Option<String>,
    score: u64,
    rank: u64,
    position: u64,
}

/// The path of a player on a board.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BoardPlayerPath {
    /// The board's id.
    #[param(pattern = "^[a-z0-9_-]{1,64}$")]
    #[allow(dead_code)]
    board: String,
    /// The player's id.
    #[param(pattern = "^[A-Za-z0-9_.:@-]{1,64}$")]
    #[allow(dead_code)]
    player_id: String,
}

fn board_player(path: Result<Path<(String, String)>, PathRejection>) -> Result<(String, events::PlayerId), QueryError> {
    let Path((board, player)) = path.map_err(|rejection| QueryError::InvalidRequest(rejection.body_text()))?;
    let player = events::PlayerId::parse(&player).map_err(|error| QueryError::InvalidRequest(error.to_string()))?;
    Ok((board, player))
}

/// A player's score and rank in one season of a board.
#[utoipa::path(get, path = "/v1/boards/{board}/players/{player_id}", tag = "boards", operation_id = "board_player",
    params(BoardPlayerPath, SeasonPlayerQuery),
    responses(
        (status = 200, description = "The player's standing", body = SeasonStandingView),
        (status = 404, description = "No such board (`unknown_board`), `min_position` far beyond the log (`unknown_position`), or the player has no standing in the season \
            (`unknown_player`)", body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn player<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    path: Result<Path<(String, String)>, PathRejection>,
    Strict(query): Strict<SeasonPlayerQuery>,
) -> Result<Json<SeasonStandingView>, QueryError> {
    let (id, player) = board_player(path)?;
    let (board, season, shown) =
        reader.season_of(client, &id, query.season.as_deref(), query.min_position.map(Position::get)).await?;
    shown.read(|b| {
        let ranked = b.ranked(player.as_str()).ok_or_else(|| QueryError::UnknownPlayer(player.to_string()))?;
        Ok(Json(SeasonStandingView {
            board,
            season,
            player_id: player.to_string(),
            name: ranked.standing.name.as_ref().map(ToString::to_string),
            score: ranked.standing.score,
            rank: ranked.rank,
            position: b.position(),
        }))
    })
}

/// The answer to `GET /v1/boards/{board}/players/{player_id}/around`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Around {
    board: String,
    #[schema(value_type = String)]
    season: Season,
    player_id: String,
    /// The entries around the player, the player's among them, in rank order.
    entries: Vec<Entry>,
    position: u64,
    total_players: u64,
}

/// The `2·radius + 1` entries centred on a player (fewer at the board's ends), ranked as the
/// board is.
#[utoipa::path(get, path = "/v1/boards/{board}/players/{player_id}/around", tag = "boards",
    params(BoardPlayerPath, AroundQuery),
    responses(
        (status = 200, description = "The player's neighbourhood on the board", body = Around),
        (status = 404, description = "No such board (`unknown_board`), `min_position` far beyond the log (`unknown_position`), or the player has no standing in the season \
            (`unknown_player`)", body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn around<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    path: Result<Path<(String, String)>, PathRejection>,
    Strict(query): Strict<AroundQuery>,
) -> Result<Json<Around>, QueryError> {
    let (id, player) = board_player(path)?;
    let radius = Radius::or_default(query.radius) as usize;
    let (board, season, shown) =
        reader.season_of(client, &id, query.season.as_deref(), query.min_position.map(Position::get)).await?;
    shown.read(|b| {
        let entries = b.around(player.as_str(), radius).ok_or_else(|| QueryError::UnknownPlayer(player.to_string()))?;
        Ok(Json(Around {
            board,
            season,
            player_id: player.to_string(),
            entries: entries.into_iter().map(Entry::from).collect(),
            position: b.position(),
            total_players: b.len() as u64,
        }))
    })
}

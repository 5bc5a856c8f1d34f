//! Boards and seasons on the read side: the current season of every board is held in memory
//! (a [`LiveBoard`] each, kept current from the same changes as `global`), past seasons are read
//! from the read model when asked for, and a board starts its new season when the clock reaches
//! it, whether or not anyone has played since.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use events::boards::{BoardDef, Boards, Season, SeasonStanding};
use events::{Board, BoardChange, Standing};
use platform::Problem;
use platform::openapi::PROBLEM_JSON;
use serde::{Deserialize, Serialize};
use store::{EventStore, LeaderboardStore, StoreError};
use time::OffsetDateTime;

use crate::api::{QueryError, Reader, Strict, board_limit, integer, min_position};
use crate::live::{Entry, LiveBoard};

/// Where a query side reads the time: the system's, or one a test sets.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that shows what it was last set to: for tests, which must never sleep until midnight.
#[derive(Debug, Clone)]
pub struct SetClock(Arc<Mutex<OffsetDateTime>>);

impl SetClock {
    /// A clock showing `now`.
    pub fn new(now: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(now)))
    }

    /// Shows `now` from now on.
    pub fn set(&self, now: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = now;
    }
}

impl Clock for SetClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Every board a query side serves: `global`, and the current season of each other board.
pub struct LiveBoards {
    definitions: Boards,
    boards: BTreeMap<String, Arc<LiveBoard>>,
    clock: Arc<dyn Clock>,
}

impl LiveBoards {
    /// The boards `definitions`, none loaded yet, their seasons by `clock`.
    pub fn new(definitions: Boards, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        let boards = definitions
            .iter()
            .map(|def| (def.id.to_string(), Arc::new(LiveBoard::new(def.id.as_str(), def.season_of(now)))))
            .collect();
        Self { definitions, boards, clock }
    }

    /// `global`.
    pub fn global(&self) -> &Arc<LiveBoard> {
        &self.boards[events::boards::GLOBAL]
    }

    /// The board `id`, with its definition.
    pub fn get(&self, id: &str) -> Option<(&BoardDef, &Arc<LiveBoard>)> {
        Some((self.definitions.get(id)?, self.boards.get(id)?))
    }

    /// The boards other than `global`, with their definitions.
    fn named(&self) -> impl Iterator<Item = (&BoardDef, &Arc<LiveBoard>)> {
        self.definitions.named().iter().map(|def| (def, &self.boards[def.id.as_str()]))
    }

    /// The season of `def` the clock is in.
    pub fn current(&self, def: &BoardDef) -> Season {
        def.season_of(self.clock.now())
    }

    /// Loads the current season of every board other than `global` (the newer of the clock's
    /// and the one held); a board the read model is still building is not served. Players'
    /// ids and names are shared with `global` (just loaded), so each is held once, whatever
    /// the number of boards.
    pub(crate) async fn load_named<R: LeaderboardStore>(
        &self,
        read_model: &R,
        global: &Board,
    ) -> Result<(), StoreError> {
        let wanted: Vec<(String, Season)> =
            self.named().map(|(def, live)| (def.id.to_string(), self.current(def).max(live.season()))).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let loaded = read_model.load_seasons(&wanted).await?;
        let (ready, position) = (loaded.ready, loaded.anchor.position);
        let mut by_board: BTreeMap<String, Vec<Standing>> = BTreeMap::new();
        for mut standing in loaded.standings {
            share_ids(global, &mut standing.standing);
            by_board.entry(standing.board.to_string()).or_default().push(standing.standing);
        }
        for ((def, live), (_, season)) in self.named().zip(&wanted) {
            let standings = by_board.remove(def.id.as_str()).unwrap_or_default();
            hold(def, live, *season, &ready, Board::from_standings(position, standings));
        }
        Ok(())
    }

    /// Applies `global`'s `change` and the `seasons` changed with it to the other boards; a board
    /// shown a season newer than its own starts that season. `Err` when a board missed changes,
    /// or its new season could not be read: reload.
    pub(crate) async fn apply<R: LeaderboardStore>(
        &self,
        change: &BoardChange,
        seasons: &[SeasonStanding],
        read_model: &R,
    ) -> anyhow::Result<()> {
        for (def, live) in self.named().filter(|(_, live)| live.is_loaded()) {
            let held = live.season();
            let mine = seasons.iter().filter(|s| s.board == def.id);
            match mine.clone().map(|s| s.season).max() {
                Some(newer) if newer > held => roll(def, live, newer, read_model).await?,
                _ => live.apply(&BoardChange {
                    from: change.from,
                    to: change.to,
                    standings: mine.filter(|s| s.season == held).map(|s| s.standing.clone()).collect(),
                })?,
            }
        }
        Ok(())
    }

    /// Starts the new season of every board whose season the clock has left. `Err` when the read
    /// model could not be read: reload.
    pub(crate) async fn roll_over<R: LeaderboardStore>(&self, read_model: &R) -> Result<(), StoreError> {
        for (def, live) in self.named().filter(|(_, live)| live.is_loaded()) {
            let now = self.current(def);
            if now > live.season() {
                roll(def, live, now, read_model).await?;
            }
        }
        Ok(())
    }
}

/// Makes `live` hold `season` of `def`, as `loaded` has it (or not served, if the read model
/// does not have `def` ready).
fn hold(def: &BoardDef, live: &LiveBoard, season: Season, ready: &BTreeMap<String, String>, board: Board) {
    if ready.get(def.id.as_str()) == Some(&def.definition()) {
        live.replace_season(season, board);
    } else {
        live.unload();
    }
}

/// Makes `standing` hold the id (and the name, when the same) `global` holds for its player.
fn share_ids(global: &Board, standing: &mut Standing) {
    if let Some(shared) = global.standing_of(standing.player_id.as_str()) {
        standing.player_id = shared.player_id.clone();
        if standing.name == shared.name {
            standing.name.clone_from(&shared.name);
        }
    }
}

/// Starts `season` of `def` on `live`, read from the read model.
async fn roll<R: LeaderboardStore>(
    def: &BoardDef,
    live: &LiveBoard,
    season: Season,
    read_model: &R,
) -> Result<(), StoreError> {
    match read_season(read_model, def, season).await? {
        Some(board) => live.replace_season(season, board),
        None => live.unload(),
    }
    tracing::info!(board = %def.id, %season, "a new season started");
    Ok(())
}

/// `season` of `def`, read from the read model; `None` while the read model is building `def`
/// (or holds it defined otherwise).
async fn read_season<R: LeaderboardStore>(
    read_model: &R,
    def: &BoardDef,
    season: Season,
) -> Result<Option<Board>, StoreError> {
    let loaded = read_model.load_seasons(&[(def.id.to_string(), season)]).await?;
    if loaded.ready.get(def.id.as_str()) != Some(&def.definition()) {
        return Ok(None);
    }
    let standings = loaded.standings.into_iter().map(|s| s.standing);
    Ok(Some(Board::from_standings(loaded.anchor.position, standings)))
}

/// The parameters of a board's endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeasonQuery {
    /// The season: `all-time`, `2026-11-23`, `2026-W48` or `2026-11`, as the board restarts;
    /// the current one by default.
    season: Option<String>,
    /// How many entries to show.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 10)]
    limit: Option<String>,
    /// How many entries to skip from the top.
    #[param(value_type = Option<u32>, minimum = 0, default = 0)]
    offset: Option<String>,
    /// Read your writes: wait (bounded) until the board has folded this position, else
    /// `503 projection_lagging`.
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    min_position: Option<String>,
    /// Around a player: how many entries on each side (0 … 50).
    #[param(value_type = Option<u32>, minimum = 0, maximum = 50, default = 5)]
    radius: Option<String>,
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
/// from the read model.
enum Shown {
    Live(Arc<LiveBoard>),
    Read(Board),
}

impl Shown {
    fn read<T>(&self, f: impl FnOnce(&Board) -> T) -> T {
        match self {
            Self::Live(live) => live.read(f),
            Self::Read(board) => f(board),
        }
    }
}

impl<S, R: LeaderboardStore> Reader<S, R> {
    /// The season asked for of board `id`, once the board has folded `min_position`.
    async fn season_of(
        &self,
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
        let board = read_season(&*self.read_model, def, season)
            .await?
            .ok_or_else(|| QueryError::BoardNotReady(id.to_string()))?;
        Ok((def.id.to_string(), season, Shown::Read(board)))
    }
}

/// A board and its current season.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BoardInfo {
    id: String,
    /// The actions that count; `null`: all of them.
    actions: Option<Vec<String>>,
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
        .definitions
        .iter()
        .map(|def| {
            let current = reader.boards.boards[def.id.as_str()].season().max(reader.boards.current(def));
            BoardInfo {
                id: def.id.to_string(),
                actions: def.actions.as_ref().map(|a| a.iter().map(ToString::to_string).collect()),
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
#[utoipa::path(get, path = "/v1/boards/{board}/leaderboard", tag = "boards", params(BoardPath, SeasonQuery),
    responses(
        (status = 200, description = "A page of the season (empty for a season without events)", body = SeasonPage),
        (status = 404, description = "No such board (`unknown_board`)", body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn leaderboard<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    path: Result<Path<String>, PathRejection>,
    Strict(query): Strict<SeasonQuery>,
) -> Result<Json<SeasonPage>, QueryError> {
    let id = board_path(path)?;
    let limit = board_limit(query.limit.as_deref())?;
    let offset = integer("offset", query.offset.as_deref(), 0, 0..=u32::MAX as u64)? as usize;
    refuse(query.radius.as_deref(), "radius")?;
    let (board, season, shown) =
        reader.season_of(&id, query.season.as_deref(), min_position(query.min_position.as_deref())?).await?;
    Ok(Json(shown.read(|b| SeasonPage {
        board,
        season,
        entries: b.page(offset, limit).into_iter().map(Entry::from).collect(),
        position: b.position(),
        total_players: b.len() as u64,
    })))
}

/// A parameter that means nothing on this endpoint.
fn refuse(given: Option<&str>, name: &str) -> Result<(), QueryError> {
    match given {
        Some(_) => Err(QueryError::InvalidRequest(format!("{name} means nothing here"))),
        None => Ok(()),
    }
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
#[utoipa::path(get, path = "/v1/boards/{board}/players/{player_id}", tag = "boards",
    params(BoardPlayerPath, SeasonQuery),
    responses(
        (status = 200, description = "The player's standing", body = SeasonStandingView),
        (status = 404, description = "No such board (`unknown_board`), or the player has no standing in the season \
            (`unknown_player`)", body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn player<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    path: Result<Path<(String, String)>, PathRejection>,
    Strict(query): Strict<SeasonQuery>,
) -> Result<Json<SeasonStandingView>, QueryError> {
    let (id, player) = board_player(path)?;
    for (given, name) in [(&query.limit, "limit"), (&query.offset, "offset"), (&query.radius, "radius")] {
        refuse(given.as_deref(), name)?;
    }
    let (board, season, shown) =
        reader.season_of(&id, query.season.as_deref(), min_position(query.min_position.as_deref())?).await?;
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

/// The most entries "around me" shows on each side of the player.
pub const MAX_RADIUS: u64 = 50;

/// The `2·radius + 1` entries centred on a player (fewer at the board's ends), ranked as the
/// board is.
#[utoipa::path(get, path = "/v1/boards/{board}/players/{player_id}/around", tag = "boards",
    params(BoardPlayerPath, SeasonQuery),
    responses(
        (status = 200, description = "The player's neighbourhood on the board", body = Around),
        (status = 404, description = "No such board (`unknown_board`), or the player has no standing in the season \
            (`unknown_player`)", body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn around<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    path: Result<Path<(String, String)>, PathRejection>,
    Strict(query): Strict<SeasonQuery>,
) -> Result<Json<Around>, QueryError> {
    let (id, player) = board_player(path)?;
    let radius = integer("radius", query.radius.as_deref(), 5, 0..=MAX_RADIUS)? as usize;
    for (given, name) in [(&query.limit, "limit"), (&query.offset, "offset")] {
        refuse(given.as_deref(), name)?;
    }
    let (board, season, shown) =
        reader.season_of(&id, query.season.as_deref(), min_position(query.min_position.as_deref())?).await?;
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

/// `404 unknown_board`.
pub(crate) fn unknown_board(detail: String) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "unknown_board", "Unknown board").with_detail(detail)
}

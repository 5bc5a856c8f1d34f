//! The read endpoints: the board, a player's standing, and the audit log.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use events::PlayerId;
use platform::Problem;
use platform::openapi::PROBLEM_JSON;
pub use platform::params::Strict;
use serde::{Deserialize, Serialize};
use store::{EventStore, LeaderboardStore, StoreError};

use crate::boards::LiveBoards;
use crate::live::{Entry, LiveBoard, MAX_LIMIT};
use crate::past;

/// What the read endpoints share; cloned for every request, so every field is shared, not copied
/// (the stores' own clones allocate: the read model's copy of the boards and rules, say).
pub struct Reader<S, R> {
    /// The in-memory board (`global`).
    pub live: Arc<LiveBoard>,
    /// Every board, `global` among them.
    pub boards: Arc<LiveBoards>,
    /// The event log, for the audit endpoints and past boards.
    pub log: Arc<S>,
    /// The read model's snapshots of the fold, for past boards.
    pub read_model: Arc<R>,
    /// How long `min_position` may wait.
    pub read_your_writes_timeout: Duration,
}

impl<S, R> Clone for Reader<S, R> {
    fn clone(&self) -> Self {
        Self {
            live: self.live.clone(),
            boards: self.boards.clone(),
            log: self.log.clone(),
            read_model: self.read_model.clone(),
            read_your_writes_timeout: self.read_your_writes_timeout,
        }
    }
}

/// Every way a read can fail.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A query parameter or path segment of the wrong form.
    #[error("{0}")]
    InvalidRequest(String),
    /// No such player on the board.
    #[error("player {0:?} has no standing")]
    UnknownPlayer(String),
    /// No such board.
    #[error("there is no board {0:?}; GET /v1/boards lists them")]
    UnknownBoard(String),
    /// A tree size beyond the log's: what was asked for, and the log's.
    #[error("a tree of {0} events is beyond the log, which holds {1}")]
    UnknownTreeSize(u64, u64),
    /// A tile resource the tree does not have (yet).
    #[error("the tree has no tile {0:?} (yet)")]
    UnknownTile(String),
    /// A position beyond the log: what was asked for, and the log's head.
    #[error("position {0} is beyond the log, which holds {1} events")]
    UnknownPosition(u64, u64),
    /// Nothing of the kind exists yet (no checkpoint signed).
    #[error("{0}")]
    NotYet(&'static str),
    /// The board did not reach `min_position` in time.
    #[error("the leaderboard has not folded position {0} yet")]
    ProjectionLagging(u64),
    /// The board was not loaded yet.
    #[error("the leaderboard is still loading")]
    Loading,
    /// A board the read model is still building from the log (or holds with another definition).
    #[error("board {0:?} is being built from the log; retry")]
    BoardNotReady(String),
    /// The event log could not be read.
    #[error("event log")]
    Store(#[from] StoreError),
    /// The client's address used its read budget.
    #[error("too many requests")]
    RateLimited(Duration),
    /// No live stream can be opened now.
    #[error("{0}")]
    TooManyStreams(&'static str),
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let detail = self.to_string();
        let problem = match self {
            Self::InvalidRequest(_) => Problem::invalid_request(detail),
            Self::UnknownPlayer(_) => {
                Problem::new(StatusCode::NOT_FOUND, "unknown_player", "Unknown player").with_detail(detail)
            }
            Self::UnknownBoard(_) => crate::boards::unknown_board(detail),
            Self::NotYet(_) => {
                Problem::new(StatusCode::NOT_FOUND, "no_checkpoint", "Nothing signed yet").with_detail(detail)
            }
            Self::UnknownPosition(..) => {
                Problem::new(StatusCode::NOT_FOUND, "unknown_position", "No such position").with_detail(detail)
            }
            Self::UnknownTile(_) => {
                Problem::new(StatusCode::NOT_FOUND, "unknown_tile", "No such tile").with_detail(detail)
            }
            Self::UnknownTreeSize(..) => {
                Problem::new(StatusCode::NOT_FOUND, "unknown_tree_size", "No such tree").with_detail(detail)
            }
            Self::ProjectionLagging(_) => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "projection_lagging", "The leaderboard is behind")
                    .with_detail(format!("{detail}; retry, or ask without min_position"))
                    .with_retry_after(Duration::from_secs(1))
            }
            Self::Loading | Self::BoardNotReady(_) | Self::TooManyStreams(_) => Problem::unavailable(detail),
            Self::RateLimited(wait) => Problem::rate_limited(wait),
            Self::Store(error) if error.is_unavailable() => Problem::unavailable("the event log cannot be reached"),
            Self::Store(error) => {
                tracing::error!(error.message = %error, error.chain = ?error, "reading the event log failed");
                Problem::internal()
            }
        };
        problem.into_response()
    }
}

/// An integer parameter within `range`, or `default` when absent.
pub fn integer(
    name: &str,
    text: Option<&str>,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, QueryError> {
    let Some(text) = text else { return Ok(default) };
    match text.parse::<u64>() {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(QueryError::InvalidRequest(format!(
            "{name} must be an integer from {} to {}, got {text:?}",
            range.start(),
            range.end()
        ))),
    }
}

/// `limit` of a board or stream: 1 … 100, default 10.
pub fn board_limit(text: Option<&str>) -> Result<usize, QueryError> {
    Ok(integer("limit", text, 10, 1..=MAX_LIMIT as u64)? as usize)
}

/// `min_position`, if given.
pub fn min_position(text: Option<&str>) -> Result<Option<u64>, QueryError> {
    text.map(|text| integer("min_position", Some(text), 0, 0..=i64::MAX as u64)).transpose()
}

/// The parameters of `GET /v1/leaderboard`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BoardQuery {
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
    /// The board exactly as it stood after the event at this position (`0`: before any).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    as_of_position: Option<String>,
    /// The board as it stood after the last event recorded at or before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    as_of: Option<String>,
}

/// The parameters of `GET /v1/players/{player_id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlayerQuery {
    /// Read your writes, as on `GET /v1/leaderboard`.
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    min_position: Option<String>,
}

/// The parameters of the audit log pages.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Events after this position (the previous page's `next_after`).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 9_223_372_036_854_775_807_i64, default = 0)]
    after: Option<String>,
    /// How many events at most.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    limit: Option<String>,
}

/// The `player_id` of a path: 1–64 ASCII letters, digits and `_.:@-`.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PlayerPath {
    /// The player's id, as the token's `sub` named it.
    #[param(pattern = "^[A-Za-z0-9_.:@-]{1,64}$")]
    #[allow(dead_code)]
    player_id: String,
}

impl<S, R> Reader<S, R> {
    /// Waits for read-your-writes, then checks the board is loaded at all.
    async fn ready_for(&self, min_position: Option<u64>) -> Result<(), QueryError> {
        self.ready_on(&self.live, min_position).await
    }

    /// Waits for read-your-writes on `live`, then checks it is loaded at all.
    pub(crate) async fn ready_on(&self, live: &LiveBoard, min_position: Option<u64>) -> Result<(), QueryError> {
        if let Some(position) = min_position
            && !live.wait_for(position, self.read_your_writes_timeout).await
        {
            metrics::counter!("query_projection_lagging_total").increment(1);
            return Err(QueryError::ProjectionLagging(position));
        }
        if !live.is_loaded() {
            return Err(QueryError::Loading);
        }
        Ok(())
    }
}

/// The answer to `GET /v1/leaderboard`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    entries: Vec<Entry>,
    position: u64,
    total_players: u64,
}

/// The top of the board: `limit` entries from rank `offset + 1`, ties broken by who reached the
/// score first.
#[utoipa::path(get, path = "/v1/leaderboard", tag = "leaderboard", params(BoardQuery),
    responses(
        (status = 200, description = "A page of the board, now or as it stood at a past position or time", body = Page),
        (status = 404, description = "`as_of_position` is beyond the log (`unknown_position`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn leaderboard<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    Strict(query): Strict<BoardQuery>,
) -> Result<Json<Page>, QueryError> {
    let limit = board_limit(query.limit.as_deref())?;
    let offset = integer("offset", query.offset.as_deref(), 0, 0..=u32::MAX as u64)? as usize;
    if let Some(position) = past_position(&*reader.log, &query).await? {
        let head = reader.log.head().await?;
        if position > head {
            return Err(QueryError::UnknownPosition(position, head));
        }
        let past = past::board_at(&*reader.log, &*reader.read_model, position).await?;
        return Ok(Json(Page {
            entries: past.page(offset, limit).into_iter().map(Entry::from).collect(),
            position: past.position(),
            total_players: past.len() as u64,
        }));
    }
    reader.ready_for(min_position(query.min_position.as_deref())?).await?;
    Ok(Json(reader.live.read(|board| Page {
        entries: board.page(offset, limit).into_iter().map(Entry::from).collect(),
        position: board.position(),
        total_players: board.len() as u64,
    })))
}

/// The position a past board is asked for with (`as_of_position` or `as_of`), if one is.
async fn past_position<S: EventStore>(log: &S, query: &BoardQuery) -> Result<Option<u64>, QueryError> {
    let position = match (query.as_of_position.as_deref(), query.as_of.as_deref()) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(QueryError::InvalidRequest("give as_of_position or as_of, not both".into()));
        }
        (Some(text), None) => integer("as_of_position", Some(text), 0, 0..=i64::MAX as u64)?,
        (None, Some(text)) => {
            let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map_err(|_| QueryError::InvalidRequest(format!("as_of must be an RFC 3339 time, got {text:?}")))?;
            log.position_at(time).await?
        }
    };
    if query.min_position.is_some() {
        return Err(QueryError::InvalidRequest("min_position means nothing for a past board".into()));
    }
    Ok(Some(position))
}

/// The answer to `GET /v1/players/{player_id}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlayerStanding {
    player_id: String,
    name: Option<String>,
    score: u64,
    rank: u64,
    position: u64,
}

/// The player id of the path, as written and parsed.
fn player_id(path: Result<Path<String>, PathRejection>) -> Result<(String, PlayerId), QueryError> {
    let Path(raw) = path.map_err(|rejection| QueryError::InvalidRequest(rejection.body_text()))?;
    let player = PlayerId::parse(&raw).map_err(|error| QueryError::InvalidRequest(error.to_string()))?;
    Ok((raw, player))
}

/// A player's score and rank.
#[utoipa::path(get, path = "/v1/players/{player_id}", tag = "leaderboard", params(PlayerPath, PlayerQuery),
    responses(
        (status = 200, description = "The player's standing", body = PlayerStanding),
        (status = 404, description = "The player has no standing (`unknown_player`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn player<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    path: Result<Path<String>, PathRejection>,
    Strict(query): Strict<PlayerQuery>,
) -> Result<Json<PlayerStanding>, QueryError> {
    let (raw, player) = player_id(path)?;
    reader.ready_for(min_position(query.min_position.as_deref())?).await?;
    reader.live.read(|board| {
        let ranked = board.ranked(player.as_str()).ok_or_else(|| QueryError::UnknownPlayer(raw.clone()))?;
        Ok(Json(PlayerStanding {
            player_id: ranked.standing.player_id.to_string(),
            name: ranked.standing.name.as_ref().map(ToString::to_string),
            score: ranked.standing.score,
            rank: ranked.rank,
            position: board.position(),
        }))
    })
}

/// A page of the audit log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    events: Vec<AuditedEvent>,
    /// Pass as `after` to read the next page (the last position of this one).
    next_after: u64,
}

/// An event of the log with what its leaf in the Merkle tree is made of.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditedEvent {
    #[serde(flatten)]
    event: events::RecordedEvent,
    /// The exact bytes its leaf hashes, as stored: `{"position","type","version","data"}` with
    /// the payload byte for byte.
    entry: String,
    /// The leaf hash the tree holds for it (hex): `SHA-256(0x00 ‖ entry)` unless the log was
    /// altered after it was written.
    leaf_hash: Option<String>,
}

const MAX_EVENTS: u64 = 1000;

async fn event_page<S: EventStore>(
    log: &S,
    query: &LogQuery,
    read: impl AsyncFnOnce(u64, u32) -> Result<Vec<store::StoredEvent>, StoreError>,
) -> Result<Json<EventPage>, QueryError> {
    let after = integer("after", query.after.as_deref(), 0, 0..=i64::MAX as u64)?;
    let limit = integer("limit", query.limit.as_deref(), 100, 1..=MAX_EVENTS)? as u32;
    let stored = read(after, limit).await?;
    let leaves: Vec<audit::Node> = stored.iter().map(|e| audit::leaf_node(e.position)).collect();
    let hashes = log.read_nodes(&leaves).await?;
    let events = stored
        .iter()
        .zip(&leaves)
        .map(|(e, leaf)| {
            Ok(AuditedEvent { event: e.decoded()?, entry: e.entry(), leaf_hash: hashes.get(leaf).map(hex::encode) })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let next_after = stored.last().map_or(after, |e| e.position);
    Ok(Json(EventPage { events, next_after }))
}

/// The global log, in order: the events after position `after`.
#[utoipa::path(get, path = "/v1/events", tag = "audit", params(LogQuery),
    responses((status = 200, description = "A page of the log", body = EventPage)))]
pub async fn log<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    Strict(query): Strict<LogQuery>,
) -> Result<Json<EventPage>, QueryError> {
    event_page(&*reader.log, &query, async |after, limit| reader.log.read_after(after, limit).await).await
}

/// One player's history: the events about them after position `after`, in order.
#[utoipa::path(get, path = "/v1/players/{player_id}/events", tag = "audit", params(PlayerPath, LogQuery),
    responses((status = 200, description = "A page of the player's history (empty for an unknown player)",
        body = EventPage)))]
pub async fn player_log<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    path: Result<Path<String>, PathRejection>,
    Strict(query): Strict<LogQuery>,
) -> Result<Json<EventPage>, QueryError> {
    let (_, player) = player_id(path)?;
    event_page(&*reader.log, &query, async |after, limit| reader.log.read_player(player.as_str(), after, limit).await)
        .await
}

//! The board now or at a past position, and a player's standing on it.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use events::PlayerId;
use platform::Problem;
use platform::client::ClientIp;
use platform::openapi::PROBLEM_JSON;
use serde::{Deserialize, Serialize};
use store::{EventStore, LeaderboardStore};

use crate::admission::Cost;
use crate::error::QueryError;
use crate::live::Entry;
use crate::params::{Limit, Offset, Players, Position, Strict};
use crate::past;
use crate::state::{Reader, json};

/// The parameters of `GET /v1/leaderboard`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BoardQuery {
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
    /// The board exactly as it stood after the event at this position (`0`: before any).
    #[param(inline)]
    as_of_position: Option<Position>,
    /// The board as it stood after the last event recorded at or before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    as_of: Option<String>,
    /// A board of friends: these players only (at most 100 ids, comma-separated; those not on the
    /// board left out), each with their rank on the whole board, in rank order; `limit` and
    /// `offset` page them as they page the board. The live board only (not with `as_of`).
    #[param(inline)]
    players: Option<Players>,
}

/// The parameters of `GET /v1/players/{player_id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlayerQuery {
    /// Read your writes, as on `GET /v1/leaderboard`.
    #[param(inline)]
    min_position: Option<Position>,
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
        (status = 404, description = "`as_of_position` is beyond the log, or `min_position` far beyond it (`unknown_position`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn leaderboard<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    Strict(query): Strict<BoardQuery>,
) -> Result<Response, QueryError> {
    let (limit, offset) = (Limit::or_default(query.limit) as usize, Offset::or_default(query.offset) as usize);
    if let Some(players) = &query.players {
        friends_only(&query)?;
        reader.ready_for(query.min_position.map(Position::get)).await?;
        return Ok(Json(reader.live.read(|board| Page {
            entries: board.among(players.ids()).into_iter().skip(offset).take(limit).map(Entry::from).collect(),
            position: board.position(),
            total_players: board.len() as u64,
        }))
        .into_response());
    }
    if let Some(position) = reader.past_position(client, &query).await? {
        let past = reader
            .kept
            .at(position, async || {
                let _reading = reader.admit(client, Cost::Heavy)?;
                let (log, read_model) = (reader.log.clone(), reader.read_model.clone());
                reader.apart.run(async move { Ok(past::board_at(&*log, &*read_model, position).await?) }).await
            })
            .await?;
        return Ok(Json(Page {
            entries: past.page(offset, limit).into_iter().map(Entry::from).collect(),
            position: past.position(),
            total_players: past.len() as u64,
        })
        .into_response());
    }
    reader.ready_for(query.min_position.map(Position::get)).await?;
    if offset == 0 {
        // The top: the bytes the live streams send, encoded once per change of the board.
        return Ok(json(reader.live.snapshot().body(limit, false).bytes()));
    }
    Ok(Json(reader.live.read(|board| Page {
        entries: board.page(offset, limit).into_iter().map(Entry::from).collect(),
        position: board.position(),
        total_players: board.len() as u64,
    }))
    .into_response())
}

/// `players` asks for a board of friends now: refuses a past board.
fn friends_only(query: &BoardQuery) -> Result<(), QueryError> {
    let others = [(query.as_of_position.is_some(), "as_of_position"), (query.as_of.is_some(), "as_of")];
    match others.into_iter().find(|(given, _)| *given) {
        Some((_, name)) => Err(QueryError::InvalidRequest(format!("{name} means nothing with players"))),
        None => Ok(()),
    }
}

impl<S: EventStore, R> Reader<S, R> {
    /// The position a past board is asked for with (`as_of_position` or `as_of`), if one is;
    /// `404 unknown_position` beyond the log.
    async fn past_position(&self, client: std::net::IpAddr, query: &BoardQuery) -> Result<Option<u64>, QueryError> {
        enum Asked {
            Position(u64),
            Time(time::OffsetDateTime),
        }
        let asked = match (query.as_of_position, query.as_of.as_deref()) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(QueryError::InvalidRequest("give as_of_position or as_of, not both".into()));
            }
            (Some(position), None) => Asked::Position(position.get()),
            (None, Some(text)) => {
                let time = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| QueryError::InvalidRequest(format!("as_of must be an RFC 3339 time, got {text:?}")))?;
                Asked::Time(time)
            }
        };
        if query.min_position.is_some() {
            return Err(QueryError::InvalidRequest("min_position means nothing for a past board".into()));
        }
        let position = match asked {
            Asked::Position(position) => position,
            Asked::Time(time) => {
                let _reading = self.admit(client, Cost::Light)?;
                self.log.position_at(time).await?
            }
        };
        // The board folded it: the log holds it. Beyond, only the log can say.
        if position > self.live.position() {
            let _reading = self.admit(client, Cost::Light)?;
            let head = self.log.head().await?;
            if position > head {
                return Err(QueryError::UnknownPosition(position, head));
            }
        }
        Ok(Some(position))
    }
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
pub(crate) fn player_id(path: Result<Path<String>, PathRejection>) -> Result<(String, PlayerId), QueryError> {
    let Path(raw) = path.map_err(|rejection| QueryError::InvalidRequest(rejection.body_text()))?;
    let player = PlayerId::parse(&raw).map_err(|error| QueryError::InvalidRequest(error.to_string()))?;
    Ok((raw, player))
}

/// A player's score and rank.
#[utoipa::path(get, path = "/v1/players/{player_id}", tag = "leaderboard", params(PlayerPath, PlayerQuery),
    responses(
        (status = 200, description = "The player's standing", body = PlayerStanding),
        (status = 404, description = "The player has no standing (`unknown_player`), or `min_position` is far beyond the log (`unknown_position`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn player<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    path: Result<Path<String>, PathRejection>,
    Strict(query): Strict<PlayerQuery>,
) -> Result<Json<PlayerStanding>, QueryError> {
    let (raw, player) = player_id(path)?;
    reader.ready_for(query.min_position.map(Position::get)).await?;
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

#[cfg(test)]
mod tests {
    use events::{BoardChange, Standing};

    use super::*;
    use crate::live::LiveBoard;

    #[test]
    fn the_top_served_from_the_live_snapshot_is_byte_for_byte_the_page() {
        let live = LiveBoard::default();
        live.replace(events::Board::new());
        let standings = (0..150u64).map(|i| Standing {
            player_id: PlayerId::parse(format!("p{i}")).unwrap(),
            name: (i % 3 == 0).then(|| events::DisplayName::parse(format!("Ann \"{i}\" ✓")).unwrap()),
            score: 1000 - i / 2,
            reached_at: i + 1,
            banned: false,
        });
        live.apply(&BoardChange { from: 0, to: 150, standings: standings.collect() }).unwrap();
        for limit in [1, 10, 100] {
            let page = live.read(|board| Page {
                entries: board.page(0, limit).into_iter().map(Entry::from).collect(),
                position: board.position(),
                total_players: board.len() as u64,
            });
            let body = live.snapshot().body(limit, false);
            assert_eq!(body.bytes(), serde_json::to_vec(&page).unwrap(), "limit {limit}");
            assert_eq!(body.text(), serde_json::to_string(&page).unwrap(), "limit {limit}: the frames' text");
        }
    }
}

//! Moderation: operators ban and unban players and take back points by appending events,
//! through the same group commit as actions, so a ban and an action for the same player are
//! ordered once, under the log's lock, and an action after the ban never counts.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use events::{Event, Moderated, PlayerId, Reason, RevokedAward, ScoreRevoked};
use platform::Problem;
use platform::client::ClientIp;
use platform::openapi::PROBLEM_JSON;
use platform::params::{NoParameters, Strict};
use serde::{Deserialize, Serialize};
use store::{AppendOutcome, NewEvent};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::desk::ActionDesk;
use crate::error::{ActionError, json_object};

/// The body of a ban or unban.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModerationRequest {
    /// Why (1–500 characters), kept in the log for auditors.
    pub reason: String,
}

/// A moderation event, recorded.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModerationRecorded {
    /// The event's id.
    pub event_id: Uuid,
    /// Its position in the log: from here on the moderation holds.
    pub position: u64,
}

/// Bans a player: appends `PlayerBanned`. From its position on the player is on no board, and
/// an action for them is refused with `403 player_banned`.
#[utoipa::path(post, path = "/v1/admin/players/{player_id}/ban", tag = "moderation",
    params(("player_id" = String, Path, description = "The player to ban")),
    request_body(content = ModerationRequest, content_type = "application/json"),
    security(("operator" = [])),
    responses(
        (status = 201, description = "Banned", body = ModerationRecorded),
        (status = 401, description = "No or a wrong operator credential (`unauthorized`)",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The player is banned already (`already_banned`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn ban(
    State(desk): State<ActionDesk>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    player: Result<Path<String>, PathRejection>,
    Strict(NoParameters {}): Strict<NoParameters>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModerationRecorded>), ActionError> {
    moderate(&desk, client, &headers, player, body, Event::PlayerBanned).await
}

/// Unbans a player: appends `PlayerUnbanned`. Their score as it was is back on the boards.
#[utoipa::path(post, path = "/v1/admin/players/{player_id}/unban", tag = "moderation",
    params(("player_id" = String, Path, description = "The player to unban")),
    request_body(content = ModerationRequest, content_type = "application/json"),
    security(("operator" = [])),
    responses(
        (status = 201, description = "Unbanned", body = ModerationRecorded),
        (status = 401, description = "No or a wrong operator credential (`unauthorized`)",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The player is not banned (`not_banned`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn unban(
    State(desk): State<ActionDesk>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    player: Result<Path<String>, PathRejection>,
    Strict(NoParameters {}): Strict<NoParameters>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModerationRecorded>), ActionError> {
    moderate(&desk, client, &headers, player, body, Event::PlayerUnbanned).await
}

/// The body of a revocation: an award's `event_id` or a `player_id`, and a reason.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevocationRequest {
    /// The `ScoreAwarded` event to take back.
    pub event_id: Option<Uuid>,
    /// The player whose points so far are all taken back.
    pub player_id: Option<String>,
    /// Why (1–500 characters), kept in the log for auditors.
    pub reason: String,
}

/// Takes back points: appends `ScoreRevoked` for one award (`event_id`) or for all of a
/// player's points so far (`player_id`).
#[utoipa::path(post, path = "/v1/admin/revocations", tag = "moderation",
    request_body(content = RevocationRequest, content_type = "application/json"),
    security(("operator" = [])),
    responses(
        (status = 201, description = "Taken back", body = ModerationRecorded),
        (status = 401, description = "No or a wrong operator credential (`unauthorized`)",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such award (`unknown_award`) or player (`unknown_player`)",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The award was taken back already (`already_revoked`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn revoke(
    State(desk): State<ActionDesk>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Strict(NoParameters {}): Strict<NoParameters>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ModerationRecorded>), ActionError> {
    let operator = desk.operator(client, &headers)?;
    let request: RevocationRequest =
        json_object(body, "{\"event_id\": \"…\", \"reason\": \"…\"} or {\"player_id\": \"…\", \"reason\": \"…\"}")?;
    let reason = Reason::parse(request.reason).map_err(|e| ActionError::InvalidRequest(e.to_string()))?;
    let history = &desk.history;
    let (player_id, award) = match (request.event_id, request.player_id) {
        (Some(event_id), None) => {
            match history.event(event_id).await?.map(|recorded| (recorded.position, recorded.event)) {
                Some((position, Event::ScoreAwarded(award))) => {
                    (award.player_id, Some(RevokedAward { event_id, position, points: award.points }))
                }
                _ => return Err(ActionError::UnknownAward(event_id)),
            }
        }
        (None, Some(player)) => {
            let player = PlayerId::parse(player).map_err(|e| ActionError::InvalidRequest(e.to_string()))?;
            if !history.knows(player.clone()).await? {
                return Err(ActionError::UnknownPlayer(player.to_string()));
            }
            (player, None)
        }
        _ => return Err(ActionError::InvalidRequest("name exactly one of event_id and player_id".into())),
    };
    let revoked = ScoreRevoked {
        event_id: Uuid::now_v7(),
        player_id,
        award,
        operator,
        reason,
        recorded_at: events::event::stored_precision(OffsetDateTime::now_utc()),
    };
    append(&desk, Event::ScoreRevoked(revoked)).await
}

/// The parameters of `GET /v1/admin/flags`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FlagsQuery {
    /// How many flags at most, newest first.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000, default = 100)]
    limit: Option<String>,
}

/// The review queue: players flagged by the anomaly rules, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlagList {
    flags: Vec<FlagEntry>,
}

/// A player flagged for review. Their awards still count until an operator bans them or
/// revokes the awards.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FlagEntry {
    /// The player.
    player_id: String,
    /// The rule of ANOMALY_RULES that fired.
    rule: String,
    /// The positions of the awards in the rule's window when it fired, in order.
    events: Vec<u64>,
    /// When the award at which it fired was recorded.
    #[serde(with = "time::serde::rfc3339")]
    flagged_at: OffsetDateTime,
}

/// The anomaly flags for review (operator credential).
#[utoipa::path(get, path = "/v1/admin/flags", tag = "moderation", params(FlagsQuery),
    security(("operator" = [])),
    responses(
        (status = 200, description = "Flags, newest first", body = FlagList),
        (status = 401, description = "No or a wrong operator credential (`unauthorized`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn flags(
    State(desk): State<ActionDesk>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Strict(query): Strict<FlagsQuery>,
) -> Result<Json<FlagList>, ActionError> {
    desk.operator(client, &headers)?;
    let limit = match query.limit.as_deref().map(str::parse::<u32>) {
        None => 100,
        Some(Ok(limit)) if (1..=1000).contains(&limit) => limit,
        Some(_) => return Err(ActionError::InvalidRequest("limit must be an integer from 1 to 1000".into())),
    };
    let flags = desk.history.flags(limit).await?;
    Ok(Json(FlagList {
        flags: flags
            .into_iter()
            .map(|f| FlagEntry {
                player_id: f.player_id.to_string(),
                rule: f.rule,
                events: f.events,
                flagged_at: f.flagged_at,
            })
            .collect(),
    }))
}

async fn moderate(
    desk: &ActionDesk,
    client: std::net::IpAddr,
    headers: &HeaderMap,
    player: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
    event: fn(Moderated) -> Event,
) -> Result<(StatusCode, Json<ModerationRecorded>), ActionError> {
    let operator = desk.operator(client, headers)?;
    let Path(player) = player.map_err(|rejection| ActionError::InvalidRequest(rejection.body_text()))?;
    let player_id = PlayerId::parse(player).map_err(|e| ActionError::InvalidRequest(e.to_string()))?;
    let request: ModerationRequest = json_object(body, "{\"reason\": \"…\"}")?;
    let reason = Reason::parse(request.reason).map_err(|e| ActionError::InvalidRequest(e.to_string()))?;
    let moderated = Moderated::new(Uuid::now_v7(), player_id, operator, reason, OffsetDateTime::now_utc());
    append(desk, event(moderated)).await
}

/// Appends a moderation event through the group commit.
async fn append(desk: &ActionDesk, event: Event) -> Result<(StatusCode, Json<ModerationRecorded>), ActionError> {
    let outcome = desk.appender.append(NewEvent { event, claims_digest: None }).await?;
    metrics::counter!("moderation_events_total", "outcome" => outcome_label(&outcome)).increment(1);
    match outcome {
        AppendOutcome::Appended(recorded) => Ok((
            StatusCode::CREATED,
            Json(ModerationRecorded { event_id: recorded.event.event_id(), position: recorded.position }),
        )),
        AppendOutcome::Refused(refusal) => Err(ActionError::Refused(refusal)),
        AppendOutcome::AlreadyRecorded { .. } => Err(ActionError::Internal),
    }
}

fn outcome_label(outcome: &AppendOutcome) -> &'static str {
    match outcome {
        AppendOutcome::Appended(_) => "appended",
        AppendOutcome::Refused(_) => "refused",
        AppendOutcome::AlreadyRecorded { .. } => "internal",
    }
}

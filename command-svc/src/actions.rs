//! `POST /v1/actions`: a signed action token in, a durable `ScoreAwarded` event out.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use events::RecordedEvent;
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

/// The body of `POST /v1/actions`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SubmitAction {
    /// The signed action token (JWS compact serialisation).
    pub token: String,
}

/// The answer to an accepted action (`201`) or a safe retry of one (`200`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionAccepted {
    /// The `ScoreAwarded` event's id.
    pub event_id: Uuid,
    /// The token's `jti`.
    pub action_id: Uuid,
    /// The player awarded.
    pub player_id: String,
    /// The action.
    pub action: String,
    /// Points awarded, from the catalog.
    pub points: u32,
    /// The event's global position in the log (use it as `min_position` to read your write).
    pub position: u64,
    /// When the event was recorded.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

impl TryFrom<&RecordedEvent> for ActionAccepted {
    type Error = ActionError;

    /// The answer for an award; anything else where an award was expected is an internal error.
    fn try_from(recorded: &RecordedEvent) -> Result<Self, ActionError> {
        let events::Event::ScoreAwarded(event) = &recorded.event else { return Err(ActionError::Internal) };
        Ok(Self {
            event_id: event.event_id,
            action_id: event.action_id,
            player_id: event.player_id.to_string(),
            action: event.action.to_string(),
            points: event.points.get(),
            position: recorded.position,
            recorded_at: event.recorded_at,
        })
    }
}

/// Records a completed action: verifies its signed token, awards the catalog's points, and
/// appends a `ScoreAwarded` event to the log. Retrying with the same token is always safe.
#[utoipa::path(post, path = "/v1/actions", tag = "actions",
    request_body(content = SubmitAction, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded now", body = ActionAccepted),
        (status = 200, description = "Recorded before with the same claims: a safe retry, counted once", body = ActionAccepted),
        (status = 400, description = "Not a JSON body `{\"token\": \"…\"}` (`invalid_request`)",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "The token was refused (`invalid_token`, `token_expired`, `token_not_yet_valid`)",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "The player is banned (`player_banned`); nothing was appended",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "This action id was recorded with other claims (`action_conflict`)",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 413, description = "The body is over the limit (`payload_too_large`)",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "The action is not in the catalog (`unknown_action`); its score is missing \
            (`score_missing`), not asked for (`score_not_asked`) or outside the catalog's range (`score_out_of_range`)",
            body = Problem, content_type = PROBLEM_JSON),
    ),
)]
pub async fn submit_action(
    State(desk): State<ActionDesk>,
    ClientIp(client): ClientIp,
    Strict(NoParameters {}): Strict<NoParameters>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ActionAccepted>), ActionError> {
    let outcome = accept(&desk, client, body).await;
    let label = match &outcome {
        Ok((StatusCode::CREATED, _)) => "accepted",
        Ok(_) => "retried",
        Err(error) => error.code(),
    };
    metrics::counter!("actions_total", "outcome" => label).increment(1);
    outcome
}

async fn accept(
    desk: &ActionDesk,
    client: std::net::IpAddr,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ActionAccepted>), ActionError> {
    desk.limits.check_address(client).map_err(ActionError::RateLimited)?;
    let request: SubmitAction = json_object(body, "{\"token\": \"…\"}")?;
    let (status, accepted) = desk.record(&request.token).await?;
    Ok((status, Json(accepted)))
}

impl ActionDesk {
    /// Verifies `token`, awards its action and appends the event: `201` when recorded now,
    /// `200` when this action was recorded before with the same claims. The address limit is
    /// the caller's to check; the player limit is checked here, once the token proved who the
    /// player is.
    pub async fn record(&self, token: &str) -> Result<(StatusCode, ActionAccepted), ActionError> {
        let now = OffsetDateTime::now_utc();
        let trust = self.trust.current();
        let verified = self.policy.verify(token.trim(), &trust.keys, now.unix_timestamp())?;
        let event = events::award(&verified, &trust.catalog, Uuid::now_v7(), now)?;
        self.limits.check_player(event.player_id.as_str()).map_err(ActionError::RateLimited)?;

        let new = NewEvent { event: events::Event::ScoreAwarded(event), claims_digest: Some(verified.claims.digest()) };
        match self.appender.append(new).await? {
            AppendOutcome::Appended(recorded) => Ok((StatusCode::CREATED, ActionAccepted::try_from(&recorded)?)),
            AppendOutcome::Refused(refusal) => Err(ActionError::Refused(refusal)),
            AppendOutcome::AlreadyRecorded { original, same_claims: true } => {
                Ok((StatusCode::OK, ActionAccepted::try_from(&original)?))
            }
            AppendOutcome::AlreadyRecorded { same_claims: false, .. } => {
                Err(ActionError::Conflict(verified.claims.jti))
            }
        }
    }
}

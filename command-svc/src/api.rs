//! `POST /v1/actions`: a signed action token in, a durable `ScoreAwarded` event out.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use events::{ActionCatalog, AwardError, KeySet, RecordedEvent, TokenError, TokenPolicy};
use platform::Problem;
use platform::client::ClientIp;
use platform::openapi::PROBLEM_JSON;
use platform::params::{NoParameters, Strict};
use serde::{Deserialize, Serialize};
use store::{AppendOutcome, NewEvent};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::append::{AppendError, Appender};
use crate::limits::RateLimits;

/// What a token is checked against: the trusted keys and the action catalog, replaced together
/// when they are re-read (on `SIGHUP`).
#[derive(Debug)]
pub struct Trust {
    /// Trusted keys.
    pub keys: KeySet,
    /// Points per action.
    pub catalog: ActionCatalog,
    /// Who may moderate; `None`: moderation is off.
    pub operators: Option<crate::moderation::Operators>,
}

/// The [`Trust`] in force, shared by every request and replaced as a whole on reload.
#[derive(Clone, Debug)]
pub struct TrustInForce(Arc<RwLock<Arc<Trust>>>);

impl TrustInForce {
    /// `trust`, in force from now on.
    pub fn new(trust: Trust) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(trust))))
    }

    /// The keys and catalog in force.
    pub fn current(&self) -> Arc<Trust> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Puts `trust` in force for every request from now on.
    pub fn replace(&self, trust: Trust) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(trust);
    }
}

/// What the action endpoint needs.
#[derive(Clone)]
pub struct ActionDesk {
    /// Keys and catalog; requests in flight finish with the ones they started with.
    pub trust: TrustInForce,
    /// Time rules.
    pub policy: TokenPolicy,
    /// Admission limits.
    pub limits: RateLimits,
    /// The group-commit appender.
    pub appender: Appender,
    /// What moderation reads from the log.
    pub history: crate::moderation::History,
}

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

/// Every way `POST /v1/actions` can refuse.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// Not JSON of the form `{"token": "…"}`.
    #[error("{0}")]
    InvalidRequest(String),
    /// Body over the limit; the body the endpoint takes.
    #[error("request body too large")]
    TooLarge(String),
    /// The body did not arrive within `BODY_TIMEOUT`.
    #[error("the request body did not arrive in time")]
    BodyTimedOut,
    /// The token failed verification.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The token names an action outside the catalog.
    #[error(transparent)]
    Award(#[from] AwardError),
    /// The action id was recorded before with other claims.
    #[error("action {0} was already recorded with different claims")]
    Conflict(Uuid),
    /// A revocation names no award of the log.
    #[error("no award has event id {0}")]
    UnknownAward(Uuid),
    /// A revocation names a player without events.
    #[error("player {0:?} has no events")]
    UnknownPlayer(String),
    /// The event log could not be read.
    #[error("reading the event log")]
    Store(#[from] store::StoreError),
    /// No or a wrong operator credential on a moderation request.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The log refused the event where the append order is decided.
    #[error(transparent)]
    Refused(#[from] store::Refusal),
    /// Too many requests from this address or for this player.
    #[error("rate limit exceeded")]
    RateLimited(Duration),
    /// The event log cannot be reached; retrying with the same token is safe.
    #[error("event log unavailable")]
    Unavailable,
    /// Anything else.
    #[error("internal error")]
    Internal,
}

impl From<AppendError> for ActionError {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::Unavailable | AppendError::Overloaded => Self::Unavailable,
            AppendError::Failed => Self::Internal,
        }
    }
}

impl ActionError {
    /// The problem document's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::TooLarge(_) => "payload_too_large",
            Self::BodyTimedOut => "request_timeout",
            Self::Token(token) => token.code(),
            Self::Award(award) => award.code(),
            Self::Conflict(_) => "action_conflict",
            Self::Unauthorized(_) => "unauthorized",
            Self::UnknownAward(_) => "unknown_award",
            Self::UnknownPlayer(_) => "unknown_player",
            Self::Store(error) if error.is_unavailable() => "unavailable",
            Self::Store(_) => "internal",
            Self::Refused(store::Refusal::AlreadyRevoked) => "already_revoked",
            Self::Refused(store::Refusal::PlayerBanned) => "player_banned",
            Self::Refused(store::Refusal::AlreadyBanned) => "already_banned",
            Self::Refused(store::Refusal::NotBanned) => "not_banned",
            Self::RateLimited(_) => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

impl From<ActionError> for Problem {
    fn from(error: ActionError) -> Self {
        let (code, detail) = (error.code(), error.to_string());
        match error {
            ActionError::InvalidRequest(_) => Problem::invalid_request(detail),
            ActionError::TooLarge(shape) => Problem::new(StatusCode::PAYLOAD_TOO_LARGE, code, "Request body too large")
                .with_detail(format!("this endpoint's body is {shape}, of a few hundred bytes")),
            ActionError::BodyTimedOut => {
                Problem::new(StatusCode::REQUEST_TIMEOUT, code, "The request body came too slowly")
                    .with_detail("the whole body must arrive within BODY_TIMEOUT of the server starting to read it")
            }
            ActionError::Token(_) => {
                Problem::new(StatusCode::UNAUTHORIZED, code, "The action token was refused").with_detail(detail)
            }
            ActionError::Award(AwardError::UnknownAction(_)) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, "Unknown action").with_detail(detail)
            }
            ActionError::Award(_) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, "The score does not fit the action")
                    .with_detail(detail)
            }
            ActionError::Conflict(_) => {
                Problem::new(StatusCode::CONFLICT, code, "Action id already used").with_detail(detail)
            }
            ActionError::Unauthorized(_) => {
                Problem::new(StatusCode::UNAUTHORIZED, code, "An operator's credential is required").with_detail(detail)
            }
            ActionError::UnknownAward(_) | ActionError::UnknownPlayer(_) => {
                Problem::new(StatusCode::NOT_FOUND, code, "Nothing to take back").with_detail(detail)
            }
            ActionError::Store(error) if error.is_unavailable() => {
                Problem::unavailable("the event log cannot be reached; retrying is safe")
            }
            ActionError::Store(error) => {
                tracing::error!(error.message = %error, error.chain = ?error, "reading the event log failed");
                Problem::internal()
            }
            ActionError::Refused(store::Refusal::PlayerBanned) => {
                Problem::new(StatusCode::FORBIDDEN, code, "The player is banned").with_detail(detail)
            }
            ActionError::Refused(_) => {
                Problem::new(StatusCode::CONFLICT, code, "The moderation changes nothing").with_detail(detail)
            }
            ActionError::RateLimited(wait) => Problem::rate_limited(wait),
            ActionError::Unavailable => {
                Problem::unavailable("the event log cannot be reached; retrying with the same token is safe")
            }
            ActionError::Internal => Problem::internal(),
        }
    }
}

impl IntoResponse for ActionError {
    fn into_response(self) -> Response {
        Problem::from(self).into_response()
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

/// A request body that must be a JSON object of the form `shape`, read into `T`.
pub(crate) fn json_object<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    shape: &str,
) -> Result<T, ActionError> {
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ActionError::TooLarge(shape.to_string()),
        _ if platform::connections::timed_out(&rejection) => ActionError::BodyTimedOut,
        _ => ActionError::InvalidRequest(rejection.body_text()),
    })?;
    let invalid = |reason: String| ActionError::InvalidRequest(format!("expected a JSON body {shape}: {reason}"));
    // Only an object: serde would also read a struct from an array of its fields.
    match serde_json::from_slice(&body).map_err(|e| invalid(e.to_string()))? {
        object @ serde_json::Value::Object(_) => serde_json::from_value(object).map_err(|e| invalid(e.to_string())),
        _ => Err(invalid("not a JSON object".into())),
    }
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

//! Every way the command side refuses, and how each is answered (RFC 9457).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use events::{AwardError, TokenError};
use platform::Problem;
use uuid::Uuid;

use crate::append::AppendError;

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
    events::token::json_object(&body)
        .map_err(|e| ActionError::InvalidRequest(format!("expected a JSON body {shape}: {e}")))
}

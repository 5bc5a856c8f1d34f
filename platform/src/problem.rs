//! RFC 9457 problem documents: every error answer of every service.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer: `application/problem+json` with a machine-readable `code`.
///
/// ```
/// use platform::Problem;
/// let problem = Problem::new(axum::http::StatusCode::NOT_FOUND, "unknown_player", "No such player");
/// assert_eq!(problem.code(), "unknown_player");
/// ```
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:scoreboard:problem:<code>`.
    #[serde(rename = "type")]
    type_uri: String,
    /// A short summary of the kind of problem.
    title: String,
    /// The HTTP status code.
    status: u16,
    /// What went wrong with this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// The stable, machine-readable code, e.g. `invalid_token`.
    #[schema(value_type = String)]
    code: &'static str,
    #[serde(skip)]
    retry_after: Option<Duration>,
}

impl Problem {
    /// A problem of `status` with the stable `code` and a short human `title`.
    pub fn new(status: StatusCode, code: &'static str, title: impl Into<String>) -> Self {
        Self {
            type_uri: format!("urn:scoreboard:problem:{code}"),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            code,
            retry_after: None,
        }
    }

    /// Adds an explanation specific to this occurrence.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds a `Retry-After` header (whole seconds, at least 1).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// `400 invalid_request`.
    pub fn invalid_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", "The request is not valid").with_detail(detail)
    }

    /// `404 not_found`, for paths no route serves.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Nothing is served at this path")
    }

    /// `503 unavailable` with `Retry-After`: a dependency is down, retrying is safe.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "The service is temporarily unavailable")
            .with_detail(detail)
            .with_retry_after(Duration::from_secs(1))
    }

    /// `429 rate_limited` with `Retry-After`: the client may try again after `wait`.
    pub fn rate_limited(wait: Duration) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many requests")
            .with_detail("retry after the number of seconds in Retry-After")
            .with_retry_after(wait + Duration::from_millis(999))
    }

    /// `500 internal`: the cause is logged, never shown.
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(after) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(after.as_secs().max(1)));
        }
        response
    }
}

/// The fallback of every router: a problem document instead of an empty 404.
pub async fn not_found() -> Problem {
    Problem::not_found()
}

/// The answer for a path that is served, but not with the request's method.
pub async fn method_not_allowed() -> Problem {
    Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed")
        .with_detail("this path is served, but not with this method")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn problem_is_rfc9457_json_with_retry_after() {
        let response = Problem::unavailable("database unreachable").into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(response.into_body(), 10_000).await.unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["type"], "urn:scoreboard:problem:unavailable");
        assert_eq!(json["status"], 503);
        assert_eq!(json["code"], "unavailable");
        assert_eq!(json["detail"], "database unreachable");
        assert!(json["title"].is_string());
    }
}

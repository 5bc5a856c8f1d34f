//! Every way a read can fail, and the problem document each becomes.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use platform::Problem;
use store::StoreError;

/// Every way a read can fail.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// A query parameter or path segment of the wrong form.
    #[error("{0}")]
    InvalidRequest(String),
    /// No such player on the board.
    #[error("player {0:?} has no standing")]
    UnknownPlayer(String),
    /// No results of a season published (yet, or of that version).
    #[error("{0}")]
    ResultsNotPublished(String),
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
    /// No read of the database can start now.
    #[error("{0}")]
    Busy(&'static str),
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let detail = self.to_string();
        let problem = match self {
            Self::InvalidRequest(_) => Problem::invalid_request(detail),
            Self::UnknownPlayer(_) => {
                Problem::new(StatusCode::NOT_FOUND, "unknown_player", "Unknown player").with_detail(detail)
            }
            Self::UnknownBoard(_) => {
                Problem::new(StatusCode::NOT_FOUND, "unknown_board", "Unknown board").with_detail(detail)
            }
            Self::ResultsNotPublished(_) => {
                Problem::new(StatusCode::NOT_FOUND, "results_not_published", "No results published").with_detail(detail)
            }
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
            Self::Loading | Self::BoardNotReady(_) | Self::TooManyStreams(_) | Self::Busy(_) => {
                Problem::unavailable(detail)
            }
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

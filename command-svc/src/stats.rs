//! Usage analytics for operators: `GET /v1/admin/stats`, the read model's projection of the log
//! by UTC hour or day ([`events::usage`]).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use events::usage::{Granularity, Sketch, Tally, Window};
use platform::Problem;
use platform::client::ClientIp;
use platform::openapi::PROBLEM_JSON;
use platform::params::Strict;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::desk::ActionDesk;
use crate::error::ActionError;

/// The parameters of `GET /v1/admin/stats`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// The start: an RFC 3339 time, taken back to the start of its hour or day. By default 24
    /// hours, or 30 days, before `to`.
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<String>,
    /// The end: an RFC 3339 time, taken on to the end of its hour or day (unless it is the start
    /// of one). By default the end of the current hour or day.
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<String>,
    /// Buckets of a UTC `hour` (at most 744, 31 days) or a UTC `day` (at most 366); `day` by
    /// default.
    #[param(inline)]
    granularity: Option<Granularity>,
}

/// Usage over a range of UTC hours or days, per board.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageReport {
    /// The buckets' length.
    granularity: Granularity,
    /// The first bucket's start.
    #[serde(with = "time::serde::rfc3339")]
    from: OffsetDateTime,
    /// The last bucket's end.
    #[serde(with = "time::serde::rfc3339")]
    to: OffsetDateTime,
    /// The read model's position: every event up to it is counted, none after.
    position: u64,
    /// The relative standard error of `active_players` when it counts more than 256 players
    /// (exact up to that); 19 estimates in 20 are within twice it.
    active_players_error: f64,
    /// `global` (every action) first, then each board with activity in the range.
    boards: Vec<BoardUsage>,
}

/// One board's usage: the whole range, and every bucket of it (empty ones included).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BoardUsage {
    /// The board.
    board: String,
    /// The whole range: distinct players over all of it, not the sum of the buckets'.
    total: UsageCounts,
    /// Each bucket, in order.
    buckets: Vec<BucketUsage>,
}

/// One bucket's usage.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BucketUsage {
    /// The bucket's start.
    #[serde(with = "time::serde::rfc3339")]
    start: OffsetDateTime,
    /// What it counts.
    #[serde(flatten)]
    counts: UsageCounts,
}

/// What a bucket or a range counts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageCounts {
    /// Actions recorded (every `ScoreAwarded` that counts on the board).
    actions: u64,
    /// The points they awarded (revocations do not take them back here).
    points: u64,
    /// Distinct players awarded: exact up to 256, estimated beyond.
    active_players: u64,
    /// Players whose first award ever is in it (`global` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    new_players: Option<u64>,
    /// Actions and points by action.
    by_action: BTreeMap<String, ActionUsage>,
}

/// One action's count.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionUsage {
    /// Times recorded.
    actions: u64,
    /// Points awarded.
    points: u64,
}

impl UsageCounts {
    fn of(tally: &Tally, global: bool) -> Self {
        let total = tally.total();
        Self {
            actions: total.actions,
            points: total.points,
            active_players: tally.players.estimate(),
            new_players: global.then_some(tally.new_players),
            by_action: tally
                .by_action
                .iter()
                .map(|(action, count)| {
                    (action.to_string(), ActionUsage { actions: count.actions, points: count.points })
                })
                .collect(),
        }
    }
}

/// Usage analytics by UTC hour or day: actions and points by action, distinct active players
/// and new players, on `global` and every board (operator credential).
#[utoipa::path(get, path = "/v1/admin/stats", tag = "moderation", params(StatsQuery),
    security(("operator" = [])),
    responses(
        (status = 200, description = "Usage over the range, per board", body = UsageReport),
        (status = 400, description = "A malformed time or granularity, or a range that is empty or too wide \
            (`invalid_request`)", body = Problem, content_type = PROBLEM_JSON),
        (status = 401, description = "No or a wrong operator credential (`unauthorized`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn stats(
    State(desk): State<ActionDesk>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Strict(query): Strict<StatsQuery>,
) -> Result<Json<UsageReport>, ActionError> {
    desk.operator(client, &headers)?;
    let time = |name: &str, value: Option<String>| {
        value
            .map(|text| OffsetDateTime::parse(&text, &Rfc3339))
            .transpose()
            .map_err(|_| ActionError::InvalidRequest(format!("{name} must be an RFC 3339 time")))
    };
    let granularity = query.granularity.unwrap_or(Granularity::Day);
    let (from, to) = (time("from", query.from)?, time("to", query.to)?);
    let window = Window::new(granularity, from, to, OffsetDateTime::now_utc())
        .map_err(|e| ActionError::InvalidRequest(e.to_string()))?;
    let stats = desk.history.usage(&window).await?;
    let at = |seconds: i64| OffsetDateTime::from_unix_timestamp(seconds).map_err(|_| ActionError::Internal);
    let mut boards = Vec::new();
    for series in &stats.series {
        let global = series.board.as_str() == events::boards::GLOBAL;
        let mut buckets = Vec::with_capacity(series.buckets.len());
        for (start, tally) in &series.buckets {
            buckets.push(BucketUsage { start: at(*start)?, counts: UsageCounts::of(tally, global) });
        }
        boards.push(BoardUsage {
            board: series.board.to_string(),
            total: UsageCounts::of(&series.total, global),
            buckets,
        });
    }
    Ok(Json(UsageReport {
        granularity,
        from: at(window.from)?,
        to: at(window.to)?,
        position: stats.position,
        active_players_error: Sketch::STANDARD_ERROR,
        boards,
    }))
}

//! The parameters reads share, each read and bounded once.

pub use platform::params::Strict;

use crate::error::QueryError;
use crate::live::board::MAX_LIMIT;

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

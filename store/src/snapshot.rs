//! Snapshots of the fold: every standing (banned ones included) as of a position, kept each
//! time the fold crosses a multiple of the snapshot interval, so the board at any past position
//! is the latest snapshot before it plus a tail of at most one interval of the log.
//!
//! A snapshot is one value, encoded with `postcard` in rank order: reading one is a single row
//! and a linear decode, and the standings come out already sorted.

use events::leaderboard::Standing;
use events::{DisplayName, PlayerId};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// How many positions apart snapshots are by default.
pub const DEFAULT_INTERVAL: u64 = 10_000;

/// A snapshot of the fold as the read model keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The last position folded.
    pub position: u64,
    /// Every standing, banned ones included, in rank order.
    pub standings: Vec<Standing>,
}

/// What one fold transaction changed: the new standings of the players it touched in
/// `(from, position]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The checkpoint before the fold.
    pub from: u64,
    /// The checkpoint after it.
    pub position: u64,
    /// The standings it wrote, in rank order.
    pub standings: Vec<Standing>,
}

/// A standing as a snapshot encodes it (`Standing`'s own serde form skips fields, which a
/// format without field names cannot do).
#[derive(Serialize, Deserialize)]
struct Entry<'a> {
    player_id: &'a str,
    name: Option<&'a str>,
    score: u64,
    reached_at: u64,
    banned: bool,
}

/// Whether a fold from `from` to `to` crosses a multiple of `interval` and so takes a snapshot.
pub(crate) fn due(from: u64, to: u64, interval: u64) -> bool {
    to / interval.max(1) > from / interval.max(1)
}

/// The bytes of `standings`, sorted into rank order first.
pub(crate) fn encode(mut standings: Vec<Standing>) -> Vec<u8> {
    standings.sort_unstable_by(Standing::rank_cmp);
    let entries: Vec<Entry<'_>> = standings
        .iter()
        .map(|s| Entry {
            player_id: s.player_id.as_str(),
            name: s.name.as_ref().map(DisplayName::as_str),
            score: s.score,
            reached_at: s.reached_at,
            banned: s.banned,
        })
        .collect();
    postcard::to_stdvec(&entries).expect("standings encode")
}

/// The standings `bytes` hold, as [`encode`] wrote them.
pub(crate) fn decode(position: u64, bytes: &[u8]) -> Result<Snapshot, StoreError> {
    let invalid = || StoreError::InvalidRow(format!("snapshot at position {position}"));
    let entries: Vec<Entry<'_>> = postcard::from_bytes(bytes).map_err(|_| invalid())?;
    let standings = entries
        .into_iter()
        .map(|e| {
            Ok(Standing {
                player_id: PlayerId::parse(e.player_id).map_err(|_| invalid())?,
                name: e.name.map(DisplayName::parse).transpose().map_err(|_| invalid())?,
                score: e.score,
                reached_at: e.reached_at,
                banned: e.banned,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(Snapshot { position, standings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standing(player: &str, score: u64, reached_at: u64, banned: bool) -> Standing {
        Standing { player_id: player.parse().unwrap(), name: None, score, reached_at, banned }
    }

    #[test]
    fn a_snapshot_decodes_to_its_standings_in_rank_order() {
        let mut named = standing("b", 20, 2, false);
        named.name = Some(DisplayName::parse("Bea").unwrap());
        let standings = vec![standing("a", 10, 1, false), named.clone(), standing("c", 30, 3, true)];
        let decoded = decode(3, &encode(standings)).unwrap();
        assert_eq!(decoded.standings, [standing("c", 30, 3, true), named, standing("a", 10, 1, false)]);
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_not_a_board() {
        let bytes = encode(vec![standing("a", 10, 1, false)]);
        assert!(decode(1, &bytes[..bytes.len() - 1]).is_err());
        assert!(decode(1, b"\x01\x03a b").is_err());
    }

    #[test]
    fn a_snapshot_is_due_when_the_fold_crosses_a_multiple_of_the_interval() {
        assert!(due(9_999, 10_000, 10_000));
        assert!(due(9_000, 10_500, 10_000));
        assert!(!due(10_000, 19_999, 10_000));
        assert!(!due(0, 0, 10_000));
    }
}

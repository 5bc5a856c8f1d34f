//! Snapshots of the fold and what each fold changed, as compact values.
//!
//! - A snapshot is every standing of `global` (banned ones included) as of a position, written
//!   from the fold in memory. One is due once the standings changed since the last one reach
//!   the number of players, and the fold is at least `SNAPSHOT_INTERVAL` positions past it: so
//!   the bytes of all snapshots stay within the bytes of all changes (linear in the log), and the
//!   board at any past position is one snapshot, fewer changed standings than the board has
//!   players (or than the interval holds), and at most one fold batch of the log.
//! - A change row is what one fold transaction changed: global's standings and every other
//!   board's, which query services follow.
//!
//! Both are encoded with `postcard`; standings in rank order, so reading one is a single row and
//! a linear decode, and they come out already sorted.

use events::boards::{Season, SeasonStanding};
use events::leaderboard::Standing;
use events::{BoardId, DisplayName, PlayerId};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The fewest positions between two snapshots, by default.
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

/// When the next snapshot is due: where the last one was taken, and how many standings of
/// `global` the folds since changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Due {
    /// The position of the last snapshot (0: none).
    pub last: u64,
    /// Standings changed since.
    pub changes: u64,
}

impl Due {
    /// Whether a snapshot of `players` standings at `position` is due, `interval` being the
    /// fewest positions between two.
    pub(crate) fn now(self, position: u64, players: u64, interval: u64) -> bool {
        self.changes >= players.max(1) && position >= self.last.saturating_add(interval.max(1))
    }
}

/// A standing of a board other than `global`, as a change row encodes it.
#[derive(Serialize, Deserialize)]
struct SeasonEntry<'a> {
    board: &'a str,
    season: String,
    #[serde(borrow)]
    standing: Entry<'a>,
}

/// The bytes of `standings` of boards other than `global`: a change row's `seasons`.
pub fn encode_seasons(standings: &[SeasonStanding]) -> Vec<u8> {
    let entries: Vec<SeasonEntry<'_>> = standings
        .iter()
        .map(|s| SeasonEntry { board: s.board.as_str(), season: s.season.to_string(), standing: entry(&s.standing) })
        .collect();
    postcard::to_stdvec(&entries).expect("standings encode")
}

/// The standings `bytes` hold, as [`encode_seasons`] wrote them.
pub(crate) fn decode_seasons(position: u64, bytes: &[u8]) -> Result<Vec<SeasonStanding>, StoreError> {
    let invalid = || StoreError::InvalidRow(format!("changed seasons at position {position}"));
    let entries: Vec<SeasonEntry<'_>> = postcard::from_bytes(bytes).map_err(|_| invalid())?;
    entries
        .into_iter()
        .map(|e| {
            Ok(SeasonStanding {
                board: BoardId::parse(e.board).map_err(|_| invalid())?,
                season: e.season.parse::<Season>().map_err(|_| invalid())?,
                standing: standing(e.standing).ok_or_else(invalid)?,
            })
        })
        .collect()
}

fn entry(s: &Standing) -> Entry<'_> {
    Entry {
        player_id: s.player_id.as_str(),
        name: s.name.as_ref().map(DisplayName::as_str),
        score: s.score,
        reached_at: s.reached_at,
        banned: s.banned,
    }
}

fn standing(e: Entry<'_>) -> Option<Standing> {
    Some(Standing {
        player_id: PlayerId::parse(e.player_id).ok()?,
        name: e.name.map(DisplayName::parse).transpose().ok()?,
        score: e.score,
        reached_at: e.reached_at,
        banned: e.banned,
    })
}

/// The bytes of `standings`, sorted into rank order first: a snapshot's, or a change row's
/// `standings`.
pub fn encode<'a>(standings: impl IntoIterator<Item = &'a Standing>) -> Vec<u8> {
    let mut standings: Vec<&Standing> = standings.into_iter().collect();
    standings.sort_unstable_by(|a, b| a.rank_cmp(b));
    let entries: Vec<Entry<'_>> = standings.into_iter().map(entry).collect();
    postcard::to_stdvec(&entries).expect("standings encode")
}

/// The standings `bytes` hold, as [`encode`] wrote them.
pub(crate) fn decode(position: u64, bytes: &[u8]) -> Result<Snapshot, StoreError> {
    let invalid = || StoreError::InvalidRow(format!("snapshot at position {position}"));
    let entries: Vec<Entry<'_>> = postcard::from_bytes(bytes).map_err(|_| invalid())?;
    let standings = entries.into_iter().map(|e| standing(e).ok_or_else(invalid)).collect::<Result<_, StoreError>>()?;
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
        let decoded = decode(3, &encode(&standings)).unwrap();
        assert_eq!(decoded.standings, [standing("c", 30, 3, true), named, standing("a", 10, 1, false)]);
    }

    #[test]
    fn a_damaged_snapshot_is_an_error_not_a_board() {
        let bytes = encode(&[standing("a", 10, 1, false)]);
        assert!(decode(1, &bytes[..bytes.len() - 1]).is_err());
        assert!(decode(1, b"\x01\x03a b").is_err());
    }

    #[test]
    fn a_snapshot_is_due_once_the_changes_reach_the_players_and_the_interval_has_passed() {
        let due = Due { last: 10_000, changes: 500 };
        assert!(due.now(20_000, 500, 10_000));
        assert!(!due.now(20_000, 501, 10_000), "fewer changes than players");
        assert!(!due.now(19_999, 10, 10_000), "too soon after the last");
        assert!(!Due::default().now(0, 0, 1), "nothing changed");
    }

    #[test]
    fn changed_seasons_decode_to_what_was_encoded() {
        let changed = vec![SeasonStanding {
            board: "weekly".parse().unwrap(),
            season: "2026-W49".parse().unwrap(),
            standing: standing("a", 10, 1, true),
        }];
        assert_eq!(decode_seasons(1, &encode_seasons(&changed)).unwrap(), changed);
    }
}

//! Season results: the final standings of a season of a board, as a rewards service takes them.
//!
//! A season closes [`closes_at`] its end plus a grace period for appends still in flight (the
//! server's clock; `all-time` never closes). Its results are its standings then, ranked as its
//! board ranks them ([`placed`]), at a log position that holds every event of the season and
//! that a signed checkpoint covers: anyone can fold the log up to that position and compare
//! ([`placed`] again, on their own fold).

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::boards::{BoardDef, Season};
use crate::ids::{BoardId, DisplayName, PlayerId};
use crate::leaderboard::{Board, Standing};

/// One player's place in a season's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Placed {
    /// 1-based, no ties.
    pub rank: u64,
    /// The player.
    pub player_id: PlayerId,
    /// The name their tokens carried last, if any.
    pub name: Option<DisplayName>,
    /// Their score on the board.
    pub score: u64,
}

/// A season's results as the API answers them and JetStream carries them: one version, final at
/// a log position that a signed checkpoint covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Published {
    /// The board.
    pub board: BoardId,
    /// The season, e.g. `2026-W48`.
    pub season: String,
    /// 1 for the first; moderation reaching the season after it closed publishes the next (and
    /// so does a change of the board's definition).
    pub version: u32,
    /// The board's definition they were folded by, e.g. `season=weekly;actions=*;aggregate=best`:
    /// its season, the actions that count (`*`: all), and how it aggregates (`sum` when absent).
    pub definition: String,
    /// The log position the results are the fold of: every event up to it, none after.
    pub final_position: u64,
    /// The signed checkpoint (C2SP signed note) of the first tree that covers `final_position`.
    pub checkpoint: SignedCheckpoint,
    /// The players on the board, ranked (a page of them on the API; all of them on JetStream).
    pub entries: Vec<Placed>,
    /// How many players the results rank.
    pub total_players: u64,
    /// When the folder published this version (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub published_at: OffsetDateTime,
}

/// A signed checkpoint: its tree size and its note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedCheckpoint {
    /// How many events the tree holds.
    pub tree_size: u64,
    /// The signed note (`<origin>\n<size>\n<root hash>\n\n— <name> <signature>\n`).
    pub note: String,
}

/// The standings of a season (every player's, banned ones included), ranked as board `def`
/// ranks them: the players on it, best first.
pub fn placed(def: &BoardDef, standings: impl IntoIterator<Item = Standing>) -> Vec<Placed> {
    let board = Board::of(def.aggregate).with(0, standings);
    board
        .page(0, board.len())
        .into_iter()
        .map(|ranked| Placed {
            rank: ranked.rank,
            player_id: ranked.standing.player_id.clone(),
            name: ranked.standing.name.clone(),
            score: ranked.standing.score,
        })
        .collect()
}

/// When `season` closes: its end plus `grace` (`None` for all time, which never ends).
pub fn closes_at(season: Season, grace: Duration) -> Option<OffsetDateTime> {
    Some(season.ends_at()? + grace)
}

/// The seasons from `first` on that have closed by `now`, in order.
pub fn closed(first: Season, now: OffsetDateTime, grace: Duration) -> impl Iterator<Item = Season> {
    std::iter::successors(Some(first), |season| season.next())
        .take_while(move |season| closes_at(*season, grace).is_some_and(|at| at <= now))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::boards::{BoardDefs, SeasonKind};

    fn standing(player: &str, score: u64, reached_at: u64, banned: bool) -> Standing {
        Standing { score, reached_at, banned, ..Standing::new(player.parse().unwrap()) }
    }

    #[test]
    fn a_season_closes_at_its_end_plus_the_grace_and_all_time_never() {
        let day = Season::of(SeasonKind::Daily, datetime!(2026-11-30 13:00 UTC));
        assert_eq!(closes_at(day, Duration::minutes(5)), Some(datetime!(2026-12-01 00:05 UTC)));
        assert_eq!(closes_at(Season::AllTime, Duration::ZERO), None);
        let closed_days = |now| closed(day, now, Duration::minutes(5)).map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(closed_days(datetime!(2026-12-01 00:04:59 UTC)).is_empty(), "within the grace");
        assert_eq!(closed_days(datetime!(2026-12-01 00:05 UTC)), ["2026-11-30"]);
        assert_eq!(closed_days(datetime!(2026-12-03 12:00 UTC)), ["2026-11-30", "2026-12-01", "2026-12-02"]);
        assert_eq!(closed(Season::AllTime, datetime!(2030-01-01 0:00 UTC), Duration::ZERO).count(), 0);
    }

    #[test]
    fn results_rank_as_the_board_does_and_leave_banned_players_out() {
        let boards = BoardDefs::from_toml("[boards.lap]\nseason = \"weekly\"\naggregate = \"min\"\n").unwrap();
        let standings = [
            standing("ann", 300, 4, false),
            standing("bob", 200, 9, false),
            standing("cid", 100, 2, true),
            standing("dee", 200, 3, false),
        ];
        let placed = placed(boards.get("lap").unwrap(), standings);
        let rows: Vec<(u64, &str, u64)> = placed.iter().map(|p| (p.rank, p.player_id.as_str(), p.score)).collect();
        assert_eq!(rows, [(1, "dee", 200), (2, "bob", 200), (3, "ann", 300)]);
        let json = serde_json::to_value(&placed[0]).unwrap();
        assert_eq!(json, serde_json::json!({"rank": 1, "player_id": "dee", "name": null, "score": 200}));
    }
}

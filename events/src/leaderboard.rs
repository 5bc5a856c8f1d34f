//! Folding events into standings and ranking them: the rules every projection of the log
//! (the projector's read model, a query service's in-memory board, an auditor's replay)
//! applies, so that they all agree rank for rank.
//!
//! - A player's score is the sum of the points of their awards (`global`'s rule; a board may
//!   keep their best award, their lowest or their latest instead: [`Aggregate`]).
//! - A player "reached" their score at the position of their latest award (on a board that keeps
//!   one award, of the award that set it).
//! - A banned player is on no board from their ban on; unbanned, they are back with their score.
//! - A revocation takes back one award's points, or all of a player's so far; the player
//!   reached their new score at the revocation.
//! - Ranking is total: higher score first (lower first on a board of [`Aggregate::Min`]); on
//!   equal score, whoever reached it first (smaller position) ranks higher. Ranks are 1, 2, 3…
//!   with no ties.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::event::{Event, RecordedEvent};
use crate::ids::{DisplayName, PlayerId};

/// How a board makes one standing of a player's awards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Aggregate {
    /// The sum of their awards; a revocation takes one award's points back (or all of them).
    #[default]
    Sum,
    /// Their highest award.
    Best,
    /// Their lowest award, ranked lowest first: a time.
    Min,
    /// Their latest award.
    Last,
}

impl Aggregate {
    /// Its name in `BOARDS` and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Best => "best",
            Self::Min => "min",
            Self::Last => "last",
        }
    }

    /// `true` when the board keeps one award of each player (best, lowest or latest) rather than
    /// their sum: taking one back means folding the others again.
    pub fn keeps_one(self) -> bool {
        self != Self::Sum
    }
}

/// One player's standing: what the board shows for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The player.
    pub player_id: PlayerId,
    /// The latest display name their tokens carried, if any.
    pub name: Option<DisplayName>,
    /// Their score: the sum of their points, or the one award the board keeps ([`Aggregate`]).
    pub score: u64,
    /// Position of their latest award (of the award kept, on a board that keeps one; 0 while
    /// it keeps none): the tie-break.
    pub reached_at: u64,
    /// Banned: kept, but on no board.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub banned: bool,
}

impl Standing {
    /// A player with nothing yet.
    pub fn new(player_id: PlayerId) -> Self {
        Self { player_id, name: None, score: 0, reached_at: 0, banned: false }
    }

    /// Folds one event about this player into the standing, on a board that sums (`global`).
    pub fn apply(&mut self, recorded: &RecordedEvent) {
        self.apply_as(Aggregate::Sum, recorded);
    }

    /// Folds one event about this player into the standing, on a board of `aggregate`. On a
    /// board that keeps one award, a revocation of one award is not folded here: the player's
    /// awards left are folded again ([`Standing::refold`]).
    pub fn apply_as(&mut self, aggregate: Aggregate, recorded: &RecordedEvent) {
        match &recorded.event {
            Event::ScoreAwarded(event) => {
                self.award(aggregate, u64::from(event.points.get()), recorded.position);
                if event.display_name.is_some() {
                    self.name.clone_from(&event.display_name);
                }
            }
            Event::PlayerBanned(_) => self.banned = true,
            Event::PlayerUnbanned(_) => self.banned = false,
            // Taking points back is a new score, reached now.
            Event::ScoreRevoked(event) if aggregate == Aggregate::Sum => {
                self.score = match event.award {
                    Some(award) => self.score.saturating_sub(u64::from(award.points.get())),
                    None => 0,
                };
                self.reached_at = recorded.position;
            }
            // Every award so far taken back: the board keeps none of them.
            Event::ScoreRevoked(event) => {
                debug_assert!(event.award.is_none(), "one award taken back is a refold");
                (self.score, self.reached_at) = (0, 0);
            }
        }
    }

    /// Folds one award of `points` at `position`.
    fn award(&mut self, aggregate: Aggregate, points: u64, position: u64) {
        let kept = self.has_score(aggregate);
        let better = match aggregate {
            Aggregate::Sum => {
                self.score += points;
                self.reached_at = position;
                return;
            }
            Aggregate::Best => !kept || points > self.score,
            Aggregate::Min => !kept || points < self.score,
            Aggregate::Last => true,
        };
        if better {
            (self.score, self.reached_at) = (points, position);
        }
    }

    /// The standing of a board that keeps one award, made again from the player's `awards` left
    /// (points and position, in log order, those that count in the standing's season).
    pub fn refold(&mut self, aggregate: Aggregate, awards: impl IntoIterator<Item = (u64, u64)>) {
        (self.score, self.reached_at) = (0, 0);
        for (points, position) in awards {
            self.award(aggregate, points, position);
        }
    }

    /// `true` when the standing has a score to rank on a board of `aggregate`: always on a
    /// board that sums (a player with nothing yet has 0), once an award is kept on the others.
    pub fn has_score(&self, aggregate: Aggregate) -> bool {
        aggregate == Aggregate::Sum || self.reached_at > 0
    }

    /// The order of a board that sums between two standings (on equal score and reached-at,
    /// which a log never has, by player id).
    pub fn rank_cmp(&self, other: &Self) -> std::cmp::Ordering {
        (Reverse(self.score), self.reached_at, &self.player_id).cmp(&(
            Reverse(other.score),
            other.reached_at,
            &other.player_id,
        ))
    }
}

/// Folds `events` into one standing per player, as if each player started from nothing.
pub fn fold<'a>(events: impl IntoIterator<Item = &'a RecordedEvent>) -> Vec<Standing> {
    fold_onto(std::iter::empty(), events)
}

/// Folds `events` onto `existing` standings (those of players the events touch; a player
/// without one starts from nothing) and returns the new standing of every player touched:
/// what the projector writes back.
pub fn fold_onto<'a>(
    existing: impl IntoIterator<Item = Standing>,
    events: impl IntoIterator<Item = &'a RecordedEvent>,
) -> Vec<Standing> {
    let existing: HashMap<PlayerId, Standing> = existing.into_iter().map(|s| (s.player_id.clone(), s)).collect();
    let mut touched: BTreeMap<PlayerId, Standing> = BTreeMap::new();
    for recorded in events {
        let player = recorded.event.player_id();
        touched
            .entry(player.clone())
            .or_insert_with(|| existing.get(player).cloned().unwrap_or_else(|| Standing::new(player.clone())))
            .apply(recorded);
    }
    touched.into_values().collect()
}

/// What the projector announces after each commit: the new standings of every player whose
/// events it folded in `(from, to]`. Standings are absolute, so a board at any position in
/// `from..to` reaches `to` by applying the change; a board behind `from` has missed a change
/// and must be reloaded. A change with `from == to` is a heartbeat: it tells a board that
/// missed the last change that it is behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardChange {
    /// The checkpoint before the commit.
    pub from: u64,
    /// The checkpoint after it.
    pub to: u64,
    /// The standings the commit changed.
    pub standings: Vec<Standing>,
}

/// A board that is behind a change it was offered: it missed the changes in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("board at position {board} missed the changes up to {change_from}")]
pub struct Behind {
    /// Where the board is.
    pub board: u64,
    /// Where the change starts.
    pub change_from: u64,
}

/// A standing with its rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked<'a> {
    /// 1-based, no ties.
    pub rank: u64,
    /// The standing.
    pub standing: &'a Standing,
}

/// Every player's standing, ranked, as of a position of the log. Finding a player's rank and
/// reading a page of the board cost O(log n). Banned players are kept aside, on no page and
/// with no rank, until they are unbanned.
///
/// Laid out by slot, each player's standing held once: the standings in a vector (a player's
/// slot is their index in it, for as long as the board lives: nobody leaves a board, a banned
/// player only leaves its ranking), an index from a player's id to their slot that stores only
/// the slot (the id is the standing's), and the ranking of `(score, reached_at, player_id)` —
/// the id, not the slot, breaks ties, so that every replica ranks alike whatever order it
/// loaded its players in (players banned and unbanned before any award all tie at nothing).
/// The ids are shared, not copied: [`PlayerId`] is reference counted. Bytes per player:
/// BENCHMARKS.md.
#[derive(Clone, Default)]
pub struct Board {
    /// Every standing, banned ones included; a player's slot is its index.
    standings: Vec<Standing>,
    /// The slot of each player, hashed by their id.
    slots: hashbrown::HashTable<u32>,
    /// The players on the board (not banned, with a score), in rank order.
    ranking: indexset::BTreeSet<Rank>,
    position: u64,
    aggregate: Aggregate,
}

/// Where a standing sorts on the board: score descending (ascending on a board of
/// [`Aggregate::Min`]: the key is then the score's complement), then reached-at ascending, then
/// the player's id (as [`Standing::rank_cmp`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    key: Reverse<u64>,
    reached_at: u64,
    player_id: PlayerId,
}

impl Rank {
    fn of(standing: &Standing, aggregate: Aggregate) -> Self {
        let key = match aggregate {
            Aggregate::Min => u64::MAX - standing.score,
            _ => standing.score,
        };
        Self { key: Reverse(key), reached_at: standing.reached_at, player_id: standing.player_id.clone() }
    }
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board").field("position", &self.position).field("players", &self.len()).finish_non_exhaustive()
    }
}

/// The hash of a player's id, the same for every board.
fn id_hash(player_id: &str) -> u64 {
    use std::hash::BuildHasher as _;
    static STATE: std::sync::OnceLock<foldhash::fast::RandomState> = std::sync::OnceLock::new();
    STATE.get_or_init(foldhash::fast::RandomState::default).hash_one(player_id)
}

impl Board {
    /// An empty board that sums, at position 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty board of `aggregate`, at position 0.
    pub fn of(aggregate: Aggregate) -> Self {
        Self { aggregate, ..Self::default() }
    }

    /// The board that sums made of `standings`, as of `position`.
    pub fn from_standings(position: u64, standings: impl IntoIterator<Item = Standing>) -> Self {
        Self::of(Aggregate::Sum).with(position, standings)
    }

    /// This (empty) board made of `standings`, as of `position`.
    pub fn with(self, position: u64, standings: impl IntoIterator<Item = Standing>) -> Self {
        let standings = standings.into_iter();
        let mut board = self;
        board.standings.reserve_exact(standings.size_hint().0);
        board.slots.reserve(standings.size_hint().0, |&slot| id_hash(board_id(&board.standings, slot)));
        for standing in standings {
            board.put(standing);
        }
        board.standings.shrink_to_fit();
        board.position = position;
        board
    }

    /// The last log position folded into this board.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// How many players are on the board (banned players are not).
    pub fn len(&self) -> usize {
        self.ranking.len()
    }

    /// `true` before any player scored.
    pub fn is_empty(&self) -> bool {
        self.ranking.is_empty()
    }

    /// The slot of `player_id`, if the board holds them.
    fn slot(&self, player_id: &str) -> Option<u32> {
        let standings = &self.standings;
        self.slots.find(id_hash(player_id), |&slot| board_id(standings, slot) == player_id).copied()
    }

    /// How the board makes one standing of a player's awards.
    pub fn aggregate(&self) -> Aggregate {
        self.aggregate
    }

    /// `true` when `standing` ranks on the board: not banned, and with a score.
    fn ranks(&self, standing: &Standing) -> bool {
        !standing.banned && standing.has_score(self.aggregate)
    }

    /// Folds the next event of the log into a board that sums. Events at or before
    /// [`Board::position`] are ignored, so replaying a prefix twice changes nothing.
    pub fn apply(&mut self, recorded: &RecordedEvent) {
        debug_assert_eq!(self.aggregate, Aggregate::Sum, "the board of a log that sums");
        if recorded.position <= self.position {
            return;
        }
        let player = recorded.event.player_id();
        let mut standing =
            self.held_standing(player.as_str()).cloned().unwrap_or_else(|| Standing::new(player.clone()));
        standing.apply(recorded);
        self.put(standing);
        self.position = recorded.position;
    }

    /// Replaces a player's standing with `standing` (computed elsewhere, e.g. by the projector).
    pub fn put(&mut self, standing: Standing) {
        let slot = self.slot(standing.player_id.as_str());
        if let Some(previous) = slot.map(|slot| &self.standings[slot as usize])
            && self.ranks(previous)
        {
            self.ranking.remove(&Rank::of(previous, self.aggregate));
        }
        if self.ranks(&standing) {
            self.ranking.insert(Rank::of(&standing, self.aggregate));
        }
        match slot {
            Some(slot) => self.standings[slot as usize] = standing,
            None => {
                let slot = u32::try_from(self.standings.len()).expect("fewer than 2^32 players on a board");
                let hash = id_hash(standing.player_id.as_str());
                self.standings.push(standing);
                let standings = &self.standings;
                self.slots.insert_unique(hash, slot, |&slot| id_hash(board_id(standings, slot)));
            }
        }
    }

    /// Applies a projector's change. `Ok(true)` when the board moved, `Ok(false)` when the
    /// change was old news, `Err` when the board missed the changes before it.
    pub fn apply_change(&mut self, change: &BoardChange) -> Result<bool, Behind> {
        if change.from > self.position {
            return Err(Behind { board: self.position, change_from: change.from });
        }
        if change.to <= self.position {
            return Ok(false);
        }
        for standing in &change.standings {
            self.put(standing.clone());
        }
        self.position = change.to;
        Ok(true)
    }

    /// A player's standing as the board holds it, banned or not (compare [`Board::standing`]).
    pub fn held_standing(&self, player_id: &str) -> Option<&Standing> {
        self.slot(player_id).map(|slot| &self.standings[slot as usize])
    }

    /// Makes `standing` hold the id this board holds for its player, and the name when it is the
    /// same: one allocation of each, however many boards hold the player.
    pub fn share_ids(&self, standing: &mut Standing) {
        if let Some(held) = self.held_standing(standing.player_id.as_str()) {
            standing.player_id = held.player_id.clone();
            if standing.name == held.name {
                standing.name.clone_from(&held.name);
            }
        }
    }

    /// Every standing, banned ones included, in no particular order: what the read model holds.
    pub fn standings(&self) -> impl Iterator<Item = &Standing> {
        self.standings.iter()
    }

    /// A player's standing on the board: `None` for a banned player, or one without a score
    /// (compare [`Board::held_standing`]).
    pub fn standing(&self, player_id: &str) -> Option<&Standing> {
        self.held_standing(player_id).filter(|standing| self.ranks(standing))
    }

    /// A player's standing with their rank (1-based), in O(log n).
    pub fn ranked(&self, player_id: &str) -> Option<Ranked<'_>> {
        let standing = self.standing(player_id)?;
        let rank = self.ranking.rank(&Rank::of(standing, self.aggregate)) as u64 + 1;
        Some(Ranked { rank, standing })
    }

    /// The standings of `players` the board ranks (the others left out, each player once), with
    /// their ranks on the whole board, in rank order: a board of friends, in O(k log n).
    pub fn among<'a>(&'a self, players: impl IntoIterator<Item = &'a str>) -> Vec<Ranked<'a>> {
        let mut ranked: Vec<Ranked<'a>> = players.into_iter().filter_map(|player| self.ranked(player)).collect();
        ranked.sort_unstable_by_key(|r| r.rank);
        ranked.dedup_by_key(|r| r.rank);
        ranked
    }

    /// The `2·radius + 1` standings centred on a player's (fewer where the board ends), in rank
    /// order; `None` when the player is not on the board.
    pub fn around(&self, player_id: &str, radius: usize) -> Option<Vec<Ranked<'_>>> {
        let rank = usize::try_from(self.ranked(player_id)?.rank).unwrap_or(usize::MAX);
        let first = rank.saturating_sub(1).saturating_sub(radius);
        Some(self.page(first, (rank - first).saturating_add(radius)))
    }

    /// `limit` standings from rank `offset + 1` on.
    pub fn page(&self, offset: usize, limit: usize) -> Vec<Ranked<'_>> {
        let end = offset.saturating_add(limit).min(self.ranking.len());
        if offset >= end {
            return Vec::new();
        }
        self.ranking
            .range_idx(offset..end)
            .zip(offset as u64 + 1..)
            .map(|(key, rank)| {
                let standing = self.held_standing(key.player_id.as_str()).expect("every ranked player has a slot");
                Ranked { rank, standing }
            })
            .collect()
    }
}

/// The id of the player in `slot` of `standings`.
fn board_id(standings: &[Standing], slot: u32) -> &str {
    standings[slot as usize].player_id.as_str()
}

/// The board as it stood at a past position, read from a snapshot of the fold, the standings
/// the folds after it changed, and the events after those folded on top, without building a
/// whole [`Board`]: the players changed or touched since the snapshot are placed again,
/// everyone else keeps their place in the snapshot, and a page is the merge of the two orders.
/// Building one costs O(players + changed · log changed).
#[derive(Debug, Clone, Default)]
pub struct PastBoard {
    position: u64,
    /// Players the tail did not touch, not banned, in rank order.
    kept: Vec<Standing>,
    /// Players the tail touched, not banned, in rank order.
    moved: Vec<Standing>,
}

impl PastBoard {
    /// The board after `changed` (the standings the folds after `snapshot_position` wrote, up
    /// to `changed_through`, in order: a later one of a player replaces an earlier) replaced
    /// theirs in `snapshot` (every standing of the fold at `snapshot_position`, banned ones
    /// included, in any order), and `tail` (the log's events right after `changed_through`, in
    /// order) was folded on top.
    pub fn new(
        snapshot_position: u64,
        snapshot: Vec<Standing>,
        changed_through: u64,
        changed: impl IntoIterator<Item = Standing>,
        tail: &[RecordedEvent],
    ) -> Self {
        let tail: Vec<&RecordedEvent> = tail.iter().filter(|e| e.position > changed_through).collect();
        let position = tail.last().map_or(changed_through.max(snapshot_position), |e| e.position);
        let mut latest: HashMap<PlayerId, Standing> = changed.into_iter().map(|s| (s.player_id.clone(), s)).collect();
        let touched: std::collections::HashSet<&PlayerId> = tail.iter().map(|e| e.event.player_id()).collect();
        // The tail folds onto the snapshot's standing of a player it touched, unless a change
        // since replaced it; whoever was changed or touched is placed again.
        for standing in snapshot.iter().filter(|s| touched.contains(&s.player_id)) {
            latest.entry(standing.player_id.clone()).or_insert_with(|| standing.clone());
        }
        let mut kept = snapshot;
        kept.retain(|s| !s.banned && !latest.contains_key(&s.player_id));
        kept.sort_unstable_by(Standing::rank_cmp);
        let bases: Vec<Standing> = touched.iter().filter_map(|player| latest.get(*player).cloned()).collect();
        for standing in fold_onto(bases, tail) {
            latest.insert(standing.player_id.clone(), standing);
        }
        let mut moved: Vec<Standing> = latest.into_values().filter(|s| !s.banned).collect();
        moved.sort_unstable_by(Standing::rank_cmp);
        Self { position, kept, moved }
    }

    /// The last log position folded.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// How many players were on the board.
    pub fn len(&self) -> usize {
        self.kept.len() + self.moved.len()
    }

    /// `true` when nobody was on the board.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `limit` standings from rank `offset + 1` on.
    pub fn page(&self, offset: usize, limit: usize) -> Vec<Ranked<'_>> {
        let (mut kept, mut moved) = (self.kept.iter().peekable(), self.moved.iter().peekable());
        std::iter::from_fn(|| match (kept.peek(), moved.peek()) {
            (Some(k), Some(m)) if m.rank_cmp(k).is_lt() => moved.next(),
            (Some(_), _) => kept.next(),
            (None, _) => moved.next(),
        })
        .zip(1..)
        .skip(offset)
        .take(limit)
        .map(|(standing, rank)| Ranked { rank, standing })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ScoreAwarded;
    use crate::ids::Points;
    use uuid::Uuid;

    fn awarded(position: u64, player: &str, points: i64, name: Option<&str>) -> RecordedEvent {
        RecordedEvent {
            position,
            event: Event::ScoreAwarded(ScoreAwarded {
                event_id: Uuid::now_v7(),
                action_id: Uuid::new_v4(),
                player_id: player.parse().unwrap(),
                display_name: name.map(|n| DisplayName::parse(n).unwrap()),
                action: "complete_task".parse().unwrap(),
                points: Points::new(points).unwrap(),
                token_issued_at: 0,
                key_id: "k1".parse().unwrap(),
                recorded_at: time::OffsetDateTime::UNIX_EPOCH,
            }),
        }
    }

    fn board_of(events: &[RecordedEvent]) -> Board {
        let mut board = Board::new();
        events.iter().for_each(|e| board.apply(e));
        board
    }

    fn order(board: &Board) -> Vec<(u64, String, u64)> {
        board.page(0, 100).iter().map(|r| (r.rank, r.standing.player_id.to_string(), r.standing.score)).collect()
    }

    #[test]
    fn score_is_the_sum_of_points_and_reached_at_the_latest_position() {
        // Given alice scored twice and bob once
        let events = [awarded(1, "alice", 10, None), awarded(2, "bob", 5, None), awarded(3, "alice", 7, None)];
        // When the events are folded
        let standings = fold(&events);
        // Then
        let alice = standings.iter().find(|s| s.player_id.as_str() == "alice").unwrap();
        assert_eq!((alice.score, alice.reached_at), (17, 3));
        let bob = standings.iter().find(|s| s.player_id.as_str() == "bob").unwrap();
        assert_eq!((bob.score, bob.reached_at), (5, 2));
    }

    #[test]
    fn the_latest_name_given_wins_and_a_missing_name_keeps_the_last() {
        let events = [awarded(1, "a", 1, Some("Ann")), awarded(2, "a", 1, Some("Anna")), awarded(3, "a", 1, None)];
        assert_eq!(fold(&events)[0].name.as_ref().map(DisplayName::as_str), Some("Anna"));
    }

    #[test]
    fn higher_score_ranks_first() {
        let board = board_of(&[awarded(1, "low", 5, None), awarded(2, "high", 50, None)]);
        assert_eq!(order(&board), [(1, "high".into(), 50), (2, "low".into(), 5)]);
    }

    #[test]
    fn on_equal_score_whoever_reached_it_first_ranks_higher() {
        // Given bob reached 20 at position 2 and alice reached 20 at position 3
        let board =
            board_of(&[awarded(1, "alice", 10, None), awarded(2, "bob", 20, None), awarded(3, "alice", 10, None)]);
        // Then bob ranks first although alice started first
        assert_eq!(order(&board), [(1, "bob".into(), 20), (2, "alice".into(), 20)]);
        assert_eq!(board.ranked("bob").unwrap().rank, 1);
        assert_eq!(board.ranked("alice").unwrap().rank, 2);
    }

    #[test]
    fn ranks_are_consecutive_without_ties() {
        let events: Vec<_> = (1..=20).map(|p| awarded(p, &format!("p{}", p % 7), 10, None)).collect();
        let board = board_of(&events);
        let ranks: Vec<u64> = board.page(0, 100).iter().map(|r| r.rank).collect();
        assert_eq!(ranks, (1..=7).collect::<Vec<_>>());
        for ranked in board.page(0, 100) {
            assert_eq!(board.ranked(ranked.standing.player_id.as_str()).unwrap().rank, ranked.rank);
        }
    }

    #[test]
    fn pages_continue_where_the_previous_ended() {
        let events: Vec<_> = (1..=10).map(|p| awarded(p, &format!("p{p}"), p as i64, None)).collect();
        let board = board_of(&events);
        let second: Vec<_> = board.page(3, 3).iter().map(|r| (r.rank, r.standing.score)).collect();
        assert_eq!(second, [(4, 7), (5, 6), (6, 5)]);
        assert_eq!(board.page(9, 5).len(), 1);
        assert!(board.page(10, 5).is_empty());
        assert!(board.page(usize::MAX, 5).is_empty());
    }

    #[test]
    fn replaying_events_already_folded_changes_nothing() {
        let events = [awarded(1, "a", 10, None), awarded(2, "b", 5, None)];
        let mut board = board_of(&events);
        events.iter().for_each(|e| board.apply(e));
        assert_eq!(order(&board), [(1, "a".into(), 10), (2, "b".into(), 5)]);
        assert_eq!(board.position(), 2);
    }

    #[test]
    fn folding_in_batches_onto_the_standings_so_far_equals_folding_at_once() {
        // Given a log split into two batches
        let events: Vec<_> = (1..=30).map(|p| awarded(p, &format!("p{}", p % 4), (p % 5 + 1) as i64, None)).collect();
        let (first, second) = events.split_at(13);
        // When the second batch is folded onto the first's standings (what the projector does)
        let mut standings: BTreeMap<PlayerId, Standing> =
            fold(first).into_iter().map(|s| (s.player_id.clone(), s)).collect();
        for later in fold_onto(standings.values().cloned().collect::<Vec<_>>(), second) {
            standings.insert(later.player_id.clone(), later);
        }
        // Then the result is the fold of the whole log
        let folded = Board::from_standings(30, standings.into_values());
        assert_eq!(order(&folded), order(&board_of(&events)));
        assert_eq!(folded.position(), board_of(&events).position());
    }

    fn moderated(position: u64, player: &str, banned: bool) -> RecordedEvent {
        let moderated = crate::event::Moderated {
            event_id: Uuid::now_v7(),
            player_id: player.parse().unwrap(),
            operator: "ops".parse().unwrap(),
            reason: "testing".parse().unwrap(),
            recorded_at: time::OffsetDateTime::UNIX_EPOCH,
        };
        let event = if banned { Event::PlayerBanned(moderated) } else { Event::PlayerUnbanned(moderated) };
        RecordedEvent { position, event }
    }

    #[test]
    fn a_banned_player_is_on_no_board_and_comes_back_with_their_score_when_unbanned() {
        // Given alice leads and bob follows
        let mut events =
            vec![awarded(1, "alice", 50, None), awarded(2, "bob", 20, None), awarded(3, "carol", 20, None)];
        // When alice is banned
        events.push(moderated(4, "alice", true));
        let board = board_of(&events);
        // Then she has no rank, the others move up, and she is not counted
        assert_eq!(order(&board), [(1, "bob".into(), 20), (2, "carol".into(), 20)]);
        assert!(board.ranked("alice").is_none() && board.standing("alice").is_none());
        assert_eq!(board.held_standing("alice").map(|s| s.score), Some(50));
        assert_eq!(board.len(), 2);
        // And unbanned, she is back with the score she had, reached where she reached it
        events.push(moderated(5, "alice", false));
        let board = board_of(&events);
        assert_eq!(order(&board), [(1, "alice".into(), 50), (2, "bob".into(), 20), (3, "carol".into(), 20)]);
        assert_eq!(board.standing("alice").unwrap().reached_at, 1);
        // And the fold that the projector writes gives the same boards
        let folded = Board::from_standings(5, fold(&events));
        assert_eq!(order(&folded), order(&board));
        let banned = Board::from_standings(4, fold(&events[..4]));
        assert_eq!(order(&banned), order(&board_of(&events[..4])));
        assert_eq!(banned.len(), 2);
    }

    #[test]
    fn changes_apply_from_anywhere_in_their_range_and_gaps_are_reported() {
        // Given the log and the change a projector would announce for positions 3..=5
        let events: Vec<_> = (1..=5).map(|p| awarded(p, &format!("p{}", p % 3), 10, None)).collect();
        let whole = board_of(&events);
        let change = BoardChange {
            from: 2,
            to: 5,
            standings: events[2..]
                .iter()
                .map(|e| whole.standing(e.event.player_id().as_str()).unwrap().clone())
                .collect(),
        };
        // When boards at 2 and at 3 apply it, both reach the whole fold
        for at in [2, 3] {
            let mut board = board_of(&events[..at]);
            assert_eq!(board.apply_change(&change), Ok(true));
            assert_eq!(order(&board), order(&whole));
            assert_eq!(board.position(), 5);
        }
        // A board at 5 ignores it; a board at 1 missed position 2
        let mut current = whole.clone();
        assert_eq!(current.apply_change(&change), Ok(false));
        let mut behind = board_of(&events[..1]);
        assert_eq!(behind.apply_change(&change), Err(Behind { board: 1, change_from: 2 }));
        let heartbeat = BoardChange { from: 5, to: 5, standings: vec![] };
        assert_eq!(board_of(&events[..4]).apply_change(&heartbeat), Err(Behind { board: 4, change_from: 5 }));
    }

    #[test]
    fn around_a_player_is_centred_on_them_where_the_board_allows() {
        // Given ten players, p0 first … p9 last, and p10 tied with p9 but reaching it later
        let mut events: Vec<RecordedEvent> =
            (0..10).map(|i| awarded(i + 1, &format!("p{i}"), 100 - i as i64, None)).collect();
        events.push(awarded(11, "p10", 91, None));
        let board = board_of(&events);
        let ranks = |player: &str, radius: usize| -> Vec<(u64, String)> {
            board.around(player, radius).unwrap().iter().map(|r| (r.rank, r.standing.player_id.to_string())).collect()
        };
        // Then the middle has radius on each side, the ends fewer, ties break by who reached it first
        assert_eq!(ranks("p5", 2).iter().map(|r| r.0).collect::<Vec<_>>(), [4, 5, 6, 7, 8]);
        assert_eq!(ranks("p0", 2).iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(ranks("p10", 1), [(10, "p9".to_string()), (11, "p10".to_string())]);
        assert_eq!(ranks("p9", 0), [(10, "p9".to_string())]);
        assert!(board.around("nobody", 3).is_none());
        assert_eq!(board.around("p5", usize::MAX).unwrap().len(), 11);
    }

    #[test]
    fn putting_a_new_standing_moves_the_player() {
        let mut board = board_of(&[awarded(1, "a", 10, None), awarded(2, "b", 5, None)]);
        let mut b = board.standing("b").unwrap().clone();
        b.score = 11;
        b.reached_at = 3;
        board.put(b);
        assert_eq!(order(&board), [(1, "b".into(), 11), (2, "a".into(), 10)]);
        assert_eq!(board.len(), 2);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Logs of up to 60 events by up to 6 players, 1 to 500 points each.
        fn logs() -> impl Strategy<Value = Vec<RecordedEvent>> {
            proptest::collection::vec((0..6usize, 1..=500i64, proptest::bool::ANY), 0..60).prop_map(|entries| {
                entries
                    .into_iter()
                    .zip(1..)
                    .map(|((player, points, named), position)| {
                        let name = named.then(|| format!("Player {player}"));
                        awarded(position, &format!("p{player}"), points, name.as_deref())
                    })
                    .collect()
            })
        }

        /// Logs as [`logs`] makes them, with bans, unbans and revocations of all of a player's
        /// points among the awards.
        fn moderated_logs() -> impl Strategy<Value = Vec<RecordedEvent>> {
            proptest::collection::vec((0..6usize, 0..12u8, 1..=500i64), 0..80).prop_map(|entries| {
                entries
                    .into_iter()
                    .zip(1..)
                    .map(|((player, kind, points), position)| {
                        let player = format!("p{player}");
                        match kind {
                            0 => moderated(position, &player, true),
                            1 => moderated(position, &player, false),
                            2 => revoked_all(position, &player),
                            _ => awarded(position, &player, points, (kind == 3).then_some("Named")),
                        }
                    })
                    .collect()
            })
        }

        fn revoked_all(position: u64, player: &str) -> RecordedEvent {
            let event = Event::ScoreRevoked(crate::event::ScoreRevoked {
                event_id: Uuid::now_v7(),
                player_id: player.parse().unwrap(),
                award: None,
                operator: "ops".parse().unwrap(),
                reason: "testing".parse().unwrap(),
                recorded_at: time::OffsetDateTime::UNIX_EPOCH,
            });
            RecordedEvent { position, event }
        }

        fn standings(board: &Board) -> Vec<Standing> {
            board.page(0, usize::MAX).into_iter().map(|r| r.standing.clone()).collect()
        }

        proptest! {
            /// Folding a log in batches, however it is cut, gives the board of folding it whole.
            #[test]
            fn the_fold_is_independent_of_batch_boundaries(log in logs(), cuts in proptest::collection::vec(0..60usize, 0..8)) {
                let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(log.len())).collect();
                cuts.extend([0, log.len()]);
                cuts.sort_unstable();
                let mut read_model: std::collections::BTreeMap<PlayerId, Standing> = Default::default();
                for batch in cuts.windows(2).map(|w| &log[w[0]..w[1]]) {
                    for standing in fold_onto(read_model.values().cloned().collect::<Vec<_>>(), batch) {
                        read_model.insert(standing.player_id.clone(), standing);
                    }
                }
                let batched = Board::from_standings(log.len() as u64, read_model.into_values());
                prop_assert_eq!(standings(&batched), standings(&board_of(&log)));
            }

            /// Redelivering events the board already folded, in any order and any number of
            /// times, changes nothing.
            #[test]
            fn each_event_counts_once_whatever_is_redelivered(log in logs(), redeliveries in proptest::collection::vec((0..60usize, 0..60usize), 0..40)) {
                let mut board = Board::new();
                let mut delivered = 0;
                for (after, again) in redeliveries {
                    let until = after.min(log.len()).max(delivered);
                    log[delivered..until].iter().for_each(|e| board.apply(e));
                    delivered = until;
                    if delivered > 0 {
                        board.apply(&log[again % delivered]);
                    }
                }
                log[delivered..].iter().for_each(|e| board.apply(e));
                prop_assert_eq!(standings(&board), standings(&board_of(&log)));
            }

            /// The board at any position, read from a snapshot at any earlier position, the
            /// standings changed after it up to any point, and the tail after that, is the board
            /// of folding the log up to there, page for page.
            #[test]
            fn a_past_board_from_a_snapshot_and_its_tail_is_the_fold(
                log in moderated_logs(), snapshot_at in 0..80usize, as_of in 0..80usize, changed_for in 0..80usize,
                offset in 0..8usize, limit in 1..8usize,
            ) {
                let as_of = as_of.min(log.len());
                let snapshot_at = snapshot_at.min(as_of);
                let changed_through = snapshot_at + changed_for.min(as_of - snapshot_at);
                let snapshot = board_of(&log[..snapshot_at]);
                // What the folds in between wrote: the standings of the players they touched.
                let then = board_of(&log[..changed_through]);
                let changed: Vec<Standing> = log[snapshot_at..changed_through]
                    .iter()
                    .map(|e| then.held_standing(e.event.player_id().as_str()).unwrap().clone())
                    .collect();
                let past = PastBoard::new(
                    snapshot_at as u64,
                    snapshot.standings().cloned().collect(),
                    changed_through as u64,
                    changed,
                    &log[changed_through..as_of],
                );
                let folded = board_of(&log[..as_of]);
                prop_assert_eq!(past.position(), as_of as u64);
                prop_assert_eq!(past.len(), folded.len());
                let page = |ranked: Vec<Ranked<'_>>| ranked.into_iter().map(|r| (r.rank, r.standing.clone())).collect::<Vec<_>>();
                prop_assert_eq!(page(past.page(offset, limit)), page(folded.page(offset, limit)));
                prop_assert_eq!(page(past.page(0, usize::MAX)), page(folded.page(0, usize::MAX)));
            }
        }
    }
}

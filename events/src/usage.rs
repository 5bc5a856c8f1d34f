//! Usage analytics: what the log says about activity, per UTC hour and UTC day, per board.
//!
//! A projection of the log like the boards, folded from the same batches: every `ScoreAwarded`
//! counts as one action, in the hour and the day its `recorded_at` falls in, on `global` and on
//! every board it counts on ([`BoardDef::counts`]). Each bucket of a board keeps
//!
//! - the actions and the points awarded, by action — exact counts;
//! - the distinct players who were awarded, as a [`Sketch`]: exact up to 256 players, a
//!   HyperLogLog of 4 096 registers beyond, whose estimate has a relative standard error of
//!   [`Sketch::STANDARD_ERROR`] (1.6 %). Sketches merge, so a whole range's distinct players are
//!   the merge of its buckets';
//! - on `global` only, the new players: those whose first award ever falls in the bucket.
//!
//! Moderation is not usage: a ban, an unban or a revocation changes no count (the boards apply
//! it), and the actions of a player banned later stay counted when they were made. A banned
//! player's action is refused before it is recorded, so it never counts.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::boards::{BoardDef, GLOBAL};
use crate::event::{Event, RecordedEvent};
use crate::ids::{ActionName, BoardId, PlayerId};
pub use crate::sketch::Sketch;

/// How long a bucket is: a UTC hour or a UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// A UTC hour.
    Hour,
    /// A UTC day.
    Day,
}

impl Granularity {
    /// Both, as each award is counted in both.
    pub const ALL: [Self; 2] = [Self::Hour, Self::Day];

    /// Its length in seconds.
    pub const fn seconds(self) -> i64 {
        match self {
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    /// The most buckets one range may span: 31 days of hours, or 366 days.
    pub const fn max_buckets(self) -> i64 {
        match self {
            Self::Hour => 31 * 24,
            Self::Day => 366,
        }
    }

    /// How many buckets a range spans when none is asked for: a day of hours, or 30 days.
    pub const fn default_buckets(self) -> i64 {
        match self {
            Self::Hour => 24,
            Self::Day => 30,
        }
    }

    /// Its name, as the API and the read model spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// The start (Unix seconds) of the bucket `at` falls in.
    pub fn start_of(self, at: OffsetDateTime) -> i64 {
        self.start_of_seconds(at.unix_timestamp())
    }

    /// The start (Unix seconds) of the bucket Unix second `seconds` falls in.
    pub fn start_of_seconds(self, seconds: i64) -> i64 {
        seconds - seconds.rem_euclid(self.seconds())
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Granularity {
    type Err = UsageError;

    fn from_str(s: &str) -> Result<Self, UsageError> {
        match s {
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            _ => Err(UsageError::Granularity),
        }
    }
}

/// Why a usage value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// A granularity is `hour` or `day`.
    #[error("granularity must be hour or day")]
    Granularity,
    /// A range ends after it starts, within the most buckets of its granularity.
    #[error("from must be before to, at most {max} {granularity}s apart")]
    Range {
        /// The granularity asked for.
        granularity: Granularity,
        /// The most buckets it allows.
        max: i64,
    },
}

/// Actions and the points they awarded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// Actions recorded.
    pub actions: u64,
    /// The points they awarded.
    pub points: u64,
}

impl Count {
    fn add(&mut self, other: Count) {
        self.actions += other.actions;
        self.points += other.points;
    }
}

/// What one bucket of one board counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    /// Actions and points, by action.
    pub by_action: BTreeMap<ActionName, Count>,
    /// Players whose first award ever is in the bucket (`global` only; 0 elsewhere).
    pub new_players: u64,
    /// The players awarded.
    pub players: Sketch,
}

impl Tally {
    /// Actions and points of every action.
    pub fn total(&self) -> Count {
        let mut total = Count::default();
        for count in self.by_action.values() {
            total.add(*count);
        }
        total
    }

    /// Adds what `other` counts.
    pub fn merge(&mut self, other: &Tally) {
        for (action, count) in &other.by_action {
            self.by_action.entry(action.clone()).or_default().add(*count);
        }
        self.new_players += other.new_players;
        self.players.merge(&other.players);
    }
}

/// One board's bucket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket {
    /// The board.
    pub board: BoardId,
    /// An hour or a day.
    pub granularity: Granularity,
    /// Its start, Unix seconds.
    pub start: i64,
}

/// What a run of the log counts, by bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Each bucket touched, with what it counts.
    pub tallies: BTreeMap<Bucket, Tally>,
}

impl Usage {
    /// What `events` count on `boards` (`global`, if among them, counts every award and the new
    /// players). `awarded_before` says whether a player had an award before these events.
    pub fn of<'a>(
        events: &[RecordedEvent],
        boards: impl IntoIterator<Item = &'a BoardDef>,
        awarded_before: impl Fn(&PlayerId) -> bool,
    ) -> Self {
        let boards: Vec<&BoardDef> = boards.into_iter().collect();
        let global = boards.iter().position(|def| def.id.as_str() == GLOBAL);
        // Each hour's tallies, one per board; the days are their merge.
        let mut hours: BTreeMap<i64, Vec<Tally>> = BTreeMap::new();
        let mut seen: HashSet<&PlayerId> = HashSet::new();
        for recorded in events {
            let Event::ScoreAwarded(award) = &recorded.event else { continue };
            let new = global.is_some() && seen.insert(&award.player_id) && !awarded_before(&award.player_id);
            let count = Count { actions: 1, points: u64::from(award.points.get()) };
            let hash = Sketch::hash(&award.player_id);
            let hour = Granularity::Hour.start_of(award.recorded_at);
            let tallies = hours.entry(hour).or_insert_with(|| vec![Tally::default(); boards.len()]);
            for (i, _) in boards.iter().enumerate().filter(|(_, def)| def.counts(&award.action)) {
                let tally = &mut tallies[i];
                match tally.by_action.get_mut(&award.action) {
                    Some(counted) => counted.add(count),
                    None => drop(tally.by_action.insert(award.action.clone(), count)),
                }
                tally.players.insert_hash(hash);
                tally.new_players += u64::from(new && Some(i) == global);
            }
        }
        let mut usage = Self::default();
        for (hour, tallies) in hours {
            for (def, tally) in boards.iter().zip(tallies).filter(|(_, tally)| !tally.by_action.is_empty()) {
                let day = Bucket {
                    board: def.id.clone(),
                    granularity: Granularity::Day,
                    start: Granularity::Day.start_of_seconds(hour),
                };
                usage.tallies.entry(day).or_default().merge(&tally);
                usage
                    .tallies
                    .insert(Bucket { board: def.id.clone(), granularity: Granularity::Hour, start: hour }, tally);
            }
        }
        usage
    }

    /// Adds what `other` counts.
    pub fn merge(&mut self, other: &Usage) {
        for (bucket, tally) in &other.tallies {
            self.tallies.entry(bucket.clone()).or_default().merge(tally);
        }
    }

    /// `true` when it counts nothing.
    pub fn is_empty(&self) -> bool {
        self.tallies.is_empty()
    }

    /// The players awarded in `events`, each once: those whose `awarded_before` [`Usage::of`]
    /// asks.
    pub fn awarded(events: &[RecordedEvent]) -> Vec<&PlayerId> {
        let mut seen = HashSet::new();
        events
            .iter()
            .filter_map(|recorded| match &recorded.event {
                Event::ScoreAwarded(award) if seen.insert(&award.player_id) => Some(&award.player_id),
                _ => None,
            })
            .collect()
    }
}

/// A range of whole buckets, `[from, to)` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Hours or days.
    pub granularity: Granularity,
    /// The first bucket's start.
    pub from: i64,
    /// The end of the last bucket.
    pub to: i64,
}

impl Window {
    /// The whole buckets that cover `[from, to)`: `to` defaults to the end of the bucket of
    /// `now`, `from` to [`Granularity::default_buckets`] before `to`. Refused when empty or
    /// wider than [`Granularity::max_buckets`].
    pub fn new(
        granularity: Granularity,
        from: Option<OffsetDateTime>,
        to: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<Self, UsageError> {
        let step = granularity.seconds();
        let to = match to {
            // Up to the end of the bucket `to` falls in, unless it is a bucket's start.
            Some(to) => {
                let start = granularity.start_of(to);
                if start == to.unix_timestamp() && to.nanosecond() == 0 { start } else { start + step }
            }
            None => granularity.start_of(now) + step,
        };
        let from = match from {
            Some(from) => granularity.start_of(from),
            None => to - granularity.default_buckets() * step,
        };
        let refused = UsageError::Range { granularity, max: granularity.max_buckets() };
        let representable = |seconds| OffsetDateTime::from_unix_timestamp(seconds).is_ok();
        if from >= to || (to - from) / step > granularity.max_buckets() || !representable(from) || !representable(to) {
            return Err(refused);
        }
        Ok(Self { granularity, from, to })
    }

    /// Every bucket's start, in order.
    pub fn starts(&self) -> impl Iterator<Item = i64> + use<> {
        let step = self.granularity.seconds();
        (self.from..self.to).step_by(step as usize)
    }
}

/// One board's numbers over a window: every bucket (empty ones included), and the whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The board.
    pub board: BoardId,
    /// The whole window: actions and new players summed, distinct players merged.
    pub total: Tally,
    /// Each bucket's start and tally, in order.
    pub buckets: Vec<(i64, Tally)>,
}

/// The series of every board `tallies` holds within `window` (`global` first, always there).
pub fn series<'a>(window: &Window, tallies: impl IntoIterator<Item = (&'a Bucket, &'a Tally)>) -> Vec<Series> {
    let global = BoardId::parse(GLOBAL).expect("a valid id");
    let mut by_board: BTreeMap<BoardId, BTreeMap<i64, Tally>> = BTreeMap::from([(global.clone(), BTreeMap::new())]);
    for (bucket, tally) in tallies {
        let inside = bucket.granularity == window.granularity && (window.from..window.to).contains(&bucket.start);
        if inside {
            by_board.entry(bucket.board.clone()).or_default().entry(bucket.start).or_default().merge(tally);
        }
    }
    let mut series: Vec<Series> = by_board
        .into_iter()
        .map(|(board, mut held)| {
            let buckets: Vec<(i64, Tally)> =
                window.starts().map(|start| (start, held.remove(&start).unwrap_or_default())).collect();
            let mut total = Tally::default();
            for (_, tally) in &buckets {
                total.merge(tally);
            }
            Series { board, total, buckets }
        })
        .collect();
    series.sort_by_key(|s| s.board != global);
    series
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;
    use crate::boards::SeasonKind;
    use crate::event::ScoreAwarded;
    use crate::ids::{KeyId, Points};
    use crate::leaderboard::Aggregate;

    fn award(position: u64, player: &str, action: &str, points: u32, at: OffsetDateTime) -> RecordedEvent {
        RecordedEvent {
            position,
            event: Event::ScoreAwarded(ScoreAwarded {
                event_id: Uuid::now_v7(),
                action_id: Uuid::now_v7(),
                player_id: PlayerId::parse(player).unwrap(),
                display_name: None,
                action: ActionName::parse(action).unwrap(),
                points: Points::new(i64::from(points)).unwrap(),
                token_issued_at: at.unix_timestamp(),
                key_id: KeyId::parse("k1").unwrap(),
                recorded_at: at,
            }),
        }
    }

    fn board(id: &str, actions: &[&str]) -> BoardDef {
        BoardDef {
            id: BoardId::parse(id).unwrap(),
            actions: Some(actions.iter().map(|a| ActionName::parse(*a).unwrap()).collect()),
            season: SeasonKind::Daily,
            aggregate: Aggregate::Sum,
        }
    }

    fn tally<'a>(usage: &'a Usage, board: &str, granularity: Granularity, start: OffsetDateTime) -> &'a Tally {
        let bucket = Bucket { board: BoardId::parse(board).unwrap(), granularity, start: start.unix_timestamp() };
        usage.tallies.get(&bucket).unwrap_or_else(|| panic!("no bucket {bucket:?}"))
    }

    #[test]
    fn an_award_counts_in_its_utc_hour_and_day_on_each_board_it_counts_on() {
        let global = BoardDef::global();
        let wins = board("wins", &["win"]);
        let events = [
            award(1, "alice", "win", 10, datetime!(2026-12-05 23:59:59.999 UTC)),
            award(2, "bob", "login", 1, datetime!(2026-12-06 00:00:00 UTC)),
            award(3, "alice", "win", 5, datetime!(2026-12-06 00:30:00 UTC)),
        ];
        let usage = Usage::of(&events, [&global, &wins], |_| false);

        let late = tally(&usage, GLOBAL, Granularity::Day, datetime!(2026-12-05 00:00 UTC));
        assert_eq!(late.total(), Count { actions: 1, points: 10 });
        assert_eq!(tally(&usage, GLOBAL, Granularity::Hour, datetime!(2026-12-05 23:00 UTC)).total().actions, 1);
        let next_day = tally(&usage, GLOBAL, Granularity::Day, datetime!(2026-12-06 00:00 UTC));
        assert_eq!(next_day.total(), Count { actions: 2, points: 6 });
        assert_eq!(next_day.by_action[&ActionName::parse("login").unwrap()], Count { actions: 1, points: 1 });
        assert_eq!(next_day.players.estimate(), 2);
        // alice's first award was the day before: she is new then, not again.
        assert_eq!(late.new_players, 1);
        assert_eq!(next_day.new_players, 1);

        let wins_day = tally(&usage, "wins", Granularity::Day, datetime!(2026-12-06 00:00 UTC));
        assert_eq!(wins_day.total(), Count { actions: 1, points: 5 });
        assert_eq!(wins_day.new_players, 0, "new players are counted on global only");
        // login counts on global only: 2 boards × 2 granularities for each win, 2 for the login.
        assert_eq!(usage.tallies.len(), 4 + 2 + 2);
    }

    #[test]
    fn a_player_is_new_once_at_their_first_award_ever() {
        let global = BoardDef::global();
        let at = datetime!(2026-12-06 10:00 UTC);
        let events = [award(7, "carol", "win", 1, at), award(8, "carol", "win", 1, at), award(9, "dave", "win", 1, at)];
        let usage = Usage::of(&events, [&global], |player| player.as_str() == "dave");
        assert_eq!(tally(&usage, GLOBAL, Granularity::Hour, at).new_players, 1, "carol only");
        assert_eq!(tally(&usage, GLOBAL, Granularity::Hour, at).players.estimate(), 2);
        // Moderation counts nothing.
        let banned = RecordedEvent {
            position: 10,
            event: Event::PlayerBanned(crate::Moderated::new(
                Uuid::now_v7(),
                PlayerId::parse("erin").unwrap(),
                crate::Operator::parse("ops").unwrap(),
                crate::Reason::parse("cheating").unwrap(),
                at,
            )),
        };
        assert!(Usage::of(&[banned], [&global], |_| false).is_empty());
    }

    #[test]
    fn merged_runs_count_what_one_run_counts() {
        let global = BoardDef::global();
        let at = datetime!(2026-12-06 10:00 UTC);
        let events: Vec<RecordedEvent> = (1..=300)
            .map(|i| award(i, &format!("p{}", i % 200), "win", 2, at + time::Duration::minutes(i as i64)))
            .collect();
        let whole = Usage::of(&events, [&global], |_| false);
        let (first, rest) = events.split_at(120);
        let mut merged = Usage::of(first, [&global], |_| false);
        let before: HashSet<&PlayerId> = Usage::awarded(first).into_iter().collect();
        merged.merge(&Usage::of(rest, [&global], |p| before.contains(p)));
        for (bucket, tally) in &whole.tallies {
            let other = &merged.tallies[bucket];
            assert_eq!((tally.total(), tally.new_players), (other.total(), other.new_players), "{bucket:?}");
            assert_eq!(tally.players.estimate(), other.players.estimate(), "{bucket:?}");
        }
        let day = tally(&whole, GLOBAL, Granularity::Day, datetime!(2026-12-06 00:00 UTC));
        assert_eq!((day.total().actions, day.new_players), (300, 200));
    }

    #[test]
    fn a_window_is_whole_buckets_within_its_cap() {
        let now = datetime!(2026-12-06 20:25 UTC);
        let hours = Window::new(Granularity::Hour, None, None, now).unwrap();
        assert_eq!(
            (hours.from, hours.to),
            (datetime!(2026-12-05 21:00 UTC).unix_timestamp(), datetime!(2026-12-06 21:00 UTC).unix_timestamp())
        );
        assert_eq!(hours.starts().count(), 24);
        let days = Window::new(
            Granularity::Day,
            Some(datetime!(2026-12-01 13:00 UTC)),
            Some(datetime!(2026-12-03 00:00 UTC)),
            now,
        )
        .unwrap();
        assert_eq!(days.starts().count(), 2, "from is floored, a to at a day's start is kept");
        let fraction = Window::new(
            Granularity::Day,
            Some(datetime!(2026-12-01 00:00 UTC)),
            Some(datetime!(2026-12-03 00:00:00.5 UTC)),
            now,
        );
        assert_eq!(fraction.unwrap().starts().count(), 3, "half a second into a day reaches into it");
        let beyond = Window::new(Granularity::Day, None, Some(datetime!(9999-12-31 12:00 UTC)), now);
        assert!(beyond.is_err(), "a range ending past what a time can say is refused, not a 500");
        let ceiled = Window::new(
            Granularity::Day,
            Some(datetime!(2026-12-01 00:00 UTC)),
            Some(datetime!(2026-12-03 00:00:01 UTC)),
            now,
        );
        assert_eq!(ceiled.unwrap().starts().count(), 3);
        let backwards = Window::new(
            Granularity::Day,
            Some(datetime!(2026-12-03 00:00 UTC)),
            Some(datetime!(2026-12-01 00:00 UTC)),
            now,
        );
        assert!(backwards.is_err());
        let wide = Window::new(Granularity::Hour, Some(datetime!(2026-10-01 00:00 UTC)), None, now);
        assert_eq!(wide, Err(UsageError::Range { granularity: Granularity::Hour, max: 744 }));
        assert!(Window::new(Granularity::Day, Some(datetime!(2025-12-06 00:00 UTC)), None, now).is_ok(), "366 days");
    }

    #[test]
    fn a_series_has_every_bucket_and_global_first() {
        let window = Window::new(
            Granularity::Day,
            Some(datetime!(2026-12-01 00:00 UTC)),
            Some(datetime!(2026-12-04 00:00 UTC)),
            datetime!(2026-12-06 00:00 UTC),
        )
        .unwrap();
        let wins = board("wins", &["win"]);
        let global = BoardDef::global();
        let events = [
            award(1, "alice", "win", 3, datetime!(2026-12-01 10:00 UTC)),
            award(2, "alice", "win", 3, datetime!(2026-12-03 10:00 UTC)),
            award(3, "bob", "win", 3, datetime!(2026-12-05 10:00 UTC)),
        ];
        let usage = Usage::of(&events, [&wins, &global], |_| false);
        let all = series(&window, &usage.tallies);
        assert_eq!(all.iter().map(|s| s.board.as_str()).collect::<Vec<_>>(), ["global", "wins"]);
        let global = &all[0];
        assert_eq!(global.buckets.iter().map(|(_, t)| t.total().actions).collect::<Vec<_>>(), [1, 0, 1]);
        assert_eq!(
            (global.total.total().actions, global.total.players.estimate(), global.total.new_players),
            (2, 1, 1)
        );
        assert!(series(&window, &BTreeMap::new()).iter().all(|s| s.board.as_str() == GLOBAL && s.buckets.len() == 3));
    }

    proptest::proptest! {
        /// Folded batch by batch, a random log counts what a naive count of it says: actions,
        /// points and new players exactly, and (at this size) distinct players exactly.
        #[test]
        fn batches_count_what_a_naive_count_says(
            log in proptest::collection::vec((0..12u8, 0..3u8, 0..1_000u32, 0..(4 * 86_400i64)), 1..120),
            cuts in proptest::collection::vec(0..120usize, 0..6),
        ) {
            let start = datetime!(2026-12-04 00:00 UTC);
            let actions = ["win", "login", "quest"];
            let events: Vec<RecordedEvent> = log
                .iter()
                .enumerate()
                .map(|(i, (player, action, points, offset))| {
                    let at = start + time::Duration::seconds(*offset);
                    award(i as u64 + 1, &format!("p{player}"), actions[*action as usize], *points, at)
                })
                .collect();
            let wins = board("wins", &["win"]);
            let global = BoardDef::global();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(events.len())).collect();
            cuts.extend([0, events.len()]);
            cuts.sort_unstable();
            let mut folded = Usage::default();
            for pair in cuts.windows(2) {
                let earlier: HashSet<&PlayerId> = Usage::awarded(&events[..pair[0]]).into_iter().collect();
                folded.merge(&Usage::of(&events[pair[0]..pair[1]], [&global, &wins], |p| earlier.contains(p)));
            }

            // The naive count: every bucket of every award, walked one by one.
            let mut naive: BTreeMap<Bucket, (u64, u64, u64, std::collections::BTreeSet<String>)> = BTreeMap::new();
            let mut first_seen = HashSet::new();
            for recorded in &events {
                let Event::ScoreAwarded(award) = &recorded.event else { unreachable!() };
                let new = first_seen.insert(award.player_id.clone());
                for def in [&global, &wins] {
                    if !def.counts(&award.action) {
                        continue;
                    }
                    for granularity in Granularity::ALL {
                        let at = award.recorded_at.unix_timestamp();
                        let bucket = Bucket { board: def.id.clone(), granularity, start: at - at.rem_euclid(granularity.seconds()) };
                        let entry = naive.entry(bucket).or_default();
                        entry.0 += 1;
                        entry.1 += u64::from(award.points.get());
                        entry.2 += u64::from(new && def.id.as_str() == GLOBAL);
                        entry.3.insert(award.player_id.to_string());
                    }
                }
            }
            proptest::prop_assert_eq!(folded.tallies.len(), naive.len());
            for (bucket, (actions, points, new, players)) in naive {
                let tally = &folded.tallies[&bucket];
                proptest::prop_assert_eq!(tally.total(), Count { actions, points });
                proptest::prop_assert_eq!(tally.new_players, new);
                proptest::prop_assert_eq!(tally.players.estimate(), players.len() as u64);
            }
        }
    }
}

//! Anomaly flags: rules over a player's recent awards that flag the player for an operator's
//! review when they start to fire. A flag changes no score: the awards were validly signed and
//! count until an operator bans the player or revokes them.
//!
//! Everything is decided by the events' own `recorded_at`, never by a clock, so replaying the
//! log flags the same players at the same positions.

use std::path::Path;

use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use crate::event::{Event, RecordedEvent};
use crate::ids::PlayerId;

/// The rules shipped as `config/anomaly-rules.example.toml`.
pub const EXAMPLE_RULES: &str = include_str!("../../config/anomaly-rules.example.toml");

/// What a rule counts in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// The number of awards.
    Actions,
    /// The sum of their points.
    Points,
}

/// One rule; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// How flags name it: 1–64 of `a-z`, `0-9` and `_`.
    pub name: String,
    /// What is counted.
    pub measure: Measure,
    /// The rule fires when the window holds more than this.
    pub limit: u64,
    /// How far back from each award the window reaches.
    pub window: Duration,
    /// Only players whose first event is at most this old are counted.
    pub new_players_within: Option<Duration>,
}

/// A set of rules, as `ANOMALY_RULES` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules(Vec<Rule>);

/// Rules that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("anomaly rules: {0}")]
pub struct RulesError(String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    rules: Vec<RuleEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    name: String,
    measure: Measure,
    limit: u64,
    window: String,
    new_players_within: Option<String>,
}

/// A window such as `90s`, `1m` or `2h` (at most a day).
fn window(text: &str) -> Result<Duration, RulesError> {
    let invalid = || RulesError(format!("{text:?} is not a window like 30s, 1m or 2h (at most 24h)"));
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let count: i64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "s" => count,
        "m" => count.saturating_mul(60),
        "h" => count.saturating_mul(3600),
        _ => return Err(invalid()),
    };
    if !(1..=86_400).contains(&seconds) {
        return Err(invalid());
    }
    Ok(Duration::seconds(seconds))
}

impl Rules {
    /// SPEC's defaults: more than 60 actions, or more than 10 000 points, by one player within
    /// a minute.
    pub fn defaults() -> Self {
        let rule = |name: &str, measure, limit| Rule {
            name: name.into(),
            measure,
            limit,
            window: Duration::MINUTE,
            new_players_within: None,
        };
        Self(vec![rule("actions_per_minute", Measure::Actions, 60), rule("points_per_minute", Measure::Points, 10_000)])
    }

    /// The rules of a TOML text: `[[rules]]` tables of `name`, `measure`, `limit`, `window`
    /// and optionally `new_players_within`.
    pub fn from_toml(text: &str) -> Result<Self, RulesError> {
        let file: RulesFile = toml::from_str(text).map_err(|e| RulesError(e.to_string()))?;
        let mut rules = Vec::new();
        for entry in file.rules {
            let valid_name = (1..=64).contains(&entry.name.len())
                && entry.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid_name {
                return Err(RulesError(format!("rule name {:?} is not 1-64 of a-z, 0-9 and _", entry.name)));
            }
            if rules.iter().any(|r: &Rule| r.name == entry.name) {
                return Err(RulesError(format!("rule {:?} is named twice", entry.name)));
            }
            rules.push(Rule {
                name: entry.name,
                measure: entry.measure,
                limit: entry.limit,
                window: window(&entry.window)?,
                new_players_within: entry.new_players_within.as_deref().map(window).transpose()?,
            });
        }
        Ok(Self(rules))
    }

    /// The rules of the file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|e| RulesError(format!("{}: {e}", path.display())))?;
        Self::from_toml(&text)
    }

    /// The rules.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.0.iter()
    }

    /// `true` when there is no rule.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How far back a detector must have seen the log to judge the next award as if it had
    /// watched from the start: two of the longest window, one for the windows themselves and
    /// one to know whether a rule was already firing at each player's award before.
    pub fn lookback(&self) -> Duration {
        self.0.iter().map(|r| r.window).max().unwrap_or(Duration::ZERO) * 2
    }

    /// Whether any rule needs to know when players were first seen.
    pub fn need_first_seen(&self) -> bool {
        self.0.iter().any(|r| r.new_players_within.is_some())
    }
}

/// Watches the log's awards in order and raises flags. It keeps, per player and rule, the
/// awards inside the rule's window and their sum, so each award costs O(rules) amortised. A
/// rule raises a flag at an award when it fires there and did not fire at the player's award
/// before: one flag per burst, not one per award.
#[derive(Debug, Clone)]
pub struct Detector {
    rules: Rules,
    position: u64,
    players: foldhash::HashMap<PlayerId, Recent>,
    first_seen: foldhash::HashMap<PlayerId, OffsetDateTime>,
    observed: u64,
}

/// A player's awards inside each rule's window.
#[derive(Debug, Clone, Default)]
struct Recent {
    windows: Vec<Window>,
    last: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Default)]
struct Window {
    awards: std::collections::VecDeque<(u64, OffsetDateTime, u64)>,
    points: u64,
    firing: bool,
}

impl Detector {
    /// A detector that has seen the log up to `position` (its windows empty).
    pub fn new(rules: Rules, position: u64) -> Self {
        Self { rules, position, players: Default::default(), first_seen: Default::default(), observed: 0 }
    }

    /// The rules it applies.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The last position observed.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Players of `events` whose first event's time the detector must be told
    /// ([`Detector::first_seen`]) before it observes them.
    pub fn unknown_players<'a>(&self, events: &'a [RecordedEvent]) -> Vec<&'a PlayerId> {
        if !self.rules.need_first_seen() {
            return Vec::new();
        }
        let mut unknown: Vec<&PlayerId> =
            events.iter().map(|e| e.event.player_id()).filter(|p| !self.first_seen.contains_key(*p)).collect();
        unknown.sort_unstable();
        unknown.dedup();
        unknown
    }

    /// Tells when `player`'s first event was recorded.
    pub fn first_seen(&mut self, player: PlayerId, at: OffsetDateTime) {
        self.first_seen.entry(player).or_insert(at);
    }

    /// Observes the next events of the log (those at or before [`Detector::position`] are
    /// ignored) and returns the flags they raise.
    pub fn observe(&mut self, events: &[RecordedEvent]) -> Vec<Flag> {
        let mut flags = Vec::new();
        for recorded in events {
            if recorded.position <= self.position {
                continue;
            }
            self.position = recorded.position;
            let Event::ScoreAwarded(award) = &recorded.event else { continue };
            // Kept only where a rule needs it: one entry per player ever seen.
            let first_seen = match self.rules.need_first_seen() {
                true => *self.first_seen.entry(award.player_id.clone()).or_insert(award.recorded_at),
                false => award.recorded_at,
            };
            let recent = self.players.entry(award.player_id.clone()).or_default();
            recent.windows.resize_with(self.rules.0.len(), Window::default);
            recent.last = Some(award.recorded_at);
            let entry = (recorded.position, award.recorded_at, u64::from(award.points.get()));
            for (rule, window) in self.rules.0.iter().zip(&mut recent.windows) {
                window.awards.push_back(entry);
                window.points += entry.2;
                while let Some(&(_, at, points)) = window.awards.front() {
                    if award.recorded_at - at < rule.window {
                        break;
                    }
                    window.awards.pop_front();
                    window.points -= points;
                }
                let counted = rule.new_players_within.is_none_or(|within| award.recorded_at - first_seen <= within);
                let measured = match rule.measure {
                    Measure::Actions => window.awards.len() as u64,
                    Measure::Points => window.points,
                };
                let fires = counted && measured > rule.limit;
                if fires && !window.firing {
                    flags.push(Flag {
                        player_id: award.player_id.clone(),
                        rule: rule.name.clone(),
                        events: window.awards.iter().map(|(position, ..)| *position).collect(),
                        position: recorded.position,
                        flagged_at: award.recorded_at,
                    });
                }
                window.firing = fires;
            }
            self.observed += 1;
            if self.observed.is_multiple_of(100_000) {
                self.forget_before(award.recorded_at - self.rules.lookback());
            }
        }
        flags
    }

    /// Forgets the windows of players with no award since `time` (kept: when they were first
    /// seen, which a new-player rule needs).
    fn forget_before(&mut self, time: OffsetDateTime) {
        self.players.retain(|_, recent| recent.last.is_some_and(|last| last >= time));
    }
}

/// A player flagged for review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The player.
    pub player_id: PlayerId,
    /// The rule that fired.
    pub rule: String,
    /// The positions of the awards in the window when it fired, in order.
    pub events: Vec<u64>,
    /// The position of the award at which it fired.
    pub position: u64,
    /// When that award was recorded.
    pub flagged_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::event::ScoreAwarded;
    use crate::ids::Points;

    fn award(position: u64, player: &str, points: i64, second: i64) -> RecordedEvent {
        RecordedEvent {
            position,
            event: Event::ScoreAwarded(ScoreAwarded {
                event_id: Uuid::now_v7(),
                action_id: Uuid::new_v4(),
                player_id: player.parse().unwrap(),
                display_name: None,
                action: "complete_task".parse().unwrap(),
                points: Points::new(points).unwrap(),
                token_issued_at: 0,
                key_id: "k1".parse().unwrap(),
                recorded_at: OffsetDateTime::UNIX_EPOCH + Duration::seconds(second),
            }),
        }
    }

    fn judge(rules: Rules, events: &[RecordedEvent], from: u64, first_seen: &[(&str, OffsetDateTime)]) -> Vec<Flag> {
        let mut detector = Detector::new(rules, 0);
        for (player, at) in first_seen {
            detector.first_seen(player.parse().unwrap(), *at);
        }
        let (before, after) = events.split_at(from as usize);
        detector.observe(before);
        detector.observe(after)
    }

    fn named(flags: &[Flag]) -> Vec<(String, String, u64)> {
        flags.iter().map(|f| (f.player_id.to_string(), f.rule.clone(), f.position)).collect()
    }

    #[test]
    fn a_burst_is_flagged_once_with_its_rule_and_events_and_normal_play_is_not() {
        // Given a cheater sending 70 awards in 35 seconds, and a player sending one a second
        let mut events = Vec::new();
        for second in 0..70 {
            events.push(award(events.len() as u64 + 1, "cheater", 10, second / 2));
            if second % 2 == 0 {
                events.push(award(events.len() as u64 + 1, "player", 10, second));
            }
        }
        // When the default rules judge them
        let flags = judge(Rules::defaults(), &events, 0, &[]);
        // Then the cheater is flagged once, at their 61st award, naming the 61 awards
        assert_eq!(flags.len(), 1, "{flags:?}");
        assert_eq!((flags[0].player_id.as_str(), flags[0].rule.as_str()), ("cheater", "actions_per_minute"));
        assert_eq!(flags[0].events.len(), 61);
        assert_eq!(flags[0].events.last(), Some(&flags[0].position));
        assert_eq!(flags[0].flagged_at, OffsetDateTime::UNIX_EPOCH + Duration::seconds(30));
    }

    #[test]
    fn points_are_summed_and_a_rule_flags_again_after_it_stopped_firing() {
        // Given 3 000-point awards: four within a minute, then a quiet hour, then four again
        let events: Vec<RecordedEvent> =
            (0..8).map(|i| award(i + 1, "whale", 3000, if i < 4 { i as i64 } else { 3600 + i as i64 })).collect();
        let flags = judge(Rules::defaults(), &events, 0, &[]);
        assert_eq!(
            named(&flags),
            [("whale".into(), "points_per_minute".into(), 4), ("whale".into(), "points_per_minute".into(), 8)]
        );
        // And judged from position 4 on, only the second burst is new
        assert_eq!(named(&judge(Rules::defaults(), &events, 4, &[])), named(&flags[1..]));
    }

    #[test]
    fn a_new_player_rule_counts_only_players_first_seen_recently() {
        let rules = Rules::from_toml(EXAMPLE_RULES).unwrap();
        let events: Vec<RecordedEvent> = (0..25).map(|i| award(i + 1, "p", 1, i as i64)).collect();
        let started = |minutes: i64| [("p", OffsetDateTime::UNIX_EPOCH - Duration::minutes(minutes))];
        assert_eq!(
            named(&judge(rules.clone(), &events, 0, &started(1))),
            [("p".into(), "new_player_burst".into(), 21)]
        );
        assert!(judge(rules.clone(), &events, 0, &started(60)).is_empty());
        // And a player never seen before is new at their first award
        assert_eq!(named(&judge(rules, &events, 0, &[])), [("p".into(), "new_player_burst".into(), 21)]);
    }

    #[test]
    fn the_example_file_holds_the_defaults_and_bad_files_are_refused() {
        let example = Rules::from_toml(EXAMPLE_RULES).unwrap();
        assert_eq!(example.iter().take(2).cloned().collect::<Vec<_>>(), Rules::defaults().0);
        for bad in [
            "[[rules]]\nname = \"x\"\nmeasure = \"actions\"\nlimit = 1\nwindow = \"1d\"\n",
            "[[rules]]\nname = \"x\"\nmeasure = \"clicks\"\nlimit = 1\nwindow = \"1m\"\n",
            "[[rules]]\nname = \"X Y\"\nmeasure = \"actions\"\nlimit = 1\nwindow = \"1m\"\n",
            "[[rules]]\nname = \"x\"\nmeasure = \"actions\"\nlimit = 1\nwindow = \"1m\"\nspeed = 3\n",
            "[[rules]]\nname = \"x\"\nmeasure = \"actions\"\nlimit = 1\nwindow = \"0s\"\n",
        ] {
            assert!(Rules::from_toml(bad).is_err(), "{bad}");
        }
        assert!(Rules::from_toml("").unwrap().is_empty());
    }
}

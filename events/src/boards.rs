//! Boards and seasons: several leaderboards over the same log. A board counts some actions (or
//! all) and restarts every season (never, every UTC day, ISO week or month), by each event's own
//! `recorded_at`, so every replay of the log puts an event in the same season.
//!
//! `global` (all actions, all time, summed) always exists: it is the board of `/v1/leaderboard`.
//! The other boards are folded by [`fold_seasons`] into one [`Standing`] per board, season and
//! player, by the same rules as `global` ([`Standing::apply_as`]), each with its [`Aggregate`]:
//!
//! - an award counts on every board whose actions include it, in the season of its time;
//! - a revocation of one award takes its points back where that award counted; on a board that
//!   keeps one award (best, lowest, latest), the player's awards left there are folded again, so
//!   the next best is back (the fold then reads the player's earlier events: [`Reads::histories`]);
//! - a ban, an unban, and a revocation of all of a player's points apply to every board and
//!   season the player has a standing in (on an all-time board, as on `global`, a player without
//!   one gets one).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, Time, Weekday};

use crate::event::{Event, RecordedEvent, ScoreAwarded};
use crate::ids::{ActionName, BoardId, PlayerId};
use crate::leaderboard::{Aggregate, Standing};

/// The id of the board that always exists.
pub const GLOBAL: &str = "global";

/// How often a board starts again from nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeasonKind {
    /// Never: one season, `all-time`.
    AllTime,
    /// Every UTC day: `2026-11-23`.
    Daily,
    /// Every ISO week (Monday to Sunday, UTC): `2026-W48`.
    Weekly,
    /// Every UTC calendar month: `2026-11`.
    Monthly,
}

impl SeasonKind {
    /// Its name in `BOARDS` and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllTime => "all-time",
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
        }
    }
}

/// One season of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Season {
    /// The only season of an all-time board.
    AllTime,
    /// A UTC day.
    Day(Date),
    /// An ISO week: its year and number.
    Week(i32, u8),
    /// A calendar month.
    Month(i32, Month),
}

/// Why a season id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a {kind} season (e.g. {example})", kind = .kind.as_str())]
pub struct SeasonError {
    /// What was given.
    pub given: String,
    /// The board's kind of season.
    pub kind: SeasonKind,
    /// A season id of that kind.
    pub example: &'static str,
}

impl Season {
    /// The season of a board of `kind` that an event recorded at `at` falls in.
    pub fn of(kind: SeasonKind, at: OffsetDateTime) -> Self {
        let date = at.to_offset(time::UtcOffset::UTC).date();
        match kind {
            SeasonKind::AllTime => Self::AllTime,
            SeasonKind::Daily => Self::Day(date),
            SeasonKind::Weekly => {
                let (year, week, _) = date.to_iso_week_date();
                Self::Week(year, week)
            }
            SeasonKind::Monthly => Self::Month(date.year(), date.month()),
        }
    }

    /// Reads a season id of a board of `kind`, in exactly the form [`Season`]'s `Display` writes.
    pub fn parse(kind: SeasonKind, id: &str) -> Result<Self, SeasonError> {
        let example = match kind {
            SeasonKind::AllTime => "all-time",
            SeasonKind::Daily => "2026-11-23",
            SeasonKind::Weekly => "2026-W48",
            SeasonKind::Monthly => "2026-11",
        };
        let error = || SeasonError { given: id.to_string(), kind, example };
        let number = |s: &str, digits: usize| -> Result<i32, SeasonError> {
            if s.len() == digits && s.bytes().all(|b| b.is_ascii_digit()) {
                s.parse().map_err(|_| error())
            } else {
                Err(error())
            }
        };
        let season = match kind {
            SeasonKind::AllTime if id == "all-time" => Self::AllTime,
            SeasonKind::AllTime => return Err(error()),
            SeasonKind::Daily => {
                let mut parts = id.splitn(3, '-');
                let (year, month, day) = (parts.next(), parts.next(), parts.next());
                let (Some(year), Some(month), Some(day)) = (year, month, day) else { return Err(error()) };
                let month =
                    Month::try_from(u8::try_from(number(month, 2)?).map_err(|_| error())?).map_err(|_| error())?;
                let day = u8::try_from(number(day, 2)?).map_err(|_| error())?;
                Self::Day(Date::from_calendar_date(number(year, 4)?, month, day).map_err(|_| error())?)
            }
            SeasonKind::Weekly => {
                let (year, week) = id.split_once("-W").ok_or_else(error)?;
                let (year, week) = (number(year, 4)?, u8::try_from(number(week, 2)?).map_err(|_| error())?);
                Date::from_iso_week_date(year, week, Weekday::Monday).map_err(|_| error())?;
                Self::Week(year, week)
            }
            SeasonKind::Monthly => {
                let (year, month) = id.split_once('-').ok_or_else(error)?;
                let month =
                    Month::try_from(u8::try_from(number(month, 2)?).map_err(|_| error())?).map_err(|_| error())?;
                Self::Month(number(year, 4)?, month)
            }
        };
        Ok(season)
    }

    /// The first day of the season (`None` for all time).
    fn first_day(self) -> Option<Date> {
        match self {
            Self::AllTime => None,
            Self::Day(date) => Some(date),
            Self::Week(year, week) => Date::from_iso_week_date(year, week, Weekday::Monday).ok(),
            Self::Month(year, month) => Date::from_calendar_date(year, month, 1).ok(),
        }
    }

    /// The season after this one (`None` for all time, or past the calendar's end).
    pub fn next(self) -> Option<Self> {
        let first_day = self.first_day()?;
        let next_first_day = match self {
            Self::AllTime => return None,
            Self::Day(date) => date.next_day()?,
            Self::Week(..) => first_day.checked_add(time::Duration::weeks(1))?,
            Self::Month(year, Month::December) => Date::from_calendar_date(year + 1, Month::January, 1).ok()?,
            Self::Month(year, month) => Date::from_calendar_date(year, month.next(), 1).ok()?,
        };
        let kind = match self {
            Self::Day(_) => SeasonKind::Daily,
            Self::Week(..) => SeasonKind::Weekly,
            _ => SeasonKind::Monthly,
        };
        Some(Self::of(kind, next_first_day.with_time(Time::MIDNIGHT).assume_utc()))
    }

    /// When the season starts (`None` for all time).
    pub fn starts_at(self) -> Option<OffsetDateTime> {
        Some(self.first_day()?.with_time(Time::MIDNIGHT).assume_utc())
    }

    /// When the next season starts (`None` for all time).
    pub fn ends_at(self) -> Option<OffsetDateTime> {
        self.next()?.starts_at()
    }
}

/// Reads a season id of any kind, telling the kind by its shape (as the read model stores it).
impl std::str::FromStr for Season {
    type Err = SeasonError;

    fn from_str(id: &str) -> Result<Self, SeasonError> {
        let kind = match id.len() {
            _ if id == "all-time" => SeasonKind::AllTime,
            _ if id.contains("-W") => SeasonKind::Weekly,
            7 => SeasonKind::Monthly,
            _ => SeasonKind::Daily,
        };
        Self::parse(kind, id)
    }
}

impl Serialize for Season {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for Season {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AllTime => f.write_str("all-time"),
            Self::Day(date) => write!(f, "{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day()),
            Self::Week(year, week) => write!(f, "{year:04}-W{week:02}"),
            Self::Month(year, month) => write!(f, "{year:04}-{:02}", u8::from(*month)),
        }
    }
}

/// One board: the actions that count on it and how often it starts again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardDef {
    /// Its id.
    pub id: BoardId,
    /// The actions that count; `None`: all of them.
    pub actions: Option<BTreeSet<ActionName>>,
    /// Its seasons.
    pub season: SeasonKind,
    /// How it makes one standing of a player's awards.
    pub aggregate: Aggregate,
}

impl BoardDef {
    /// `global`: every action, all time, summed.
    pub fn global() -> Self {
        Self {
            id: BoardId::parse(GLOBAL).expect("a valid id"),
            actions: None,
            season: SeasonKind::AllTime,
            aggregate: Aggregate::Sum,
        }
    }

    /// `true` when `action` counts on this board.
    pub fn counts(&self, action: &ActionName) -> bool {
        self.actions.as_ref().is_none_or(|actions| actions.contains(action))
    }

    /// The season an event recorded at `at` counts in.
    pub fn season_of(&self, at: OffsetDateTime) -> Season {
        Season::of(self.season, at)
    }

    /// Its definition as one line of text: the read model keeps it, so that a board whose
    /// definition changed is built again from the log.
    pub fn definition(&self) -> String {
        let actions = match &self.actions {
            None => "*".to_string(),
            Some(actions) => actions.iter().map(ActionName::as_str).collect::<Vec<_>>().join(","),
        };
        let aggregate = match self.aggregate {
            // A board defined before aggregates existed keeps its definition, and its standings.
            Aggregate::Sum => String::new(),
            other => format!(";aggregate={}", other.as_str()),
        };
        format!("season={};actions={actions}{aggregate}", self.season.as_str())
    }
}

impl BoardDef {
    /// Board `id` as [`BoardDef::definition`] wrote `text` (`None`: `text` is not a definition).
    pub fn from_definition(id: BoardId, text: &str) -> Option<Self> {
        let (mut season, mut actions, mut aggregate) = (None, None, Aggregate::Sum);
        for part in text.split(';') {
            let (key, value) = part.split_once('=')?;
            let quoted = serde_json::Value::String(value.to_string());
            match key {
                "season" => season = Some(serde_json::from_value::<SeasonKind>(quoted).ok()?),
                "aggregate" => aggregate = serde_json::from_value::<Aggregate>(quoted).ok()?,
                "actions" if value == "*" => actions = Some(None),
                "actions" => {
                    let names = value.split(',').map(ActionName::parse).collect::<Result<BTreeSet<_>, _>>().ok()?;
                    actions = Some(Some(names));
                }
                _ => return None,
            }
        }
        Some(Self { id, actions: actions?, season: season?, aggregate })
    }
}

/// Why `BOARDS` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BoardsError {
    /// The file could not be read.
    #[error("cannot read board definitions {path}")]
    Read {
        /// The path that was tried.
        path: String,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML of the shape `[boards.<id>] actions = [...] season = "..." aggregate = "..."`, or
    /// a bad id or action.
    #[error("board definitions are not valid: {0}")]
    Syntax(String),
    /// `global` is defined by Scoreboard: all actions, all time.
    #[error("board definitions: `global` is built in (all actions, all time) and cannot be redefined")]
    Global,
    /// A board with an empty `actions` list would count nothing.
    #[error("board definitions: {0}: `actions` is empty (leave it out to count every action)")]
    NoActions(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardsFile {
    #[serde(default)]
    boards: BTreeMap<BoardId, BoardEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardEntry {
    actions: Option<BTreeSet<ActionName>>,
    season: SeasonKind,
    #[serde(default)]
    aggregate: Aggregate,
}

/// Every board: `global` first, then those of `BOARDS` in id order.
///
/// ```
/// let boards = events::boards::BoardDefs::from_toml(
///     "[boards.weekly]\nseason = \"weekly\"\n[boards.quests]\nactions = [\"complete_quest\"]\nseason = \"all-time\"\n",
/// ).unwrap();
/// let ids: Vec<&str> = boards.iter().map(|b| b.id.as_str()).collect();
/// assert_eq!(ids, ["global", "quests", "weekly"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardDefs(Vec<BoardDef>);

impl Default for BoardDefs {
    fn default() -> Self {
        Self(vec![BoardDef::global()])
    }
}

impl BoardDefs {
    /// Reads board definitions: `[boards.<id>]` tables of `actions` (optional), `season` and
    /// `aggregate` (optional, `sum` by default).
    pub fn from_toml(text: &str) -> Result<Self, BoardsError> {
        let file: BoardsFile = toml::from_str(text).map_err(|e| BoardsError::Syntax(e.to_string()))?;
        let mut boards = Self::default();
        for (id, entry) in file.boards {
            if id.as_str() == GLOBAL {
                return Err(BoardsError::Global);
            }
            if entry.actions.as_ref().is_some_and(BTreeSet::is_empty) {
                return Err(BoardsError::NoActions(id.to_string()));
            }
            boards.0.push(BoardDef { id, actions: entry.actions, season: entry.season, aggregate: entry.aggregate });
        }
        Ok(boards)
    }

    /// `global` and the boards `named` (none of them called `global`).
    pub fn of(named: impl IntoIterator<Item = BoardDef>) -> Self {
        let mut boards = Self::default();
        boards.0.extend(named.into_iter().filter(|board| board.id.as_str() != GLOBAL));
        boards
    }

    /// Reads board definitions from the file at `path`.
    pub fn from_file(path: &std::path::Path) -> Result<Self, BoardsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| BoardsError::Read { path: path.display().to_string(), source })?;
        Self::from_toml(&text)
    }

    /// Every board, `global` first.
    pub fn iter(&self) -> impl Iterator<Item = &BoardDef> {
        self.0.iter()
    }

    /// The boards other than `global`: those [`fold_seasons`] folds.
    pub fn named(&self) -> &[BoardDef] {
        &self.0[1..]
    }

    /// The board called `id`.
    pub fn get(&self, id: &str) -> Option<&BoardDef> {
        self.0.iter().find(|board| board.id.as_str() == id)
    }
}

/// Where a standing is: a board, one of its seasons, and a player.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    /// The board.
    pub board: BoardId,
    /// The season.
    pub season: Season,
    /// The player.
    pub player_id: PlayerId,
}

/// A player's standing in one season of one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeasonStanding {
    /// The board.
    pub board: BoardId,
    /// The season.
    pub season: Season,
    /// The standing there.
    pub standing: Standing,
}

impl SeasonStanding {
    /// Where it is.
    pub fn place(&self) -> Place {
        Place { board: self.board.clone(), season: self.season, player_id: self.standing.player_id.clone() }
    }
}

/// The positions of the awards `events` revoke one by one: a fold needs those awards to know
/// where they counted.
pub fn revoked_positions(events: &[RecordedEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|recorded| match &recorded.event {
            Event::ScoreRevoked(revoked) => revoked.award.map(|award| award.position),
            _ => None,
        })
        .collect()
}

/// The awards of `events`, by position: what a fold of a whole log from its start is given as
/// the awards it revokes (a store reads only those the events name).
pub fn awards_of(events: &[RecordedEvent]) -> HashMap<u64, ScoreAwarded> {
    events
        .iter()
        .filter_map(|recorded| match &recorded.event {
            Event::ScoreAwarded(award) => Some((recorded.position, award.clone())),
            _ => None,
        })
        .collect()
}

/// What a fold of `events` into `boards` reads of the read model: the standings at `places`,
/// and every standing of the `players` they moderate; and of the log, the earlier events of the
/// players in `histories`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    /// Standings the awards and single revocations change.
    pub places: Vec<Place>,
    /// Players banned, unbanned or revoked entirely: all their standings.
    pub players: Vec<PlayerId>,
    /// Players one of whose awards is taken back where a board keeps one award: their awards
    /// left there are folded again, so the fold needs their events before the batch.
    pub histories: Vec<PlayerId>,
}

/// The players whose earlier events folding `events` into `boards` needs: those one of whose
/// awards (in `revoked`, by position) is taken back on a board that keeps one award.
pub fn histories<'a>(
    boards: impl IntoIterator<Item = &'a BoardDef>,
    revoked: &HashMap<u64, ScoreAwarded>,
    events: &[RecordedEvent],
) -> Vec<PlayerId> {
    let keeping: Vec<&BoardDef> = boards.into_iter().filter(|board| board.aggregate.keeps_one()).collect();
    let players: BTreeSet<PlayerId> = events
        .iter()
        .filter_map(|recorded| match &recorded.event {
            Event::ScoreRevoked(revocation) => revoked.get(&revocation.award?.position),
            _ => None,
        })
        .filter(|award| keeping.iter().any(|board| board.counts(&award.action)))
        .map(|award| award.player_id.clone())
        .collect();
    players.into_iter().collect()
}

/// The board, season and player of each standing `award` changes, with the board.
fn places_of<'a>(boards: &'a [BoardDef], award: &'a ScoreAwarded) -> impl Iterator<Item = (&'a BoardDef, Place)> + 'a {
    boards.iter().filter(|board| board.counts(&award.action)).map(|board| {
        let place = Place {
            board: board.id.clone(),
            season: board.season_of(award.recorded_at),
            player_id: award.player_id.clone(),
        };
        (board, place)
    })
}

/// What folding `events` into `boards` reads, given the awards they revoke (`revoked`, by
/// position).
pub fn reads(boards: &[BoardDef], revoked: &HashMap<u64, ScoreAwarded>, events: &[RecordedEvent]) -> Reads {
    let mut places = BTreeSet::new();
    let mut players = BTreeSet::new();
    for recorded in events {
        match &recorded.event {
            Event::ScoreAwarded(award) => places.extend(places_of(boards, award).map(|(_, place)| place)),
            Event::ScoreRevoked(revocation) => match revocation.award {
                Some(award) => places.extend(
                    revoked.get(&award.position).into_iter().flat_map(|a| places_of(boards, a)).map(|(_, place)| place),
                ),
                None => {
                    players.insert(revocation.player_id.clone());
                }
            },
            Event::PlayerBanned(moderated) | Event::PlayerUnbanned(moderated) => {
                players.insert(moderated.player_id.clone());
            }
        }
    }
    let histories = histories(boards, revoked, events);
    Reads { places: places.into_iter().collect(), players: players.into_iter().collect(), histories }
}

/// Folds `events` onto `existing` (at least the standings [`reads`] names) and returns the new
/// standing of every place touched, each once: what the projector writes back. `revoked` holds
/// the awards the events revoke one by one, by position; `earlier`, the log's events before
/// `events` of the players [`Reads::histories`] names (at least).
pub fn fold_seasons(
    boards: &[BoardDef],
    existing: impl IntoIterator<Item = SeasonStanding>,
    revoked: &HashMap<u64, ScoreAwarded>,
    earlier: &[RecordedEvent],
    events: &[RecordedEvent],
) -> Vec<SeasonStanding> {
    let mut all: foldhash::HashMap<Place, (Standing, bool)> =
        existing.into_iter().map(|s| (s.place(), (s.standing, false))).collect();
    // The events so far of the players whose awards are folded again.
    let mut told: foldhash::HashMap<PlayerId, Vec<&RecordedEvent>> =
        histories(boards, revoked, events).into_iter().map(|player| (player, Vec::new())).collect();
    let first = events.first().map_or(u64::MAX, |e| e.position);
    for recorded in earlier.iter().filter(|e| e.position < first) {
        if let Some(history) = told.get_mut(recorded.event.player_id()) {
            history.push(recorded);
        }
    }
    let mut touched: Vec<Place> = Vec::new();
    let mut places: Vec<(&BoardDef, Place)> = Vec::new();
    for recorded in events {
        let player = recorded.event.player_id();
        if let Some(history) = told.get_mut(player) {
            history.push(recorded);
        }
        places.clear();
        match &recorded.event {
            Event::ScoreAwarded(award) => places.extend(places_of(boards, award)),
            Event::ScoreRevoked(revocation) if revocation.award.is_some() => places.extend(
                revocation.award.and_then(|a| revoked.get(&a.position)).into_iter().flat_map(|a| places_of(boards, a)),
            ),
            // Everything the player has, and a standing on each all-time board.
            _ => {
                for place in all.keys().filter(|p| &p.player_id == player) {
                    if let Some(board) = boards.iter().find(|b| b.id == place.board) {
                        places.push((board, place.clone()));
                    }
                }
                for board in boards.iter().filter(|b| b.season == SeasonKind::AllTime) {
                    let place = Place { board: board.id.clone(), season: Season::AllTime, player_id: player.clone() };
                    if !all.contains_key(&place) {
                        places.push((board, place));
                    }
                }
            }
        }
        for (board, place) in places.drain(..) {
            let (standing, seen) = all.entry(place.clone()).or_insert_with(|| (Standing::new(player.clone()), false));
            match &recorded.event {
                Event::ScoreRevoked(revocation) if revocation.award.is_some() && board.aggregate.keeps_one() => {
                    let history = told.get(player).map_or(&[][..], Vec::as_slice);
                    standing.refold(board.aggregate, kept_awards(history, board, place.season));
                }
                _ => standing.apply_as(board.aggregate, recorded),
            }
            if !*seen {
                *seen = true;
                touched.push(place);
            }
        }
    }
    touched
        .into_iter()
        .map(|place| {
            let (standing, _) = all.remove(&place).expect("a touched place has a standing");
            SeasonStanding { board: place.board, season: place.season, standing }
        })
        .collect()
}

/// The awards a player's `history` (all their events so far, in order) leaves standing on
/// `board` in `season`: points and position, in order.
fn kept_awards(history: &[&RecordedEvent], board: &BoardDef, season: Season) -> Vec<(u64, u64)> {
    let mut awards: Vec<(u64, &ScoreAwarded)> = Vec::new();
    for recorded in history {
        match &recorded.event {
            Event::ScoreAwarded(award) => awards.push((recorded.position, award)),
            Event::ScoreRevoked(revocation) => match revocation.award {
                Some(taken) => awards.retain(|(position, _)| *position != taken.position),
                None => awards.clear(),
            },
            Event::PlayerBanned(_) | Event::PlayerUnbanned(_) => {}
        }
    }
    awards
        .into_iter()
        .filter(|(_, award)| board.counts(&award.action) && board.season_of(award.recorded_at) == season)
        .map(|(position, award)| (u64::from(award.points.get()), position))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;

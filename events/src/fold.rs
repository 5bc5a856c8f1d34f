//! The fold of the log held in memory: every board's standings in its newest season, `global`
//! (all players, all time) first, as of a position of the log. The projector keeps one, loaded
//! once from the read model, and folds each batch of the log with it:
//!
//! 1. [`Fold::reads`] names what memory does not hold: standings of a season older than the one
//!    held (a late event, or moderation reaching a player's past seasons). The store reads those.
//! 2. [`Fold::fold`] folds the batch without changing the fold and returns the [`Delta`]: the new
//!    standing of every board, season and player the batch touched — what the store writes.
//! 3. Once the store committed the delta, [`Fold::apply`] makes it the fold's.
//!
//! The rules are those of [`crate::boards::fold_seasons`] (which are [`Standing::apply`]'s), so
//! a fold in memory, persisted and reloaded at any point, equals the fold of the log.
//!
//! A board holds one season in memory, the newest it has standings in: an event of a newer
//! season starts that season (no standing can exist in a season newer than the one held), and
//! an event of an older season is folded onto what the read model holds of it.

use std::collections::{BTreeSet, HashMap};

use foldhash::HashMapExt as _;

use crate::boards::{BoardDef, Place, Reads, Season, SeasonKind, SeasonStanding, fold_seasons};
use crate::event::{Event, RecordedEvent, ScoreAwarded};
use crate::ids::{BoardId, PlayerId};
use crate::leaderboard::Standing;

/// The fold of the log in memory; see the module documentation.
#[derive(Debug, Clone)]
pub struct Fold {
    position: u64,
    boards: Vec<Held>,
}

/// One board's newest season, held in memory.
#[derive(Debug, Clone)]
struct Held {
    def: BoardDef,
    /// The newest season the board has standings in (`None`: it has none yet).
    season: Option<Season>,
    standings: foldhash::HashMap<PlayerId, Standing>,
}

/// What folding one batch changed: the new standing of every board, season and player it
/// touched, in `(from, to]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// The fold's position before.
    pub from: u64,
    /// Its position after.
    pub to: u64,
    /// The standings touched, on every board (`global` included), each once.
    pub standings: Vec<SeasonStanding>,
}

impl Delta {
    /// The standings of board `id`.
    pub fn of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a SeasonStanding> + 'a {
        self.standings.iter().filter(move |s| s.board.as_str() == id)
    }
}

/// One board of a fold being loaded: its definition, the season it holds and its standings
/// there (every player's, banned ones included).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The board.
    pub def: BoardDef,
    /// The newest season it has standings in (`None`: none).
    pub season: Option<Season>,
    /// Its standings in that season.
    pub standings: Vec<Standing>,
}

impl Fold {
    /// The fold of nothing (position 0) into `boards`.
    pub fn new(boards: impl IntoIterator<Item = BoardDef>) -> Self {
        let boards =
            boards.into_iter().map(|def| Loaded { def, season: None, standings: Vec::new() }).collect::<Vec<_>>();
        Self::load(0, boards)
    }

    /// The fold at `position` as the read model holds it.
    pub fn load(position: u64, boards: impl IntoIterator<Item = Loaded>) -> Self {
        let boards = boards
            .into_iter()
            .map(|loaded| {
                let season = match loaded.def.season {
                    SeasonKind::AllTime => Some(Season::AllTime),
                    _ => loaded.season,
                };
                let mut standings = foldhash::HashMap::with_capacity(loaded.standings.len());
                standings.extend(loaded.standings.into_iter().map(|s| (s.player_id.clone(), s)));
                Held { def: loaded.def, season, standings }
            })
            .collect();
        Self { position, boards }
    }

    /// The last position folded.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The boards it folds into.
    pub fn defs(&self) -> impl Iterator<Item = &BoardDef> {
        self.boards.iter().map(|held| &held.def)
    }

    /// The season board `id` holds, if any.
    pub fn season(&self, id: &str) -> Option<Season> {
        self.held(id)?.season
    }

    /// Every standing board `id` holds (banned ones included), in no particular order.
    pub fn standings<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a Standing> + 'a {
        self.held(id).into_iter().flat_map(|held| held.standings.values())
    }

    /// The standing of `player` board `id` holds, if any.
    pub fn standing(&self, id: &str, player: &PlayerId) -> Option<&Standing> {
        self.held(id)?.standings.get(player)
    }

    /// How many standings board `id` holds, banned ones included.
    pub fn len(&self, id: &str) -> usize {
        self.held(id).map_or(0, |held| held.standings.len())
    }

    fn held(&self, id: &str) -> Option<&Held> {
        self.boards.iter().find(|held| held.def.id.as_str() == id)
    }

    /// What folding `events` (the log's next) needs that memory does not hold: the standings at
    /// places in a season older than the one held, and, where a board has seasons, every
    /// standing of the players moderated entirely; and the earlier events of the players one of
    /// whose awards is taken back where a board keeps one award. `revoked` holds the awards the
    /// events revoke one by one, by position.
    pub fn reads(&self, events: &[RecordedEvent], revoked: &HashMap<u64, ScoreAwarded>) -> Reads {
        let histories = crate::boards::histories(self.defs(), revoked, events);
        // Only boards with seasons have standings memory does not hold.
        let seasonal: Vec<&Held> = self.boards.iter().filter(|held| held.def.season != SeasonKind::AllTime).collect();
        if seasonal.is_empty() {
            return Reads { histories, ..Reads::default() };
        }
        let mut places = BTreeSet::new();
        let mut players = BTreeSet::new();
        let mut cold_places = |award: &ScoreAwarded| {
            for held in seasonal.iter().filter(|held| held.def.counts(&award.action)) {
                let season = held.def.season_of(award.recorded_at);
                if older(season, held) {
                    places.insert(Place { board: held.def.id.clone(), season, player_id: award.player_id.clone() });
                }
            }
        };
        for recorded in events {
            match &recorded.event {
                Event::ScoreAwarded(award) => cold_places(award),
                Event::ScoreRevoked(revocation) => match revocation.award {
                    Some(award) => revoked.get(&award.position).into_iter().for_each(&mut cold_places),
                    None => {
                        players.insert(revocation.player_id.clone());
                    }
                },
                Event::PlayerBanned(moderated) | Event::PlayerUnbanned(moderated) => {
                    players.insert(moderated.player_id.clone());
                }
            }
        }
        Reads { places: places.into_iter().collect(), players: players.into_iter().collect(), histories }
    }

    /// Folds `events` (the log's, right after [`Fold::position`], in order) onto what memory
    /// holds, `cold` (the standings [`Fold::reads`] named, as the read model holds them) and
    /// `earlier` (the events of the players it named, up to [`Fold::position`], in order),
    /// without changing the fold; returns what they change.
    pub fn fold(
        &self,
        events: &[RecordedEvent],
        revoked: &HashMap<u64, ScoreAwarded>,
        cold: Vec<SeasonStanding>,
        earlier: &[RecordedEvent],
    ) -> Delta {
        let to = events.last().map_or(self.position, |e| e.position.max(self.position));
        let players: foldhash::HashSet<&PlayerId> = events.iter().map(|e| e.event.player_id()).collect();
        // Memory is the truth for the seasons held; the read model for the older ones.
        let mut existing: Vec<SeasonStanding> = cold
            .into_iter()
            .filter(|s| self.held(s.board.as_str()).is_some_and(|held| older(s.season, held)))
            .collect();
        for held in &self.boards {
            let Some(season) = held.season else { continue };
            for player in &players {
                if let Some(standing) = held.standings.get(*player) {
                    existing.push(SeasonStanding { board: held.def.id.clone(), season, standing: standing.clone() });
                }
            }
        }
        let defs: Vec<BoardDef> = self.defs().cloned().collect();
        Delta { from: self.position, to, standings: fold_seasons(&defs, existing, revoked, earlier, events) }
    }

    /// Makes `delta` (what [`Fold::fold`] returned, committed) the fold's: each board takes the
    /// standings of the season it holds, or starts the newer season they are in.
    pub fn apply(&mut self, delta: Delta) {
        for standing in delta.standings {
            let Some(held) = self.boards.iter_mut().find(|held| held.def.id == standing.board) else { continue };
            match held.season {
                Some(season) if standing.season < season => continue,
                Some(season) if standing.season == season => {}
                _ => {
                    held.season = Some(standing.season);
                    held.standings.clear();
                }
            }
            held.standings.insert(standing.standing.player_id.clone(), standing.standing);
        }
        self.position = self.position.max(delta.to);
    }

    /// Takes in `other`'s boards (a fold of new boards built from the log up to this fold's
    /// position), which then fold with the others.
    ///
    /// # Panics
    /// When `other` is not at this fold's position.
    pub fn adopt(&mut self, other: Fold) {
        assert_eq!(other.position, self.position, "a board joins the fold at its position");
        self.boards.extend(other.boards);
    }

    /// Stops folding into board `id`.
    pub fn drop_board(&mut self, id: &BoardId) {
        self.boards.retain(|held| &held.def.id != id);
    }
}

/// `true` when `season` is older than the one `held` holds: the read model has it, memory not.
fn older(season: Season, held: &Held) -> bool {
    held.season.is_some_and(|newest| season < newest)
}

#[cfg(test)]
mod tests;

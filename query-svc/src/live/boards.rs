//! Every board a query side serves: the current season of each held in memory (a [`LiveBoard`]
//! each, kept current from the same changes as `global`), past seasons read from the read model
//! when asked for, and a board's new season started when the clock reaches it, whether or not
//! anyone has played since.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use events::boards::{BoardDef, BoardDefs, Season, SeasonStanding};
use events::{Board, BoardChange};
use store::{LeaderboardStore, StoreError};
use time::OffsetDateTime;

use crate::live::board::LiveBoard;

/// Where a query side reads the time: the system's, or one a test sets.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> OffsetDateTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that shows what it was last set to: for tests, which must never sleep until midnight.
#[derive(Debug, Clone)]
pub struct SetClock(Arc<Mutex<OffsetDateTime>>);

impl SetClock {
    /// A clock showing `now`.
    pub fn new(now: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(now)))
    }

    /// Shows `now` from now on.
    pub fn set(&self, now: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = now;
    }
}

impl Clock for SetClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Every board a query side serves: `global`, and the current season of each other board.
pub struct LiveBoards {
    definitions: BoardDefs,
    boards: BTreeMap<String, Arc<LiveBoard>>,
    clock: Arc<dyn Clock>,
}

impl LiveBoards {
    /// The boards `definitions`, none loaded yet, their seasons by `clock`.
    pub fn new(definitions: BoardDefs, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        let boards = definitions
            .iter()
            .map(|def| (def.id.to_string(), Arc::new(LiveBoard::new(def.id.as_str(), def.season_of(now)))))
            .collect();
        Self { definitions, boards, clock }
    }

    /// `global`.
    pub fn global(&self) -> &Arc<LiveBoard> {
        &self.boards[events::boards::GLOBAL]
    }

    /// The board `id`, with its definition.
    pub fn get(&self, id: &str) -> Option<(&BoardDef, &Arc<LiveBoard>)> {
        Some((self.definitions.get(id)?, self.boards.get(id)?))
    }

    /// Every board's definition, `global` first.
    pub fn definitions(&self) -> &BoardDefs {
        &self.definitions
    }

    /// The boards other than `global`, with their definitions.
    fn named(&self) -> impl Iterator<Item = (&BoardDef, &Arc<LiveBoard>)> {
        self.definitions.named().iter().map(|def| (def, &self.boards[def.id.as_str()]))
    }

    /// The seasons among `seasons` that no board holds live: past (or future) ones, which only
    /// moderation changes once their time is over.
    pub fn not_live<'a>(&self, seasons: &'a [SeasonStanding]) -> impl Iterator<Item = (&'a str, Season)> {
        seasons
            .iter()
            .filter(|changed| {
                self.boards.get(changed.board.as_str()).is_none_or(|live| live.season() != changed.season)
            })
            .map(|changed| (changed.board.as_str(), changed.season))
    }

    /// The season of `def` the clock is in.
    pub fn current(&self, def: &BoardDef) -> Season {
        def.season_of(self.clock.now())
    }

    /// Loads the current season of every board other than `global` (the newer of the clock's
    /// and the one held); a board the read model is still building is not served. Players'
    /// ids and names are shared with `global` (just loaded), so each is held once, whatever
    /// the number of boards.
    pub(crate) async fn load_named<R: LeaderboardStore>(
        &self,
        read_model: &R,
        global: &Board,
    ) -> Result<(), StoreError> {
        let wanted: Vec<(String, Season)> =
            self.named().map(|(def, live)| (def.id.to_string(), self.current(def).max(live.season()))).collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let mut loaded = read_model.load_seasons(&wanted, Some(global)).await?;
        let position = loaded.anchor.position;
        for ((def, live), (_, season)) in self.named().zip(&wanted) {
            let standings = loaded.take(def.id.as_str(), *season);
            hold(def, live, *season, &loaded.ready, Board::of(def.aggregate).with(position, standings));
        }
        Ok(())
    }

    /// Applies `global`'s `change` and the `seasons` changed with it to the other boards; a board
    /// shown a season newer than its own starts that season. `Err` when a board missed changes,
    /// or its new season could not be read: reload.
    pub(crate) async fn apply<R: LeaderboardStore>(
        &self,
        change: &BoardChange,
        seasons: &[SeasonStanding],
        read_model: &R,
    ) -> anyhow::Result<()> {
        for (def, live) in self.named().filter(|(_, live)| live.is_loaded()) {
            let held = live.season();
            let mine = seasons.iter().filter(|s| s.board == def.id);
            match mine.clone().map(|s| s.season).max() {
                Some(newer) if newer > held => roll(def, live, newer, read_model).await?,
                _ => live.apply(&BoardChange {
                    from: change.from,
                    to: change.to,
                    standings: mine.filter(|s| s.season == held).map(|s| s.standing.clone()).collect(),
                })?,
            }
        }
        Ok(())
    }

    /// Starts the new season of every board whose season the clock has left. `Err` when the read
    /// model could not be read: reload.
    pub(crate) async fn roll_over<R: LeaderboardStore>(&self, read_model: &R) -> Result<(), StoreError> {
        for (def, live) in self.named().filter(|(_, live)| live.is_loaded()) {
            let now = self.current(def);
            if now > live.season() {
                roll(def, live, now, read_model).await?;
            }
        }
        Ok(())
    }
}

/// Makes `live` hold `season` of `def`, as `loaded` has it (or not served, if the read model
/// does not have `def` ready).
fn hold(def: &BoardDef, live: &LiveBoard, season: Season, ready: &BTreeMap<String, String>, board: Board) {
    if ready.get(def.id.as_str()) == Some(&def.definition()) {
        live.replace_season(season, board);
    } else {
        live.unload();
    }
}

/// Starts `season` of `def` on `live`, read from the read model.
async fn roll<R: LeaderboardStore>(
    def: &BoardDef,
    live: &LiveBoard,
    season: Season,
    read_model: &R,
) -> Result<(), StoreError> {
    match read_season(read_model, def, season).await? {
        Some(board) => live.replace_season(season, board),
        None => live.unload(),
    }
    tracing::info!(board = %def.id, %season, "a new season started");
    Ok(())
}

/// `season` of `def`, read from the read model; `None` while the read model is building `def`
/// (or holds it defined otherwise).
pub(crate) async fn read_season<R: LeaderboardStore>(
    read_model: &R,
    def: &BoardDef,
    season: Season,
) -> Result<Option<Board>, StoreError> {
    let mut loaded = read_model.load_seasons(&[(def.id.to_string(), season)], None).await?;
    if loaded.ready.get(def.id.as_str()) != Some(&def.definition()) {
        return Ok(None);
    }
    let standings = loaded.take(def.id.as_str(), season);
    Ok(Some(Board::of(def.aggregate).with(loaded.anchor.position, standings)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_the_seasons_a_fold_changed_only_those_no_board_holds_live_are_past() {
        let now = OffsetDateTime::now_utc();
        let boards = BoardDefs::from_toml("[boards.daily]\nseason = \"daily\"\n").unwrap();
        let live = LiveBoards::new(boards, Arc::new(SetClock::new(now)));
        let today = Season::of(events::boards::SeasonKind::Daily, now);
        let yesterday = Season::of(events::boards::SeasonKind::Daily, now - time::Duration::days(1));
        let changed = |season| SeasonStanding {
            board: "daily".parse().unwrap(),
            season,
            standing: events::Standing::new(events::PlayerId::parse("ann").unwrap()),
        };
        let seasons = [changed(today), changed(yesterday), changed(today)];
        assert_eq!(live.not_live(&seasons).collect::<Vec<_>>(), [("daily", yesterday)]);
    }
}

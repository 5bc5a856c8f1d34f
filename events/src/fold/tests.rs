use std::collections::BTreeMap;

use proptest::prelude::*;
use time::macros::datetime;

use super::*;
use crate::boards::awards_of;
use crate::boards::tests::{aggregates, award, boards, earlier_of, logs, moderated};
use crate::boards::{BoardDefs, GLOBAL};

/// Every board of [`boards`] and [`aggregates`], `global` included.
fn all_boards() -> Vec<BoardDef> {
    boards().iter().chain(aggregates().named()).cloned().collect()
}

/// A read model as the store keeps one: every standing ever written, by place.
type ReadModel = BTreeMap<Place, Standing>;

/// What the read model holds of `wanted`: the places, and every standing of the players.
fn read(read_model: &ReadModel, wanted: &Reads) -> Vec<SeasonStanding> {
    read_model
        .iter()
        .filter(|(place, _)| wanted.places.contains(place) || wanted.players.contains(&place.player_id))
        .map(|(place, standing)| SeasonStanding {
            board: place.board.clone(),
            season: place.season,
            standing: standing.clone(),
        })
        .collect()
}

/// The fold as a projector restarting at `position` loads it from `read_model`: each board's
/// newest season.
fn reload(defs: &[BoardDef], read_model: &ReadModel, position: u64) -> Fold {
    let boards = defs.iter().map(|def| {
        let season = read_model.keys().filter(|p| p.board == def.id).map(|p| p.season).max();
        let standings = read_model
            .iter()
            .filter(|(p, _)| p.board == def.id && Some(p.season) == season)
            .map(|(_, s)| s.clone())
            .collect();
        Loaded { def: def.clone(), season, standings }
    });
    Fold::load(position, boards)
}

/// Folds `log` in batches cut at `cuts`, persisting each delta into a read model and reloading
/// the fold from it at each of `restarts`; returns the read model.
fn fold_persisted(log: &[RecordedEvent], cuts: &[usize], restarts: &[usize]) -> (Fold, ReadModel) {
    let defs = all_boards();
    let mut cuts: Vec<usize> = cuts.iter().chain(restarts).map(|c| (*c).min(log.len())).collect();
    cuts.extend([0, log.len()]);
    cuts.sort_unstable();
    cuts.dedup();
    let revoked = awards_of(log);
    let mut read_model = ReadModel::new();
    let mut fold = Fold::new(defs.clone());
    for window in cuts.windows(2) {
        if restarts.contains(&window[0]) {
            fold = reload(&defs, &read_model, window[0] as u64);
        }
        let batch = &log[window[0]..window[1]];
        let wanted = fold.reads(batch, &revoked);
        let cold = read(&read_model, &wanted);
        let delta = fold.fold(batch, &revoked, cold, &earlier_of(log, batch, &wanted));
        for standing in &delta.standings {
            read_model.insert(standing.place(), standing.standing.clone());
        }
        fold.apply(delta);
    }
    (fold, read_model)
}

/// The fold of the whole log by the rules of `boards`, at once.
fn folded(log: &[RecordedEvent]) -> ReadModel {
    fold_seasons(&all_boards(), [], &awards_of(log), &[], log).into_iter().map(|s| (s.place(), s.standing)).collect()
}

proptest! {
    /// However the log is cut into batches and wherever the projector restarts, what the fold
    /// persisted is the fold of the log, board for board and season for season.
    #[test]
    fn the_fold_persisted_and_reloaded_is_the_fold_of_the_log(
        log in logs(),
        cuts in proptest::collection::vec(0..70usize, 0..8),
        restarts in proptest::collection::vec(0..70usize, 0..4),
    ) {
        let (fold, read_model) = fold_persisted(&log, &cuts, &restarts);
        prop_assert_eq!(&read_model, &folded(&log));
        prop_assert_eq!(fold.position(), log.len() as u64);
        let global: BTreeMap<&PlayerId, &Standing> = fold.standings(GLOBAL).map(|s| (&s.player_id, s)).collect();
        let expected = crate::leaderboard::fold(&log);
        prop_assert_eq!(global, expected.iter().map(|s| (&s.player_id, s)).collect::<BTreeMap<_, _>>());
    }

    /// Memory holds each board's newest season, exactly as the read model has it.
    #[test]
    fn memory_holds_each_boards_newest_season(log in logs(), cuts in proptest::collection::vec(0..70usize, 0..8)) {
        let (fold, read_model) = fold_persisted(&log, &cuts, &[]);
        for def in all_boards() {
            let newest = read_model.keys().filter(|p| p.board == def.id).map(|p| p.season).max();
            if def.season == SeasonKind::AllTime {
                prop_assert_eq!(fold.season(def.id.as_str()), Some(Season::AllTime));
            } else {
                prop_assert_eq!(fold.season(def.id.as_str()), newest);
            }
            let held: BTreeMap<&PlayerId, &Standing> = fold.standings(def.id.as_str()).map(|s| (&s.player_id, s)).collect();
            let stored: BTreeMap<&PlayerId, &Standing> = read_model
                .iter()
                .filter(|(p, _)| p.board == def.id && Some(p.season) == fold.season(def.id.as_str()))
                .map(|(p, s)| (&p.player_id, s))
                .collect();
            prop_assert_eq!(held, stored);
        }
    }
}

#[test]
fn a_late_event_of_an_older_season_is_folded_onto_the_read_models_standing() {
    // Given the daily board holds 2026-11-29, and alice scored on 2026-11-28 before
    let defs: Vec<BoardDef> =
        BoardDefs::from_toml("[boards.daily]\nseason = \"daily\"\n").unwrap().iter().cloned().collect();
    let log = [
        award(1, "alice", "complete_task", 10, datetime!(2026-11-28 23:59 UTC)),
        award(2, "bob", "complete_task", 5, datetime!(2026-11-29 00:01 UTC)),
        award(3, "alice", "complete_task", 7, datetime!(2026-11-28 23:59:59 UTC)),
    ];
    let mut fold = Fold::new(defs);
    let first = fold.fold(&log[..2], &HashMap::new(), Vec::new(), &[]);
    fold.apply(first.clone());
    assert_eq!(fold.season("daily"), Some(Season::Day(time::macros::date!(2026 - 11 - 29))));
    // When a writer whose clock lags records another award of the 28th
    let wanted = fold.reads(&log[2..], &HashMap::new());
    let day = Season::Day(time::macros::date!(2026 - 11 - 28));
    assert_eq!(wanted.places.iter().map(|p| (p.board.as_str(), p.season)).collect::<Vec<_>>(), [("daily", day)]);
    let cold: Vec<SeasonStanding> = first.of("daily").filter(|s| s.season == day).cloned().collect();
    let delta = fold.fold(&log[2..], &HashMap::new(), cold, &[]);
    // Then the 28th holds both of alice's awards, and memory keeps the 29th
    let alice = delta.of("daily").find(|s| s.season == day).unwrap();
    assert_eq!(alice.standing.score, 17);
    fold.apply(delta);
    assert_eq!(fold.season("daily"), Some(Season::Day(time::macros::date!(2026 - 11 - 29))));
    assert_eq!(fold.len("daily"), 1);
    assert_eq!(fold.standings(GLOBAL).find(|s| s.player_id.as_str() == "alice").unwrap().score, 17);
}

#[test]
fn all_time_boards_need_nothing_from_the_read_model() {
    // Given only all-time boards, a ban needs no read: memory holds every standing
    let defs: Vec<BoardDef> =
        BoardDefs::from_toml("[boards.quests]\nactions = [\"complete_quest\"]\nseason = \"all-time\"\n")
            .unwrap()
            .iter()
            .cloned()
            .collect();
    let log = [award(1, "alice", "complete_quest", 10, datetime!(2026-11-28 12:00 UTC)), moderated(2, "alice", true)];
    let mut fold = Fold::new(defs);
    let first = fold.fold(&log[..1], &HashMap::new(), Vec::new(), &[]);
    fold.apply(first);
    assert_eq!(fold.reads(&log[1..], &HashMap::new()), Reads::default());
    let delta = fold.fold(&log[1..], &HashMap::new(), Vec::new(), &[]);
    assert!(delta.standings.iter().all(|s| s.standing.banned && s.standing.score == 10));
    assert_eq!(delta.standings.len(), 2, "global and quests");
}

#[test]
fn folding_does_not_change_the_fold_until_the_delta_is_applied() {
    let mut fold = Fold::new(all_boards());
    let log = [award(1, "alice", "complete_quest", 10, datetime!(2026-11-28 12:00 UTC))];
    let delta = fold.fold(&log, &HashMap::new(), Vec::new(), &[]);
    assert_eq!((fold.position(), fold.len(GLOBAL)), (0, 0));
    fold.apply(delta);
    assert_eq!((fold.position(), fold.len(GLOBAL)), (1, 1));
}

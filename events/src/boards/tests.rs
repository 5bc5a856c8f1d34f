use proptest::prelude::*;
use time::macros::datetime;
use uuid::Uuid;

use super::*;
use crate::event::{Moderated, RevokedAward, ScoreRevoked};
use crate::ids::Points;
use crate::leaderboard::Board;

pub(crate) fn award(position: u64, player: &str, action: &str, points: i64, at: OffsetDateTime) -> RecordedEvent {
    RecordedEvent {
        position,
        event: Event::ScoreAwarded(ScoreAwarded {
            event_id: Uuid::now_v7(),
            action_id: Uuid::new_v4(),
            player_id: player.parse().unwrap(),
            display_name: None,
            action: action.parse().unwrap(),
            points: Points::new(points).unwrap(),
            token_issued_at: 0,
            key_id: "k1".parse().unwrap(),
            recorded_at: at,
        }),
    }
}

pub(crate) fn moderated(position: u64, player: &str, ban: bool) -> RecordedEvent {
    let moderated = Moderated::new(
        Uuid::now_v7(),
        player.parse().unwrap(),
        "ops".parse().unwrap(),
        "testing".parse().unwrap(),
        OffsetDateTime::UNIX_EPOCH,
    );
    let event = if ban { Event::PlayerBanned(moderated) } else { Event::PlayerUnbanned(moderated) };
    RecordedEvent { position, event }
}

pub(crate) fn revoke(position: u64, player: &str, award: Option<&RecordedEvent>) -> RecordedEvent {
    let award = award.map(|recorded| match &recorded.event {
        Event::ScoreAwarded(a) => RevokedAward { event_id: a.event_id, position: recorded.position, points: a.points },
        _ => unreachable!("only awards are revoked one by one"),
    });
    let event = Event::ScoreRevoked(ScoreRevoked {
        event_id: Uuid::now_v7(),
        player_id: player.parse().unwrap(),
        award,
        operator: "ops".parse().unwrap(),
        reason: "testing".parse().unwrap(),
        recorded_at: OffsetDateTime::UNIX_EPOCH,
    });
    RecordedEvent { position, event }
}

pub(crate) const BOARDS: &str = r#"
[boards.everything]
season = "all-time"

[boards.quests]
actions = ["complete_quest"]
season = "all-time"

[boards.daily]
season = "daily"

[boards.weekly]
actions = ["complete_quest", "win_match"]
season = "weekly"

[boards.monthly]
season = "monthly"
"#;

pub(crate) fn boards() -> BoardDefs {
    BoardDefs::from_toml(BOARDS).unwrap()
}

/// Folds `log` in batches cut at `cuts` as the projector does: each batch reads the standings
/// [`reads`] names from what the previous batches wrote.
fn fold_in_batches(boards: &[BoardDef], log: &[RecordedEvent], cuts: &[usize]) -> BTreeMap<Place, Standing> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| (*c).min(log.len())).collect();
    cuts.extend([0, log.len()]);
    cuts.sort_unstable();
    let revoked = awards_of(log);
    let mut read_model: BTreeMap<Place, Standing> = BTreeMap::new();
    for batch in cuts.windows(2).map(|w| &log[w[0]..w[1]]) {
        let wanted = reads(boards, &revoked, batch);
        let existing: Vec<SeasonStanding> = read_model
            .iter()
            .filter(|(place, _)| wanted.places.contains(place) || wanted.players.contains(&place.player_id))
            .map(|(place, standing)| SeasonStanding {
                board: place.board.clone(),
                season: place.season,
                standing: standing.clone(),
            })
            .collect();
        for standing in fold_seasons(boards, existing, &revoked, &earlier_of(log, batch, &wanted), batch) {
            read_model.insert(standing.place(), standing.standing);
        }
    }
    read_model
}

/// What the store reads of the log for folding `batch`: the events before it of the players
/// `wanted` names.
pub(crate) fn earlier_of(log: &[RecordedEvent], batch: &[RecordedEvent], wanted: &Reads) -> Vec<RecordedEvent> {
    let first = batch.first().map_or(0, |e| e.position);
    log.iter().filter(|e| e.position < first && wanted.histories.contains(e.event.player_id())).cloned().collect()
}

/// Boards of every aggregate, for all time and by day.
pub(crate) const AGGREGATES: &str = r#"
[boards.best]
season = "all-time"
aggregate = "best"

[boards.fastest]
actions = ["complete_quest", "win_match"]
season = "all-time"
aggregate = "min"

[boards.latest]
season = "all-time"
aggregate = "last"

[boards.daily-best]
season = "daily"
aggregate = "best"

[boards.weekly-fastest]
season = "weekly"
aggregate = "min"
"#;

pub(crate) fn aggregates() -> BoardDefs {
    BoardDefs::from_toml(AGGREGATES).unwrap()
}

/// The ranked standings of one season of one board.
fn season_board(read_model: &BTreeMap<Place, Standing>, board: &str, season: Season) -> Vec<(u64, String, u64)> {
    let aggregate = aggregates().get(board).map_or(Aggregate::Sum, |def| def.aggregate);
    let standings = read_model.iter().filter(|(p, _)| p.board.as_str() == board && p.season == season);
    let board = Board::of(aggregate).with(0, standings.map(|(_, s)| s.clone()));
    board.page(0, usize::MAX).iter().map(|r| (r.rank, r.standing.player_id.to_string(), r.standing.score)).collect()
}

#[test]
fn season_ids_are_written_and_read_back() {
    let at = datetime!(2026-11-23 13:45 UTC);
    for (kind, id) in [
        (SeasonKind::AllTime, "all-time"),
        (SeasonKind::Daily, "2026-11-23"),
        (SeasonKind::Weekly, "2026-W48"),
        (SeasonKind::Monthly, "2026-11"),
    ] {
        let season = Season::of(kind, at);
        assert_eq!(season.to_string(), id);
        assert_eq!(Season::parse(kind, id), Ok(season));
        assert_eq!(id.parse::<Season>(), Ok(season));
    }
}

#[test]
fn malformed_or_impossible_season_ids_are_refused() {
    for (kind, id) in [
        (SeasonKind::Daily, "2026-11-31"),
        (SeasonKind::Daily, "2026-1-02"),
        (SeasonKind::Daily, "2026-W48"),
        (SeasonKind::Daily, "26-11-02"),
        (SeasonKind::Weekly, "2025-W53"),
        (SeasonKind::Weekly, "2026-W00"),
        (SeasonKind::Weekly, "2026-48"),
        (SeasonKind::Monthly, "2026-13"),
        (SeasonKind::Monthly, "2026-11-01"),
        (SeasonKind::Monthly, "+2026-11"),
        (SeasonKind::AllTime, "2026"),
        (SeasonKind::Daily, ""),
    ] {
        assert!(Season::parse(kind, id).is_err(), "{kind:?} {id}");
    }
    assert_eq!(Season::parse(SeasonKind::Weekly, "2026-W53").map(|s| s.to_string()).as_deref(), Ok("2026-W53"));
}

#[test]
fn events_either_side_of_a_boundary_land_in_their_own_seasons() {
    // The last microsecond of a Sunday 31 January and the first of Monday 1 February.
    let before = datetime!(2027-01-31 23:59:59.999999 UTC);
    let after = datetime!(2027-02-01 00:00 UTC);
    assert_eq!(Season::of(SeasonKind::Daily, before).to_string(), "2027-01-31");
    assert_eq!(Season::of(SeasonKind::Daily, after).to_string(), "2027-02-01");
    assert_eq!(Season::of(SeasonKind::Weekly, before).to_string(), "2027-W04");
    assert_eq!(Season::of(SeasonKind::Weekly, after).to_string(), "2027-W05");
    assert_eq!(Season::of(SeasonKind::Monthly, before).to_string(), "2027-01");
    assert_eq!(Season::of(SeasonKind::Monthly, after).to_string(), "2027-02");
    // ISO weeks cross years: 1 January 2027 (a Friday) is in 2026's 53rd week.
    assert_eq!(Season::of(SeasonKind::Weekly, datetime!(2027-01-01 12:00 UTC)).to_string(), "2026-W53");
    assert_eq!(Season::of(SeasonKind::Weekly, datetime!(2027-01-04 00:00 UTC)).to_string(), "2027-W01");
    // Seasons are UTC whatever offset the time carries.
    assert_eq!(Season::of(SeasonKind::Daily, datetime!(2026-11-24 01:00 +02:00)).to_string(), "2026-11-23");
}

#[test]
fn a_season_starts_where_the_previous_ends() {
    let week = Season::parse(SeasonKind::Weekly, "2026-W53").unwrap();
    assert_eq!(week.starts_at(), Some(datetime!(2026-12-28 00:00 UTC)));
    assert_eq!(week.ends_at(), Some(datetime!(2027-01-04 00:00 UTC)));
    assert_eq!(week.next().map(|s| s.to_string()).as_deref(), Some("2027-W01"));
    let december = Season::parse(SeasonKind::Monthly, "2026-12").unwrap();
    assert_eq!(december.ends_at(), Some(datetime!(2027-01-01 00:00 UTC)));
    let day = Season::parse(SeasonKind::Daily, "2028-02-28").unwrap();
    assert_eq!(day.next().map(|s| s.to_string()).as_deref(), Some("2028-02-29"));
    assert_eq!(Season::AllTime.starts_at(), None);
    assert_eq!(Season::AllTime.ends_at(), None);
}

#[test]
fn board_definitions_are_checked() {
    assert_eq!(BoardDefs::from_toml("").unwrap(), BoardDefs::default());
    for (text, wanted) in [
        ("[boards.global]\nseason = \"daily\"\n", "built in"),
        ("[boards.x]\nactions = []\nseason = \"daily\"\n", "empty"),
        ("[boards.x]\nseason = \"yearly\"\n", "yearly"),
        ("[boards.Bad]\nseason = \"daily\"\n", "board id"),
        ("[boards.x]\nactions = [\"no spaces\"]\nseason = \"daily\"\n", "action name"),
        ("[boards.x]\nseason = \"daily\"\nreset = true\n", "reset"),
        ("[boards.x]\n", "season"),
    ] {
        let error = BoardDefs::from_toml(text).unwrap_err().to_string();
        assert!(error.contains(wanted), "{text:?}: {error}");
    }
    let boards = boards();
    assert_eq!(boards.get("quests").unwrap().definition(), "season=all-time;actions=complete_quest");
    assert_eq!(boards.get("daily").unwrap().definition(), "season=daily;actions=*");
    assert!(boards.get("nope").is_none());
    let aggregates = aggregates();
    assert_eq!(
        aggregates.get("fastest").unwrap().definition(),
        "season=all-time;actions=complete_quest,win_match;aggregate=min"
    );
    assert_eq!(aggregates.get("latest").unwrap().aggregate, Aggregate::Last);
    let error = BoardDefs::from_toml("[boards.x]\nseason = \"daily\"\naggregate = \"max\"\n").unwrap_err().to_string();
    assert!(error.contains("max") && error.contains("best"), "{error}");
}

#[test]
fn a_definition_reads_back_as_the_board_it_describes() {
    for def in boards().iter().chain(aggregates().named()) {
        assert_eq!(BoardDef::from_definition(def.id.clone(), &def.definition()).as_ref(), Some(def));
    }
    let id = || BoardId::parse("x").unwrap();
    for bad in [
        "",
        "season=yearly;actions=*",
        "season=daily",
        "season=daily;actions=*;aggregate=max",
        "season=daily;actions=a b",
    ] {
        assert_eq!(BoardDef::from_definition(id(), bad), None, "{bad:?}");
    }
}

#[test]
fn each_aggregate_keeps_its_award_and_ranks_by_it() {
    let at = datetime!(2026-11-23 10:00 UTC);
    let log = [
        award(1, "ann", "win_match", 30, at),
        award(2, "bob", "win_match", 50, at),
        award(3, "ann", "win_match", 70, at),
        award(4, "cat", "win_match", 30, at),
        award(5, "bob", "win_match", 20, at),
        award(6, "dan", "win_match", 70, at),
    ];
    let read_model = fold_in_batches(aggregates().named(), &log, &[3]);
    let board = |id| season_board(&read_model, id, Season::AllTime);
    let named = |rows: &[(u64, &str, u64)]| rows.iter().map(|(r, p, s)| (*r, p.to_string(), *s)).collect::<Vec<_>>();
    // ann reached 70 before dan: she ranks first.
    assert_eq!(board("best"), named(&[(1, "ann", 70), (2, "dan", 70), (3, "bob", 50), (4, "cat", 30)]));
    // Lowest first; bob's 20 beats ann's 30, and ann reached 30 before cat.
    assert_eq!(board("fastest"), named(&[(1, "bob", 20), (2, "ann", 30), (3, "cat", 30), (4, "dan", 70)]));
    assert_eq!(board("latest"), named(&[(1, "ann", 70), (2, "dan", 70), (3, "cat", 30), (4, "bob", 20)]));
    let reached = |id: &str, player: &str| {
        let place = Place { board: id.parse().unwrap(), season: Season::AllTime, player_id: player.parse().unwrap() };
        read_model[&place].reached_at
    };
    assert_eq!((reached("best", "bob"), reached("fastest", "bob"), reached("latest", "bob")), (2, 5, 5));
}

#[test]
fn taking_back_the_award_a_board_keeps_puts_the_next_one_back() {
    let (day1, day2) = (datetime!(2026-11-23 10:00 UTC), datetime!(2026-11-24 10:00 UTC));
    let best = award(3, "ann", "win_match", 90, day1);
    let log = vec![
        award(1, "ann", "win_match", 40, day1),
        award(2, "ann", "win_match", 60, day2),
        best.clone(),
        award(4, "bob", "win_match", 80, day1),
        award(5, "ann", "win_match", 60, day1),
        revoke(6, "ann", Some(&best)),
    ];
    // The revocation alone in the last batch: the fold reads ann's earlier events.
    for cuts in [&[][..], &[5], &[3, 5], &[1, 2, 3, 4, 5]] {
        let read_model = fold_in_batches(aggregates().named(), &log, cuts);
        let board = |id, season| season_board(&read_model, id, season);
        let named =
            |rows: &[(u64, &str, u64)]| rows.iter().map(|(r, p, s)| (*r, p.to_string(), *s)).collect::<Vec<_>>();
        // Her best is 60, first reached at position 2: ahead of nobody, behind bob's 80.
        assert_eq!(board("best", Season::AllTime), named(&[(1, "bob", 80), (2, "ann", 60)]), "{cuts:?}");
        let ann = Place { board: "best".parse().unwrap(), season: Season::AllTime, player_id: "ann".parse().unwrap() };
        assert_eq!(read_model[&ann].reached_at, 2, "{cuts:?}");
        // On day 1 only, her next best is 60 at position 5.
        let day1 = Season::of(SeasonKind::Daily, day1);
        assert_eq!(board("daily-best", day1), named(&[(1, "bob", 80), (2, "ann", 60)]), "{cuts:?}");
        // The latest award was not the one taken back: it stays.
        assert_eq!(board("latest", Season::AllTime)[1], (2, "ann".to_string(), 60), "{cuts:?}");
    }
}

#[test]
fn a_player_whose_awards_are_all_taken_back_leaves_a_board_that_keeps_one() {
    let at = datetime!(2026-11-23 10:00 UTC);
    let only = award(1, "ann", "win_match", 10, at);
    let log = vec![
        only.clone(),
        award(2, "bob", "win_match", 50, at),
        award(3, "cat", "win_match", 60, at),
        revoke(4, "ann", Some(&only)),
        revoke(5, "cat", None),
        moderated(6, "bob", true),
    ];
    let read_model = fold_in_batches(aggregates().named(), &log, &[4]);
    // Nobody has a time left: ann's was taken back, cat's too, bob is banned.
    assert!(season_board(&read_model, "fastest", Season::AllTime).is_empty());
    let mut again = log.clone();
    again.push(moderated(7, "bob", false));
    again.push(award(8, "cat", "win_match", 70, at));
    let read_model = fold_in_batches(aggregates().named(), &again, &[5]);
    let fastest = season_board(&read_model, "fastest", Season::AllTime);
    assert_eq!(fastest, [(1, "bob".to_string(), 50), (2, "cat".to_string(), 70)]);
}

#[test]
fn each_board_counts_only_its_actions_in_the_season_of_the_event() {
    let monday = datetime!(2026-11-23 10:00 UTC);
    let next_monday = datetime!(2026-11-30 00:00 UTC);
    let log = [
        award(1, "ann", "complete_quest", 10, monday),
        award(2, "bob", "complete_task", 50, monday),
        award(3, "ann", "win_match", 7, next_monday),
    ];
    let read_model = fold_in_batches(boards().named(), &log, &[]);
    let quests = season_board(&read_model, "quests", Season::AllTime);
    assert_eq!(quests, [(1, "ann".to_string(), 10)]);
    let week = |id| season_board(&read_model, "weekly", Season::parse(SeasonKind::Weekly, id).unwrap());
    assert_eq!(week("2026-W48"), [(1, "ann".to_string(), 10)]);
    assert_eq!(week("2026-W49"), [(1, "ann".to_string(), 7)]);
    let everything = season_board(&read_model, "everything", Season::AllTime);
    assert_eq!(everything, [(1, "bob".to_string(), 50), (2, "ann".to_string(), 17)]);
    assert_eq!(read_model.keys().filter(|p| p.board.as_str() == "daily").count(), 3);
}

#[test]
fn moderation_applies_to_every_board_and_season() {
    let (day1, day2) = (datetime!(2026-11-23 10:00 UTC), datetime!(2026-11-24 10:00 UTC));
    let first = award(1, "ann", "complete_quest", 10, day1);
    let log = vec![
        first.clone(),
        award(2, "ann", "complete_quest", 5, day2),
        award(3, "bob", "complete_quest", 12, day2),
        revoke(4, "ann", Some(&first)),
        moderated(5, "bob", true),
    ];
    let read_model = fold_in_batches(boards().named(), &log, &[2, 4]);
    let day = |id| Season::parse(SeasonKind::Daily, id).unwrap();
    // The revoked award comes off its own day, on every board that counted it
    assert_eq!(season_board(&read_model, "daily", day("2026-11-23")), [(1, "ann".to_string(), 0)]);
    assert_eq!(season_board(&read_model, "daily", day("2026-11-24")), [(1, "ann".to_string(), 5)]);
    assert_eq!(season_board(&read_model, "quests", Season::AllTime), [(1, "ann".to_string(), 5)]);
    // The ban takes bob off every board
    assert!(read_model.iter().filter(|(p, _)| p.player_id.as_str() == "bob").all(|(_, s)| s.banned));
}

/// Logs over four players, three actions, and three weeks, with bans, unbans and revocations.
pub(crate) fn logs() -> impl Strategy<Value = Vec<RecordedEvent>> {
    let start = datetime!(2026-11-28 00:00 UTC);
    proptest::collection::vec((0..4usize, 0..14u8, 1..=50i64, 0..21 * 24i64), 0..70).prop_map(move |entries| {
        let mut log: Vec<RecordedEvent> = Vec::new();
        for ((player, kind, points, hours), position) in entries.into_iter().zip(1..) {
            let player = format!("p{player}");
            let at = start + time::Duration::hours(hours);
            let event = match kind {
                0 => moderated(position, &player, true),
                1 => moderated(position, &player, false),
                2 => revoke(position, &player, None),
                // As the command side allows: an award not taken back yet, by itself or with all.
                3 => match revocable(&log, &player) {
                    Some(earlier) => revoke(position, &player, Some(&earlier)),
                    None => revoke(position, &player, None),
                },
                _ => {
                    let action = ["complete_quest", "win_match", "complete_task"][usize::from(kind % 3)];
                    award(position, &player, action, points, at)
                }
            };
            log.push(event);
        }
        log
    })
}

/// The first award of `player` in `log` that was not taken back yet.
pub(crate) fn revocable(log: &[RecordedEvent], player: &str) -> Option<RecordedEvent> {
    let since = last_revoked_all(log, player);
    let revoked = revoked_positions(log);
    log.iter()
        .find(|e| {
            matches!(&e.event, Event::ScoreAwarded(a) if a.player_id.as_str() == player)
                && e.position > since
                && !revoked.contains(&e.position)
        })
        .cloned()
}

/// The position of the last revocation of all of `player`'s points (0: none).
pub(crate) fn last_revoked_all(log: &[RecordedEvent], player: &str) -> u64 {
    log.iter()
        .filter(|e| matches!(&e.event, Event::ScoreRevoked(r) if r.award.is_none() && r.player_id.as_str() == player))
        .map(|e| e.position)
        .max()
        .unwrap_or(0)
}

/// What a board that keeps one award holds for each season and player, recomputed naively from
/// the log: the awards left (not taken back one by one, nor before the player's last revocation
/// of all), of its actions, in the season; their best, lowest or latest, and where it was first
/// reached.
fn kept_naively(board: &BoardDef, log: &[RecordedEvent]) -> BTreeMap<(Season, String), (u64, u64)> {
    let revoked: BTreeSet<u64> = revoked_positions(log).into_iter().collect();
    let mut kept: BTreeMap<(Season, String), (u64, u64)> = BTreeMap::new();
    for recorded in log {
        let Event::ScoreAwarded(a) = &recorded.event else { continue };
        let left = board.counts(&a.action)
            && !revoked.contains(&recorded.position)
            && recorded.position > last_revoked_all(log, a.player_id.as_str());
        if !left {
            continue;
        }
        let (points, position) = (u64::from(a.points.get()), recorded.position);
        let key = (board.season_of(a.recorded_at), a.player_id.to_string());
        let replace = match (kept.get(&key), board.aggregate) {
            (None, _) | (_, Aggregate::Last) => true,
            (Some(&(score, _)), Aggregate::Best) => points > score,
            (Some(&(score, _)), Aggregate::Min) => points < score,
            (Some(_), Aggregate::Sum) => unreachable!("a board that keeps one award"),
        };
        if replace {
            kept.insert(key, (points, position));
        }
    }
    kept
}

proptest! {
    /// Every board that keeps one award equals its naive recomputation from the log, however the
    /// log is cut into batches; a standing with no award left has no score.
    #[test]
    fn every_aggregate_equals_a_naive_recomputation(log in logs(), cuts in proptest::collection::vec(0..70usize, 0..6)) {
        let read_model = fold_in_batches(aggregates().named(), &log, &cuts);
        for board in aggregates().named() {
            let naive = kept_naively(board, &log);
            for (place, standing) in read_model.iter().filter(|(p, _)| p.board == board.id) {
                let key = (place.season, place.player_id.to_string());
                let folded = standing.has_score(board.aggregate).then_some((standing.score, standing.reached_at));
                prop_assert_eq!(folded, naive.get(&key).copied(), "{} {} {}", board.id, place.season, place.player_id);
            }
            for (season, player) in naive.keys() {
                let place = Place { board: board.id.clone(), season: *season, player_id: player.parse().unwrap() };
                prop_assert!(read_model.contains_key(&place), "{} {} {}", board.id, season, player);
            }
        }
    }

    /// A board of every action for all time is `global`, standing for standing.
    #[test]
    fn an_all_time_board_of_every_action_is_global(log in logs(), cuts in proptest::collection::vec(0..70usize, 0..6)) {
        let read_model = fold_in_batches(boards().named(), &log, &cuts);
        let everything: Vec<Standing> = read_model.iter().filter(|(p, _)| p.board.as_str() == "everything").map(|(_, s)| s.clone()).collect();
        let global = crate::leaderboard::fold(&log);
        prop_assert_eq!(everything, global);
    }

    /// However the log is cut into batches, every season of every board is the same.
    #[test]
    fn the_season_fold_is_independent_of_batch_boundaries(log in logs(), cuts in proptest::collection::vec(0..70usize, 0..8)) {
        let whole = fold_in_batches(boards().named(), &log, &[]);
        prop_assert_eq!(fold_in_batches(boards().named(), &log, &cuts), whole);
    }

    /// A season of a board holds exactly the awards of its actions recorded in it, less those
    /// revoked; moderation aside, its scores are sums over the log.
    #[test]
    fn a_season_sums_the_awards_recorded_in_it(log in logs()) {
        let read_model = fold_in_batches(boards().named(), &log, &[]);
        let revoked: BTreeSet<u64> = revoked_positions(&log).into_iter().collect();
        for board in boards().named() {
            let mut sums: BTreeMap<(Season, &str), u64> = BTreeMap::new();
            for recorded in &log {
                let Event::ScoreAwarded(a) = &recorded.event else { continue };
                let counted = board.counts(&a.action)
                    && !revoked.contains(&recorded.position)
                    && recorded.position > last_revoked_all(&log, a.player_id.as_str());
                if counted {
                    *sums.entry((board.season_of(a.recorded_at), a.player_id.as_str())).or_default() += u64::from(a.points.get());
                }
            }
            for ((season, player), sum) in sums {
                let place = Place { board: board.id.clone(), season, player_id: player.parse().unwrap() };
                prop_assert_eq!(read_model.get(&place).map(|s| s.score), Some(sum), "{} {}", board.id, season);
            }
        }
    }
}

//! What usage analytics add to the fold of a batch: `Usage::of` (every award in its hour and day
//! on each board, distinct players in a sketch) against `Fold::fold` of the same batch on the
//! same boards (`global` and the example boards), measured in the same run.
//!
//! Run: `cargo bench -p events --bench usage` (optionally `-- <players>`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use events::boards::BoardDefs;
use events::fold::Fold;
use events::usage::Usage;
use events::{Event, RecordedEvent, ScoreAwarded};

const BOARDS: &str = include_str!("../../config/boards.example.toml");
const BATCH: usize = 1_000;

fn award(position: u64, player: u64, action: &str, at: time::OffsetDateTime) -> RecordedEvent {
    RecordedEvent {
        position,
        event: Event::ScoreAwarded(ScoreAwarded {
            event_id: uuid::Uuid::now_v7(),
            action_id: uuid::Uuid::now_v7(),
            player_id: format!("player-{player:07}").parse().unwrap(),
            display_name: None,
            action: action.parse().unwrap(),
            points: events::Points::new(10).unwrap(),
            token_issued_at: at.unix_timestamp(),
            key_id: "k1".parse().unwrap(),
            recorded_at: at,
        }),
    }
}

fn main() {
    let players: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(100_000);
    let boards = BoardDefs::from_toml(BOARDS).unwrap();
    let defs: Vec<_> = boards.iter().cloned().collect();
    let start = time::macros::datetime!(2026-12-06 00:00 UTC);
    let actions = ["complete_task", "win_match", "finish_level"];
    // A log of 200 batches over one day, every player once first, then at random.
    let mut seed = 42u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let events: Vec<RecordedEvent> = (0..(players as usize).max(200 * BATCH))
        .map(|i| {
            let player = if (i as u64) < players { i as u64 } else { next() % players };
            let at = start + time::Duration::seconds(i as i64 * 86_400 / (players as i64).max(200 * BATCH as i64));
            award(i as u64 + 1, player, actions[next() as usize % 3], at)
        })
        .collect();
    let mut fold = Fold::new(defs.clone());
    let (mut folding, mut counting) = (Duration::ZERO, Duration::ZERO);
    let revoked = HashMap::new();
    for batch in events.chunks(BATCH) {
        let started = Instant::now();
        let delta = fold.fold(batch, &revoked, Vec::new(), &[]);
        folding += started.elapsed();
        let started = Instant::now();
        black_box(Usage::of(batch, defs.iter(), |_| false));
        counting += started.elapsed();
        fold.apply(delta);
    }
    let rate = |d: Duration| events.len() as f64 / d.as_secs_f64();
    println!("{} events in batches of {BATCH}, {players} players, boards: global + {}", events.len(), defs.len() - 1);
    println!("| step | events/s | µs per batch |");
    println!("|---|---|---|");
    let batches = events.len().div_ceil(BATCH) as f64;
    println!("| `Fold::fold` (baseline) | {:.0} | {:.0} |", rate(folding), folding.as_secs_f64() * 1e6 / batches);
    println!("| `Usage::of` | {:.0} | {:.0} |", rate(counting), counting.as_secs_f64() * 1e6 / batches);
    println!("usage adds {:.1} % to the fold in memory", counting.as_secs_f64() / folding.as_secs_f64() * 100.0);
}

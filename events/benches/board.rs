//! The in-memory board at a million players: rank of a player, the top 10, a page deep in the
//! board, and moving a player after a new score — against the baseline of ranking by counting
//! everyone ahead (what `SELECT count(*) … WHERE score > …` does), measured in the same run.
//!
//! Run: `cargo bench -p events --bench board` (optionally `-- <players>`).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use events::{Board, Standing};

/// A small deterministic generator (SplitMix64), so every run ranks the same board.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn standing(player: u64, score: u64, reached_at: u64) -> Standing {
    Standing { player_id: format!("player-{player:07}").parse().unwrap(), name: None, score, reached_at, banned: false }
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    println!(
        "| {name} | {} | {:.0} | {:.1} | {:.1} | {:.1} |",
        samples.len(),
        samples.len() as f64 / total.as_secs_f64(),
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(1.0).as_secs_f64() * 1e6,
    );
}

fn time<T>(samples: &mut Vec<Duration>, f: impl FnOnce() -> T) {
    let started = Instant::now();
    black_box(f());
    samples.push(started.elapsed());
}

fn main() {
    let players: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let mut random = Random(42);
    let started = Instant::now();
    let mut board = Board::from_standings(players, (0..players).map(|p| standing(p, random.below(10_000_000), p + 1)));
    println!("board of {players} players built in {:.2} s\n", started.elapsed().as_secs_f64());
    println!("| operation | samples | ops/s | p50 µs | p99 µs | max µs |");
    println!("|---|---|---|---|---|---|");

    let mut samples = Vec::new();
    for _ in 0..100_000 {
        let player = format!("player-{:07}", random.below(players));
        time(&mut samples, || board.ranked(&player).map(|r| r.rank));
    }
    report("rank of a player (`Board::ranked`)", samples);

    let mut samples = Vec::new();
    for _ in 0..100_000 {
        time(&mut samples, || board.page(0, 10).len());
    }
    report("top 10 (`Board::page(0, 10)`)", samples);

    let mut samples = Vec::new();
    for _ in 0..100_000 {
        let offset = random.below(players.saturating_sub(100)) as usize;
        time(&mut samples, || board.page(offset, 100).len());
    }
    report("a page of 100 anywhere", samples);

    let mut samples = Vec::new();
    for position in 0..100_000 {
        let player = random.below(players);
        let score = random.below(10_000_000);
        time(&mut samples, || board.put(standing(player, score, players + 1 + position)));
    }
    report("new score for a player (`Board::put`)", samples);

    // Baseline: rank by counting everyone ahead, as a SQL COUNT(*) over the table does.
    let everyone: Vec<Standing> = board.page(0, board.len()).into_iter().map(|r| r.standing.clone()).collect();
    let mut samples = Vec::new();
    for _ in 0..200 {
        let target = &everyone[random.below(players) as usize];
        time(&mut samples, || {
            everyone
                .iter()
                .filter(|s| s.score > target.score || (s.score == target.score && s.reached_at < target.reached_at))
                .count()
                + 1
        });
    }
    report("baseline: rank by counting everyone ahead", samples);
}

//! `loadgen boards`: boards and seasons at scale.
//!
//! `loadgen boards build` writes a log of `--events` awards by `--players` players through the event
//! store, recorded now (so every one is in the current season of every board), folds it into
//! `global`, and then times building the boards of `--boards` from the whole log, as a projector
//! does when a board is added: one board after another, [`store::BOARD_BUILD_BATCH`] events a
//! transaction.
//!
//! Run it through `scripts/bench-boards`, which then measures the resident memory of a query-svc
//! holding those boards, beside one holding `global` alone.
//!
//! `loadgen boards memory` measures what a board costs in memory per player, by the allocator's
//! own count of the bytes allocated (jemalloc's `stats.allocated`), in this process alone: a
//! board of `--players` players, then a second board of the same players (their ids shared, as
//! a query service's boards share them), each `--runs` times.

use std::time::Instant;

use events::boards::BoardDefs;
use store::{LeaderboardStore as _, PgLeaderboard};

/// The scenarios (`loadgen boards …`). `memory` reads jemalloc's own count: the allocator of the
/// `loadgen` binary.
#[derive(clap::Subcommand)]
pub enum Boards {
    /// Write and fold a log, then build the boards from it.
    Build {
        /// The database to fill (created empty by the caller).
        #[arg(long)]
        database_url: String,
        /// The boards to build (a `BOARDS` file).
        #[arg(long)]
        boards: std::path::PathBuf,
        /// Events in the log.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Distinct players (event `n` is player `n mod players`).
        #[arg(long, default_value_t = 1_000_000)]
        players: u64,
    },
    /// Bytes a player costs on a board, and on each further board.
    Memory {
        /// Players on each board.
        #[arg(long, default_value_t = 1_000_000)]
        players: u64,
        /// Times to measure.
        #[arg(long, default_value_t = 3)]
        runs: u32,
    },
}

/// The bytes the allocator has handed out and not had back.
fn allocated() -> anyhow::Result<u64> {
    tikv_jemalloc_ctl::epoch::advance().map_err(|e| anyhow::anyhow!("jemalloc epoch: {e}"))?;
    let bytes = tikv_jemalloc_ctl::stats::allocated::read().map_err(|e| anyhow::anyhow!("jemalloc stats: {e}"))?;
    Ok(bytes as u64)
}

/// `players` standings as a log would leave them: distinct scores and reached-at, a name for
/// every third player.
fn standings(players: u64) -> impl Iterator<Item = events::Standing> {
    (0..players).map(|i| events::Standing {
        player_id: events::PlayerId::parse(format!("load-{i}")).expect("a valid id"),
        name: (i % 3 == 0).then(|| events::DisplayName::parse(format!("Player {i}")).expect("a valid name")),
        score: 1 + (i * 7_919) % 100_000,
        reached_at: i + 1,
        banned: false,
    })
}

fn memory(players: u64, runs: u32) -> anyhow::Result<()> {
    for run in 1..=runs {
        let before = allocated()?;
        let first = events::Board::from_standings(players, standings(players));
        let one = allocated()?;
        // A second board of the same players, holding the first's ids as a query service does.
        let measured = allocated()?;
        let second = events::Board::from_standings(players, first.standings().cloned());
        let two = allocated()?;
        anyhow::ensure!(first.len() == second.len() && first.len() as u64 == players);
        println!(
            "| run {run}: a board of {players} players, bytes per player (ids' text included) | {:.1} | a further board of the same players | {:.1} |",
            (one - before) as f64 / players as f64,
            (two - measured) as f64 / players as f64
        );
        drop((first, second));
    }
    Ok(())
}

async fn build(database_url: &str, boards: &std::path::Path, events: u64, players: u64) -> anyhow::Result<()> {
    let boards = BoardDefs::from_file(boards)?;
    let pool = crate::log::write(database_url, events, players).await?;
    eprintln!("log of {events} events written");

    let global = PgLeaderboard::new(pool.clone());
    let started = Instant::now();
    while global.fold_next(1000).await?.to < events {}
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "| fold of {events} events into `global` (the projector's pace; baseline) | {:.0} events/s ({seconds:.1} s) | | |",
        events as f64 / seconds
    );
    // One board after another, as when each is added to a running deployment.
    for (built_so_far, board) in boards.named().iter().enumerate() {
        let read_model =
            PgLeaderboard::new(pool.clone()).boards(BoardDefs::of(boards.named()[..=built_so_far].to_vec()));
        let started = Instant::now();
        let built = read_model.build_boards(store::BOARD_BUILD_BATCH).await?;
        let seconds = started.elapsed().as_secs_f64();
        anyhow::ensure!(built.built == [board.id.to_string()], "built {:?}", built.built);
        println!(
            "| build of a new board `{}` ({}) from the whole log | {:.0} events/s ({seconds:.1} s) | | |",
            board.id,
            board.season.as_str(),
            built.events as f64 / seconds
        );
    }
    Ok(())
}

/// Runs `command`.
pub async fn run(command: Boards) -> anyhow::Result<()> {
    match command {
        Boards::Build { database_url, boards, events, players } => build(&database_url, &boards, events, players).await,
        Boards::Memory { players, runs } => memory(players, runs),
    }
}

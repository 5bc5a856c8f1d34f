//! `loadgen proofs`: the verifiable log and the board at a point in time at scale.
//!
//! `loadgen proofs build` writes a log of `--events` awards straight through the event store (the
//! append path of the group commit, Merkle tree included), in batches of `--batch` as the group
//! commit forms them under load; it first appends `--compare` events both that way and, on a
//! second database, the way the log was appended before the tree existed (lock the head, insert
//! the batch, move the head), and reports both rates. It then folds the whole log into the read
//! model (snapshots included) and signs a checkpoint of it.
//!
//! `loadgen proofs measure --url` times, one request at a time, inclusion proofs at random positions
//! of the whole tree, the board `as_of_position` random positions, and the live top 10.
//!
//! Run both through `scripts/bench-audit`, which starts the services and also times `verify-log`.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use events::{Event, Points, ScoreAwarded};
use store::{EventStore as _, KeptSigner, LeaderboardStore as _, NewEvent, PgEventLog, PgLeaderboard};
use uuid::Uuid;

/// The scenarios (`loadgen proofs …`).
#[derive(clap::Subcommand)]
pub enum Proofs {
    /// Write and fold a log of `--events` awards, comparing the append with the pre-tree one.
    Build {
        /// The database to fill (created empty by the caller).
        #[arg(long)]
        database_url: String,
        /// A second, empty database for the pre-tree append.
        #[arg(long)]
        baseline_database_url: String,
        /// Events in the log.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Events appended both ways for the comparison.
        #[arg(long, default_value_t = 100_000)]
        compare: u64,
        /// Events per append transaction.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Distinct players.
        #[arg(long, default_value_t = 100_000)]
        players: u64,
    },
    /// Time inclusion proofs, past boards and the live board from a query service.
    Measure {
        /// The query service over the database `build` filled.
        #[arg(long)]
        url: String,
        /// Requests per figure.
        #[arg(long, default_value_t = 1000)]
        requests: usize,
    },
}

/// Award `position` of the synthetic log: players drawn with a skew towards the first ones,
/// recorded a millisecond apart.
fn award(position: u64, players: u64) -> NewEvent {
    let mixed = position.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let unit = (mixed >> 11) as f64 / (1u64 << 53) as f64;
    let player = (unit * unit * players as f64) as u64;
    let recorded_at =
        time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000) + time::Duration::milliseconds(position as i64);
    NewEvent {
        event: Event::ScoreAwarded(ScoreAwarded {
            event_id: Uuid::now_v7(),
            action_id: Uuid::new_v4(),
            player_id: format!("player-{player}").parse().expect("a player id"),
            display_name: None,
            action: "complete_task".parse().expect("an action"),
            points: Points::new(10 + (position % 7) as i64 * 10).expect("points"),
            token_issued_at: 1_767_225_600,
            key_id: "bench".parse().expect("a key id"),
            recorded_at,
        }),
        claims_digest: Some([7; 32]),
    }
}

/// Appends the log's next `count` events in batches of `batch`; returns the rate.
async fn append(log: &PgEventLog, from: u64, count: u64, batch: usize, players: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut next = from + 1;
    while next <= from + count {
        let events: Vec<NewEvent> =
            (next..(next + batch as u64).min(from + count + 1)).map(|p| award(p, players)).collect();
        next += events.len() as u64;
        log.append(&events).await?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// Appends as the log did before it had a Merkle tree: lock the head, insert the batch, move
/// the head and wake the relay, in one transaction.
async fn append_without_tree(pool: &sqlx::PgPool, count: u64, batch: usize, players: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut next = 1;
    while next <= count {
        let events: Vec<NewEvent> = (next..(next + batch as u64).min(count + 1)).map(|p| award(p, players)).collect();
        let mut tx = pool.begin().await?;
        let head: i64 =
            sqlx::query_scalar("SELECT position FROM event_log_head FOR UPDATE").fetch_one(&mut *tx).await?;
        let positions: Vec<i64> = (1..=events.len() as i64).map(|i| head + i).collect();
        sqlx::query(
            "INSERT INTO events (position, event_id, action_id, event_type, event_version, player_id, payload, \
                                 claims_digest, recorded_at) \
             SELECT position, event_id, action_id, event_type, event_version, player_id, payload::json, \
                    claims_digest, recorded_at \
             FROM unnest($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[], \
                         $8::bytea[], $9::timestamptz[]) \
                  AS input(position, event_id, action_id, event_type, event_version, player_id, payload, \
                           claims_digest, recorded_at) \
             ON CONFLICT (action_id) DO NOTHING",
        )
        .bind(&positions)
        .bind(events.iter().map(|e| e.event.event_id()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event.action_id()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event.event_type()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event.version()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event.player_id().as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event.encode()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.claims_digest.map(|d| d.to_vec())).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event.recorded_at()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "WITH advanced AS (UPDATE event_log_head SET position = $1) SELECT pg_notify('scoreboard_log', $1::text)",
        )
        .bind(head + events.len() as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        next += events.len() as u64;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

async fn connect(url: &str) -> anyhow::Result<sqlx::PgPool> {
    let pool = store::postgres::connect_lazy(url, 4, Duration::from_secs(30))?;
    store::postgres::MIGRATOR.run(&pool).await.context("migrating")?;
    Ok(pool)
}

async fn build(
    database_url: &str,
    baseline_database_url: &str,
    events: u64,
    compare: u64,
    batch: usize,
    players: u64,
) -> anyhow::Result<()> {
    let compare = compare.min(events);
    let pool = connect(database_url).await?;
    let log = PgEventLog::new(pool.clone());
    let baseline = append_without_tree(&connect(baseline_database_url).await?, compare, batch, players).await?;
    let ours = append(&log, 0, compare, batch, players).await?;
    println!(
        "| append, {batch} events per transaction, {compare} events | {ours:.0} events/s | {baseline:.0} events/s without the tree | {:.2} × |",
        ours / baseline
    );
    append(&log, compare, events - compare, 1000, players).await?;
    eprintln!("log of {events} events written");

    let read_model = PgLeaderboard::new(pool.clone());
    let started = Instant::now();
    while read_model.fold_next(1000).await?.to < events {}
    let folded = events as f64 / started.elapsed().as_secs_f64();
    println!(
        "| fold of the log into the read model, snapshots and flags included (a rebuild's pace) | {folded:.0} events/s | | |"
    );

    let signer = tlog::note::Signer::from_seed("bench.scoreboard", [9; 32])?;
    log.keep_signer(&KeptSigner { verifier: signer.verifier().to_string(), private_key: None }, true).await?;
    let plan = tlog::Plan::root(events);
    let root = plan.hashes(&log.read_nodes(&plan.nodes()).await?).context("a node is missing")?[0];
    let note = signer.sign(&tlog::note::checkpoint(signer.name(), events, &root))?;
    log.save_checkpoint(&store::Checkpoint { tree_size: events, root_hash: root, note }).await?;
    Ok(())
}

/// p50 and p99 of `n` sequential GETs of the paths `path` makes, in milliseconds.
async fn latencies(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    mut path: impl FnMut(usize) -> String,
) -> anyhow::Result<(f64, f64)> {
    let mut taken = Vec::with_capacity(n);
    for i in 0..n {
        let path = path(i);
        let started = Instant::now();
        let response = client.get(format!("{url}{path}")).send().await?;
        anyhow::ensure!(response.status().is_success(), "GET {path}: {}", response.status());
        response.bytes().await?;
        taken.push(started.elapsed());
    }
    taken.sort();
    let at = |q: f64| taken[((taken.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    Ok((at(0.5), at(0.99)))
}

async fn measure(url: &str, requests: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let board: serde_json::Value = client.get(format!("{url}/v1/leaderboard?limit=1")).send().await?.json().await?;
    let size = board["position"].as_u64().context("a position")?;
    let random = |i: usize| (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) % size + 1;
    let (p50, p99) = latencies(&client, url, requests, |_| "/v1/leaderboard?limit=10".into()).await?;
    println!("| GET /v1/leaderboard top 10, live (the HTTP floor) | p50 {p50:.2} ms, p99 {p99:.2} ms | | |");
    let (p50, p99) = latencies(&client, url, requests, |i| {
        format!("/v1/audit/proof/inclusion?position={}&tree_size={size}", random(i))
    })
    .await?;
    println!("| inclusion proof in a tree of {size} | p50 {p50:.2} ms, p99 {p99:.2} ms | target p99 ≤ 2 ms | |");
    let (p50, p99) =
        latencies(&client, url, requests, |i| format!("/v1/leaderboard?limit=10&as_of_position={}", random(i))).await?;
    println!(
        "| board as_of_position, random positions of {size} | p50 {p50:.2} ms, p99 {p99:.2} ms | target p99 ≤ 50 ms | |"
    );
    Ok(())
}

/// Runs `command`.
pub async fn run(command: Proofs) -> anyhow::Result<()> {
    match command {
        Proofs::Build { database_url, baseline_database_url, events, compare, batch, players } => {
            build(&database_url, &baseline_database_url, events, compare, batch, players).await
        }
        Proofs::Measure { url, requests } => measure(&url, requests).await,
    }
}

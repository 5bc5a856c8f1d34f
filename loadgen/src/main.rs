//! `loadgen`: submits signed actions from many concurrent clients for a while, then reports
//! the accepted rate, the latency of `POST /v1/actions`, and how long the board took to show
//! the last accepted action once the load stopped (the read side's catch-up).
//!
//! ```sh
//! ACTION_KEYS=k1=<secret> cargo run --release -p loadgen -- --target http://127.0.0.1:8080 --clients 64 --duration 10s
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use events::{ActionClaims, ActionName, KeySet};
use platform::config::parse_duration;
use uuid::Uuid;

#[derive(Parser)]
#[command(name = "loadgen", about = "Load generator for Scoreboard")]
struct Args {
    /// Where `POST /v1/actions` goes.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// Where `GET /v1/leaderboard` is (the query service); the target when left out.
    #[arg(long)]
    board: Option<String>,
    /// The keys to sign with (the first is used), as the service reads them.
    #[arg(long, env = "ACTION_KEYS", hide_env_values = true, value_parser = parse_keys)]
    keys: KeySet,
    /// Concurrent clients, each sending its next action when the previous one is answered.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// How long to send.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Distinct players the actions are spread over.
    #[arg(long, default_value_t = 100_000)]
    players: u64,
    /// The action every token names.
    #[arg(long, default_value = "complete_task")]
    action: ActionName,
    /// A name for this run's line in the report.
    #[arg(long, default_value = "run")]
    label: String,
}

fn parse_keys(spec: &str) -> Result<KeySet, String> {
    KeySet::parse(spec).map_err(|e| e.to_string())
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    accepted: u64,
    refused: u64,
    failed: u64,
    last_position: u64,
}

async fn client(args: &Args, http: reqwest::Client, seed: u64, until: Instant) -> Tally {
    let (kid, secret) = {
        let kid = args.keys.signing_ids().next().expect("a signing key").clone();
        let (_, secret) = args.keys.get(kid.as_str()).expect("the key");
        (kid, secret.clone())
    };
    let mut tally = Tally::default();
    let mut player = seed;
    while Instant::now() < until {
        player = player.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = ActionClaims {
            jti: Uuid::now_v7(),
            sub: format!("load-{}", (player >> 33) % args.players).parse().expect("a valid player id"),
            act: args.action.clone(),
            name: None,
            iat: now,
            exp: now + 300,
        };
        let body = serde_json::json!({ "token": events::mint(&kid, &secret, &claims) });
        let started = Instant::now();
        let answer = http.post(format!("{}/v1/actions", args.target)).json(&body).send().await;
        let elapsed = started.elapsed();
        match answer {
            Ok(response) if response.status() == 201 => {
                tally.accepted += 1;
                tally.latencies.push(elapsed);
                if let Ok(body) = response.json::<serde_json::Value>().await {
                    tally.last_position = tally.last_position.max(body["position"].as_u64().unwrap_or(0));
                }
            }
            Ok(_) => tally.refused += 1,
            Err(_) => tally.failed += 1,
        }
    }
    tally
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args: &'static Args = Box::leak(Box::new(Args::parse()));
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.clients).build()?;
    let started = Instant::now();
    let until = started + args.duration;
    let clients: Vec<_> =
        (0..args.clients as u64).map(|seed| tokio::spawn(client(args, http.clone(), seed + 1, until))).collect();
    let mut total = Tally::default();
    for client in clients {
        let tally = client.await?;
        total.latencies.extend(tally.latencies);
        total.accepted += tally.accepted;
        total.refused += tally.refused;
        total.failed += tally.failed;
        total.last_position = total.last_position.max(tally.last_position);
    }
    let elapsed = started.elapsed();
    let load_ended = Instant::now();

    // How long until the board shows the last accepted action.
    let board = args.board.as_deref().unwrap_or(&args.target);
    let caught_up = loop {
        let url = format!("{board}/v1/leaderboard?limit=1&min_position={}", total.last_position);
        if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
            break load_ended.elapsed();
        }
        if load_ended.elapsed() > Duration::from_secs(120) {
            anyhow::bail!("the board did not reach position {} within 120 s", total.last_position);
        }
    };

    total.latencies.sort();
    let at = |q: f64| {
        let i = ((total.latencies.len().max(1) - 1) as f64 * q) as usize;
        total.latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {:.0} |",
        args.label,
        args.clients,
        total.accepted,
        total.accepted as f64 / elapsed.as_secs_f64(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        total.refused,
        total.failed,
        caught_up.as_secs_f64() * 1e3,
    );
    Ok(if total.failed == 0 && total.refused == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

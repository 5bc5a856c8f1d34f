//! `scoreboard-admin`: verify a deployment's log from its public API, replay or verify the read
//! model from the database, and moderate.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use platform::config::{DatabaseConfig, Secret};
use scoreboard_admin::LogSource as _;
use store::{EventStore as _, PgEventLog, PgLeaderboard};

platform::jemalloc!();

#[derive(Parser)]
#[command(name = "scoreboard-admin", version, about = "Scoreboard's auditor and operator commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify the log of a deployment from its public HTTP API alone: every leaf, the tree,
    /// every checkpoint's signature and the consistency of consecutive checkpoints. Names the
    /// first position that disagrees with what was signed; exits 1 on any disagreement.
    VerifyLog(LogLocation),
    /// Verify a season's published results from the deployment's public API alone: the
    /// checkpoint they name is signed, the log up to it is the one signed, and the fold of the
    /// log up to their final position ranks as they do. Exits 1 on any disagreement.
    VerifyResults {
        /// The read side (query-svc or the all-in-one).
        #[arg(long)]
        url: String,
        /// The board.
        #[arg(long)]
        board: String,
        /// The season, e.g. `2026-W48`.
        #[arg(long)]
        season: String,
        /// The version of the results; the latest by default.
        #[arg(long)]
        version: Option<u32>,
        /// The verifier key to trust (note format); the one the deployment serves by default.
        #[arg(long)]
        key: Option<String>,
    },
    /// Back up the all-in-one's embedded database while it serves and writes: one consistent
    /// copy of every table into a new file, and what it holds (its log's position and latest
    /// signed checkpoint). Restore by putting the file in an empty data folder as
    /// `scoreboard.db`.
    Backup {
        /// The all-in-one's data folder (SCOREBOARD_DATA).
        #[arg(long)]
        data: std::path::PathBuf,
        /// The new file to write.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Prove a restored database against the signed checkpoints you kept (`--checkpoints`: a
    /// file as `/v1/audit/checkpoints` serves them, with `--key`) or a live deployment's
    /// (`--url`, which also names the exact first position that disagrees), then rebuild its
    /// read model from its log. Exits 1 on any disagreement, rebuilding nothing.
    RestoreCheck {
        /// The restored database: PostgreSQL, or an all-in-one data folder.
        #[command(flatten)]
        location: ReadModelLocation,
        /// The kept checkpoints: a JSON file of `[{"tree_size", "note"}]`.
        #[arg(long)]
        checkpoints: Option<std::path::PathBuf>,
        /// A live deployment's read side, whose checkpoints (and log) to check against.
        #[arg(long)]
        url: Option<String>,
        /// The verifier key the checkpoints were signed with (note format); the live
        /// deployment's by default.
        #[arg(long)]
        key: Option<String>,
        /// How the rebuilt read model folds.
        #[command(flatten)]
        projection: projector::ProjectionConfig,
        /// The boards to build besides `global`.
        #[command(flatten)]
        boards: platform::config::BoardsConfig,
    },
    /// Print the board as it stood after position N, or at a time, replaying the log from the
    /// database from its first event (no snapshot is trusted).
    Replay {
        #[command(flatten)]
        to: ReplayTo,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Rebuild the read model — `global` and every board of BOARDS — from the log beside the
    /// live one, which keeps serving, and switch over atomically once caught up (readers see no
    /// gap and no older board). Reads the log in one stream and folds it in memory.
    Rebuild {
        /// The database: PostgreSQL, or the all-in-one's embedded one.
        #[command(flatten)]
        location: ReadModelLocation,
        /// How the fresh read model folds (the projector's settings: batch, snapshots, rules).
        #[command(flatten)]
        projection: projector::ProjectionConfig,
        /// The boards to build besides `global` (the projector's BOARDS).
        #[command(flatten)]
        boards: platform::config::BoardsConfig,
    },
    /// Compare the read model with the fold of the log; exits 1 on any difference.
    #[command(alias = "verify")]
    VerifyReadModel(DatabaseConfig),
    /// Ban a player (appends PlayerBanned).
    Ban(Moderation),
    /// Unban a player (appends PlayerUnbanned).
    Unban(Moderation),
    /// Take back one award (`--event-id`) or all of a player's points (`--player`).
    Revoke(Revocation),
    /// List the players flagged by the anomaly rules, newest first, each with the command that
    /// bans them.
    Flags(Credential),
    /// Usage by UTC hour or day, per board: actions and points by action, distinct active
    /// players, new players (GET /v1/admin/stats).
    Stats {
        #[command(flatten)]
        credential: Credential,
        /// `hour` or `day`.
        #[arg(long, default_value = "day")]
        granularity: String,
        /// The start (RFC 3339); by default 24 hours, or 30 days, before `--to`.
        #[arg(long)]
        from: Option<String>,
        /// The end (RFC 3339); by default the end of the current hour or day.
        #[arg(long)]
        to: Option<String>,
    },
}

/// Where the log to verify is read: a deployment's public API, or its database.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct LogLocation {
    /// The deployment's read side (query-svc or the all-in-one), e.g. http://127.0.0.1:8081:
    /// what an auditor without database access checks.
    #[arg(long, env = "SCOREBOARD_URL")]
    url: Option<String>,
    /// The PostgreSQL database holding the log, read directly (faster; no proofs are fetched,
    /// as every checkpoint's root is compared with the one recomputed tree).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// Where a read model lives: PostgreSQL, or the all-in-one's data folder.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct ReadModelLocation {
    /// The PostgreSQL database of the services.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The all-in-one's data folder (its `scoreboard.db`), which may be serving meanwhile.
    #[arg(long, env = "SCOREBOARD_DATA")]
    data: Option<std::path::PathBuf>,
}

/// How far to replay.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct ReplayTo {
    /// The last position to fold.
    #[arg(long)]
    to_position: Option<u64>,
    /// Fold through the last event recorded at or before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    to_time: Option<time::OffsetDateTime>,
}

fn parse_time(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("{text:?} is not an RFC 3339 time (e.g. 2026-11-30T18:00:00Z)"))
}

/// Where and as whom to moderate.
#[derive(Args)]
struct Operator {
    #[command(flatten)]
    credential: Credential,
    /// Why (1–500 characters), kept in the log.
    #[arg(long)]
    reason: String,
}

/// An operator's access to a deployment's write side.
#[derive(Args)]
struct Credential {
    /// The deployment's write side (command-svc or the all-in-one), e.g. http://127.0.0.1:8080.
    #[arg(long, env = "SCOREBOARD_COMMAND_URL")]
    url: String,
    /// An operator's secret from ADMIN_TOKENS.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Secret,
}

#[derive(Args)]
struct Moderation {
    /// The player.
    player: String,
    #[command(flatten)]
    operator: Operator,
}

#[derive(Args)]
#[group(required = true, multiple = false, id = "target")]
struct Revocation {
    /// The award (a ScoreAwarded event id) to take back.
    #[arg(long, group = "target")]
    event_id: Option<String>,
    /// The player whose points so far are all taken back.
    #[arg(long, group = "target")]
    player: Option<String>,
    #[command(flatten)]
    operator: Operator,
}

#[tokio::main]
async fn main() -> ExitCode {
    platform::telemetry::init();
    match run(Cli::parse().command).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("scoreboard-admin: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::VerifyLog(LogLocation { url, database_url }) => {
            let started = std::time::Instant::now();
            let report = match (url, database_url) {
                (Some(url), _) => scoreboard_admin::verify_log(&reqwest::Client::new(), &url).await?,
                (None, Some(database_url)) => {
                    let pool = store::postgres::connect_lazy(&database_url, 4, std::time::Duration::from_secs(5))?;
                    scoreboard_admin::verify_log_from(&scoreboard_admin::Database::new(PgEventLog::new(pool))).await?
                }
                (None, None) => anyhow::bail!("--url or --database-url"),
            };
            let seconds = started.elapsed().as_secs_f64();
            eprintln!("verified in {seconds:.1} s ({:.0} events/s)", report.events as f64 / seconds.max(1e-9));
            for problem in &report.problems {
                println!("{problem}");
            }
            println!(
                "{} events and {} signed checkpoints read: {}",
                report.events,
                report.checkpoints,
                match report.first_position() {
                    None if report.problems.is_empty() => "the log is the one that was signed".to_string(),
                    None => "the checkpoints do not verify".to_string(),
                    Some(position) => format!("the log disagrees with what was signed from position {position}"),
                }
            );
            Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::VerifyResults { url, board, season, version, key } => {
            let client = reqwest::Client::new();
            let report =
                scoreboard_admin::results::verify_results(&client, &url, &board, &season, version, key.as_deref())
                    .await?;
            let results = &report.results;
            for problem in &report.problems {
                println!("{problem}");
            }
            println!(
                "results of {} {} version {} ({} players, final at position {}, checkpoint of {} events), \
                 {} events read: {}",
                results.board,
                results.season,
                results.version,
                results.total_players,
                results.final_position,
                results.checkpoint.tree_size,
                report.events,
                if report.problems.is_empty() {
                    "they are the fold of the signed log"
                } else {
                    "they are NOT the fold of the signed log"
                }
            );
            Ok(if report.problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Backup { data, to } => {
            anyhow::ensure!(!to.exists(), "{} exists already: a backup is written to a new file", to.display());
            anyhow::ensure!(
                data.join(store::sqlite::FILE_NAME).exists(),
                "{} holds no {}: is it the all-in-one's SCOREBOARD_DATA?",
                data.display(),
                store::sqlite::FILE_NAME
            );
            let backup = store::sqlite::backup(&data, &to).await?;
            println!(
                "backed up {} to {} while it served: the log through position {} (its tree: {} events)",
                data.join(store::sqlite::FILE_NAME).display(),
                to.display(),
                backup.position,
                backup.tree_size
            );
            match backup.checkpoint {
                Some(checkpoint) => {
                    print!(
                        "the latest signed checkpoint the copy covers: {} events\n{}",
                        checkpoint.tree_size, checkpoint.note
                    )
                }
                None => println!("the copy covers no signed checkpoint yet"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::RestoreCheck { location, checkpoints, url, key, projection, boards } => {
            let client = reqwest::Client::new();
            let live = url.as_deref().map(|url| scoreboard_admin::Http::new(&client, url));
            let kept: Vec<scoreboard_admin::KeptCheckpoint> =
                match (&checkpoints, &live) {
                    (Some(path), _) => serde_json::from_slice(
                        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
                    )
                    .with_context(|| format!("{}: not a JSON array of {{\"tree_size\", \"note\"}}", path.display()))?,
                    (None, Some(live)) => {
                        let mut kept: Vec<scoreboard_admin::KeptCheckpoint> = Vec::new();
                        loop {
                            let page = live.checkpoints(kept.last().map_or(0, |c| c.tree_size)).await?;
                            if page.is_empty() {
                                break kept;
                            }
                            kept.extend(page);
                        }
                    }
                    (None, None) => {
                        anyhow::bail!("--checkpoints (with --key) or --url: the checkpoints to prove the copy against")
                    }
                };
            let key = match (key, &live) {
                (Some(key), _) => key,
                (None, Some(live)) => live.verifier_key().await?,
                (None, None) => anyhow::bail!("--key: the verifier key the kept checkpoints were signed with"),
            };
            let report = match (&location.database_url, &location.data) {
                (Some(url), _) => {
                    let pool = store::postgres::connect_lazy(url, 4, std::time::Duration::from_secs(5))?;
                    let restored = scoreboard_admin::Database::new(PgEventLog::new(pool));
                    scoreboard_admin::restore::restore_check(&restored, &kept, &key, live.as_ref()).await?
                }
                (None, Some(data)) => {
                    let (log, _) = store::sqlite::open(data)
                        .await
                        .with_context(|| format!("opening the database in {}", data.display()))?;
                    let restored = scoreboard_admin::Database::new(log);
                    scoreboard_admin::restore::restore_check(&restored, &kept, &key, live.as_ref()).await?
                }
                (None, None) => anyhow::bail!("--database-url or --data"),
            };
            for problem in &report.log.problems {
                println!("{problem}");
            }
            if !report.log.problems.is_empty() {
                println!("the copy is NOT the signed log: nothing rebuilt");
                return Ok(ExitCode::from(1));
            }
            let beyond = match (report.prefix_of, report.head > report.matches) {
                (Some(size), _) => {
                    format!("; a prefix of the checkpoint of {size}, by the live log's consistency proof")
                }
                (None, true) => {
                    format!("; positions {}–{} are covered by no kept checkpoint", report.matches + 1, report.head)
                }
                (None, false) => String::new(),
            };
            println!(
                "the copy holds {} events: the signed log through the kept checkpoint of {}{beyond}",
                report.head, report.matches
            );
            let rebuilt = rebuild_at(location, &projection, &boards).await?;
            println!(
                "its read model is rebuilt from its log through position {} (generation {})",
                rebuilt.0.position, rebuilt.0.generation
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { to, database } => {
            let log = PgEventLog::new(database.pool.connect_lazy(&database.database_url)?);
            let to_position = match (to.to_position, to.to_time) {
                (Some(position), _) => position,
                (None, time) => log.position_at(time.context("--to-position or --to-time")?).await?,
            };
            let board = projector::verify::replay(&log, to_position).await?;
            println!("position {}: {} players", board.position(), board.len());
            for ranked in board.page(0, board.len()) {
                println!("{:>6}  {:<32} {}", ranked.rank, ranked.standing.player_id, ranked.standing.score);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebuild { location, projection, boards } => {
            let rebuilt = rebuild_at(location, &projection, &boards).await?;
            println!(
                "rebuilt through position {} in {:.1} s ({:.0} events/s); the read model is generation {}",
                rebuilt.0.position,
                rebuilt.1,
                rebuilt.0.position as f64 / rebuilt.1.max(1e-9),
                rebuilt.0.generation
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::VerifyReadModel(database) => {
            let verified = projector::verify::verify_read_model_and_print(&database).await?;
            Ok(if verified { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Ban(moderation) => {
            let path = format!("/v1/admin/players/{}/ban", moderation.player);
            post(&moderation.operator, &path, serde_json::json!({"reason": moderation.operator.reason})).await
        }
        Command::Unban(moderation) => {
            let path = format!("/v1/admin/players/{}/unban", moderation.player);
            post(&moderation.operator, &path, serde_json::json!({"reason": moderation.operator.reason})).await
        }
        Command::Revoke(revocation) => {
            let reason = &revocation.operator.reason;
            let body = match (&revocation.event_id, &revocation.player) {
                (Some(event_id), _) => serde_json::json!({"event_id": event_id, "reason": reason}),
                (None, player) => serde_json::json!({"player_id": player, "reason": reason}),
            };
            post(&revocation.operator, "/v1/admin/revocations", body).await
        }
        Command::Flags(credential) => flags(&credential).await,
        Command::Stats { credential, granularity, from, to } => {
            let mut query = vec![("granularity", granularity)];
            query.extend(from.map(|from| ("from", from)));
            query.extend(to.map(|to| ("to", to)));
            stats(&credential, &query).await
        }
    }
}

/// Prints usage analytics, board by board (buckets without actions left out); exits 1 unless
/// they were read.
async fn stats(credential: &Credential, query: &[(&str, String)]) -> anyhow::Result<ExitCode> {
    let Some(report) = operator_get(credential, "/v1/admin/stats", query).await? else { return Ok(ExitCode::from(1)) };
    let number = |counts: &serde_json::Value, field: &str| counts[field].as_u64().map_or("-".into(), |n| n.to_string());
    let row = |label: &str, counts: &serde_json::Value| {
        let [actions, points, players, new] =
            ["actions", "points", "active_players", "new_players"].map(|field| number(counts, field));
        println!("{label:<22} {actions:>9} {points:>12} {players:>9} {new:>7}");
    };
    println!(
        "{}s from {} to {}, read model at position {}; distinct players exact up to 256, ±{:.1} % beyond",
        report["granularity"].as_str().unwrap_or("?"),
        report["from"].as_str().unwrap_or("?"),
        report["to"].as_str().unwrap_or("?"),
        report["position"],
        report["active_players_error"].as_f64().unwrap_or(0.0) * 100.0,
    );
    for board in report["boards"].as_array().map(Vec::as_slice).unwrap_or_default() {
        println!("\nboard {}", board["board"].as_str().unwrap_or("?"));
        println!("{:<22} {:>9} {:>12} {:>9} {:>7}", "start", "actions", "points", "players", "new");
        let buckets = board["buckets"].as_array().map(Vec::as_slice).unwrap_or_default();
        let active: Vec<&serde_json::Value> = buckets.iter().filter(|b| b["actions"].as_u64() != Some(0)).collect();
        for bucket in &active {
            row(bucket["start"].as_str().unwrap_or("?"), bucket);
        }
        if active.len() < buckets.len() {
            println!("({} without actions not shown)", buckets.len() - active.len());
        }
        row("whole range", &board["total"]);
        let by_action = board["total"]["by_action"].as_object().into_iter().flatten();
        for (action, count) in by_action {
            println!("  {action}: {} actions, {} points", count["actions"], count["points"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Rebuilds `live`, telling the progress every 100 000 events; what it did, and in how many
/// seconds.
/// Rebuilds the read model at `location` from its log, as `projection` and `boards` say.
async fn rebuild_at(
    location: ReadModelLocation,
    projection: &projector::ProjectionConfig,
    boards: &platform::config::BoardsConfig,
) -> anyhow::Result<(store::Rebuilt, f64)> {
    let rules = projection.rules()?;
    let batch = u32::try_from(projection.batch_max).unwrap_or(u32::MAX);
    let boards = boards.load().context("BOARDS")?;
    match (location.database_url, location.data) {
        (Some(url), _) => {
            let pool = store::postgres::connect_lazy(&url, 4, std::time::Duration::from_secs(5))?;
            store::postgres::MIGRATOR.run(&pool).await.context("migrating the database")?;
            let live = PgLeaderboard::new(pool).folding(projection.snapshot_interval, rules).boards(boards);
            rebuild(&live, batch).await
        }
        (None, Some(data)) => {
            let (_, live) = store::sqlite::open(&data)
                .await
                .with_context(|| format!("opening the database in {}", data.display()))?;
            rebuild(&live.folding(projection.snapshot_interval, rules).boards(boards), batch).await
        }
        (None, None) => anyhow::bail!("--database-url or --data"),
    }
}

async fn rebuild<B: store::sql::Backend>(
    live: &store::ReadModel<B>,
    batch: u32,
) -> anyhow::Result<(store::Rebuilt, f64)> {
    let started = std::time::Instant::now();
    let mut reported = 0;
    let rebuilt = live
        .rebuild(batch, |position| {
            if position >= reported + 100_000 {
                reported = position;
                eprintln!("folded {position} events ({:.1?})", started.elapsed());
            }
        })
        .await?;
    Ok((rebuilt, started.elapsed().as_secs_f64()))
}

/// Prints the review queue; exits 1 unless it was read.
async fn flags(credential: &Credential) -> anyhow::Result<ExitCode> {
    let Some(body) = operator_get(credential, "/v1/admin/flags", &[]).await? else { return Ok(ExitCode::from(1)) };
    let listed = body["flags"].as_array().map(Vec::as_slice).unwrap_or_default();
    for flag in listed {
        let (player, rule) = (flag["player_id"].as_str().unwrap_or("?"), flag["rule"].as_str().unwrap_or("?"));
        println!("{} {player} by {rule}: events {}", flag["flagged_at"].as_str().unwrap_or("?"), flag["events"]);
        println!("  scoreboard-admin ban {player} --reason 'flagged by {rule}'");
    }
    println!("{} flags", listed.len());
    Ok(ExitCode::SUCCESS)
}

/// `GET <path>?<query>` on the write side as an operator: the JSON answer, or `None` once a
/// refusal is printed.
async fn operator_get(
    credential: &Credential,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<Option<serde_json::Value>> {
    let url = format!("{}{path}", credential.url.trim_end_matches('/'));
    let url = reqwest::Url::parse_with_params(&url, query).context("--url")?;
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(credential.admin_token.expose())
        .send()
        .await
        .with_context(|| format!("GET {path}"))?;
    if !response.status().is_success() {
        println!("{} {}", response.status().as_u16(), response.text().await?);
        return Ok(None);
    }
    Ok(Some(response.json().await?))
}

/// Posts a moderation request and prints the answer; exits 1 unless it was recorded.
async fn post(operator: &Operator, path: &str, body: serde_json::Value) -> anyhow::Result<ExitCode> {
    let credential = &operator.credential;
    let response = reqwest::Client::new()
        .post(format!("{}{path}", credential.url.trim_end_matches('/')))
        .bearer_auth(credential.admin_token.expose())
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {path}"))?;
    let status = response.status();
    println!("{} {}", status.as_u16(), response.text().await?);
    Ok(if status.is_success() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

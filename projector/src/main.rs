//! `projector`: fold the log into the read model (default), or verify the read model.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use platform::config::DatabaseConfig;

platform::jemalloc!();

#[derive(Parser)]
#[command(name = "projector", version, about = "Scoreboard's projector")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fold the JetStream copy of the log into the read model (the default).
    Serve(Box<projector::Config>),
    /// Replay the log up to the read model's checkpoint and report every player on whom they
    /// disagree; exits 1 if any.
    #[command(alias = "verify")]
    VerifyReadModel(DatabaseConfig),
}

#[tokio::main]
async fn main() -> ExitCode {
    platform::telemetry::init();
    platform::return_freed_memory();
    let cli = Cli::parse_from(platform::config::default_subcommand(std::env::args_os(), "serve"));
    let outcome = match cli.command {
        Command::Serve(config) => serve(*config).await,
        Command::VerifyReadModel(database) => verify_read_model(database).await,
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            tracing::error!(error.message = %error, error.chain = ?error, "projector failed");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: projector::Config) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    projector::run(config, listener, platform::shutdown::on_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn verify_read_model(database: DatabaseConfig) -> anyhow::Result<ExitCode> {
    let verified = projector::verify::verify_read_model_and_print(&database).await?;
    Ok(if verified { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

//! `command-svc`: serve the action API (default), or mint a token.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use command_svc::config::Config;
use command_svc::mint::{MintArgs, mint_token};

platform::jemalloc!();

#[derive(Parser)]
#[command(name = "command-svc", version, about = "Scoreboard's command service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve POST /v1/actions (the default).
    Serve(Box<Config>),
    /// Print a freshly minted action token.
    MintToken(Box<MintArgs>),
}

#[tokio::main]
async fn main() -> ExitCode {
    platform::telemetry::init();
    platform::return_freed_memory();
    let cli = Cli::parse_from(platform::config::default_subcommand(std::env::args_os(), "serve"));
    match cli.command {
        Command::MintToken(args) => match mint_token(&args) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
        Command::Serve(config) => {
            let outcome = async {
                let listener = tokio::net::TcpListener::bind(config.addr).await?;
                command_svc::run(*config, listener, platform::shutdown::on_signal()).await
            };
            match outcome.await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(error.message = %error, error.chain = ?error, "command-svc failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

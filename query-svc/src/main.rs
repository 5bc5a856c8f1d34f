//! `query-svc`: serves the leaderboard, ranks and live streams.

use std::process::ExitCode;

use clap::Parser;

platform::jemalloc!();

#[derive(Parser)]
#[command(name = "query-svc", version, about = "Scoreboard query-svc")]
struct Cli {
    #[command(flatten)]
    config: query_svc::Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    platform::telemetry::init();
    platform::return_freed_memory();
    let config = Cli::parse().config;
    let outcome = async {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        query_svc::run(config, listener, platform::shutdown::on_signal()).await
    };
    match outcome.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error.message = %error, error.chain = ?error, "query-svc failed");
            ExitCode::FAILURE
        }
    }
}

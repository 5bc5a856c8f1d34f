//! `projector`: folds the JetStream copy of the log into the leaderboard read model.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "projector", version, about = "Scoreboard projector")]
struct Cli {
    #[command(flatten)]
    config: projector::Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    platform::telemetry::init();
    let config = Cli::parse().config;
    let outcome = async {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        projector::run(config, listener, platform::shutdown::on_signal()).await
    };
    match outcome.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error.message = %error, error.chain = ?error, "projector failed");
            ExitCode::FAILURE
        }
    }
}

//! `scoreboard`: the whole product in one process.

use std::process::ExitCode;

use clap::Parser;

platform::jemalloc!();

#[tokio::main]
async fn main() -> ExitCode {
    platform::telemetry::init();
    platform::return_freed_memory();
    let config = scoreboard::Config::parse();
    let outcome = async {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        scoreboard::run(config, listener, platform::shutdown::on_signal()).await
    };
    match outcome.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error.message = %error, error.chain = ?error, "scoreboard failed");
            ExitCode::FAILURE
        }
    }
}

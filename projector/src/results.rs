//! Season results: the folder publishes them as seasons close (`store`'s rules), and sends each
//! version to JetStream for a rewards service (the all-in-one, without NATS, keeps them for its
//! API only).

use std::time::Duration;

use store::LeaderboardStore;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// How often the folder looks for seasons that closed and for amendments.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Where results are sent: the results stream.
#[derive(Clone)]
pub struct Relay {
    /// The JetStream context.
    pub js: async_nats::jetstream::Context,
    /// `<NATS_STREAM>_RESULTS`.
    pub stream: platform::nats::LogStream,
}

/// The most entries one message carries: some 200 KB, well under JetStream's default
/// `max_payload` of 1 MB, however many players a season had.
pub const ENTRIES_PER_MESSAGE: usize = 2_000;

impl Relay {
    /// Sends every version not sent yet, in the order published, each in parts of
    /// [`ENTRIES_PER_MESSAGE`] ranks, marking it once JetStream acknowledged every part (a crash
    /// in between sends it again: within the stream's duplicate window, each part's
    /// `Nats-Msg-Id` stores it once; consumers deduplicate by it beyond). A version that cannot
    /// be sent does not hold up the others.
    async fn send<R: LeaderboardStore>(&self, read_model: &R) -> anyhow::Result<()> {
        let unsent = read_model.unrelayed_results().await?;
        if unsent.is_empty() {
            return Ok(());
        }
        self.stream.ensure(&self.js).await.map_err(|e| anyhow::anyhow!("results stream: {e}"))?;
        for results in unsent {
            if let Err(error) = self.send_version(&results).await {
                tracing::warn!(
                    error.message = %error,
                    board = %results.board,
                    season = %results.season,
                    version = results.version,
                    "cannot send season results to JetStream; retrying"
                );
                continue;
            }
            read_model.mark_relayed(&results).await?;
            metrics::counter!("season_results_relayed_total").increment(1);
        }
        Ok(())
    }

    async fn send_version(&self, results: &store::SeasonResults) -> anyhow::Result<()> {
        let parts = results.entries.len().div_ceil(ENTRIES_PER_MESSAGE).max(1);
        let subject = self.stream.subject(results.board.as_str());
        for part in 1..=parts {
            let page = results.published((part - 1) * ENTRIES_PER_MESSAGE, ENTRIES_PER_MESSAGE);
            let message = platform::nats::results_publication(&page, part, parts);
            self.js.send_publish(subject.clone(), message).await?.await?;
        }
        Ok(())
    }
}

/// Publishes results every [`INTERVAL`] by the clock `now` (seasons close `grace` after their
/// end) and sends them with `relay`, until `stop`.
pub async fn publish_periodically<R: LeaderboardStore>(
    read_model: R,
    grace: Duration,
    now: impl Fn() -> OffsetDateTime + Send,
    relay: Option<Relay>,
    stop: CancellationToken,
) {
    let grace = time::Duration::try_from(grace).unwrap_or(time::Duration::MAX);
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match read_model.publish_results(now(), grace).await {
            Ok(published) => {
                for results in published {
                    metrics::counter!("season_results_published_total").increment(1);
                    tracing::info!(
                        board = %results.board,
                        season = %results.season,
                        version = results.version,
                        position = results.position,
                        players = results.entries.len(),
                        "season results published"
                    );
                }
            }
            Err(error) => tracing::warn!(error.message = %error, "cannot publish season results; retrying"),
        }
        if let Some(relay) = &relay
            && let Err(error) = relay.send(&read_model).await
        {
            tracing::warn!(error.message = %error, "cannot send season results to JetStream; retrying");
        }
    }
}

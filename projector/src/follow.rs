//! The projector without JetStream: in the all-in-one binary's embedded mode it follows the
//! log itself, by position, woken by each commit.

use std::sync::Arc;
use std::time::Duration;

use platform::backoff::Backoff;
use store::{EventStore, LeaderboardStore};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::announce::Announcer;

/// Folds `log` into `read_model` until `shutdown`: reads everything after the checkpoint, folds
/// it, announces the change, and waits for `committed` (or a second) when caught up.
pub async fn follow_log<S: EventStore, R: LeaderboardStore>(
    log: S,
    read_model: R,
    committed: Arc<Notify>,
    announcer: Announcer,
    batch_max: u32,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::default();
    loop {
        match catch_up(&log, &read_model, &announcer, batch_max).await {
            Ok(()) => {
                backoff.reset();
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = committed.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(error) => {
                metrics::counter!("projector_errors_total").increment(1);
                tracing::warn!(error.message = %error, retry_in = ?backoff.delay(), "projection interrupted");
                if !backoff.wait(&shutdown).await {
                    return;
                }
            }
        }
    }
}

async fn catch_up<S: EventStore, R: LeaderboardStore>(
    log: &S,
    read_model: &R,
    announcer: &Announcer,
    batch_max: u32,
) -> Result<(), store::StoreError> {
    let mut checkpoint = read_model.checkpoint().await?;
    loop {
        let stored = log.read_after(checkpoint, batch_max).await?;
        if stored.is_empty() {
            return Ok(());
        }
        let events = stored.iter().map(store::StoredEvent::decoded).collect::<Result<Vec<_>, _>>()?;
        checkpoint = crate::fold(read_model, &events, announcer).await?.to;
    }
}

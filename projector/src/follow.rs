//! The projector without JetStream: in the all-in-one binary's embedded mode it follows the
//! log itself, by position, woken by each commit.

use std::sync::Arc;
use std::time::Duration;

use platform::backoff::Backoff;
use store::LeaderboardStore;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::announce::Announcer;

/// Folds the log into `read_model` until `shutdown`: folds everything after the checkpoint,
/// announces each new checkpoint, and waits for `committed` (or a second) when caught up.
pub async fn follow_log<R: LeaderboardStore>(
    read_model: R,
    committed: Arc<Notify>,
    announcer: Announcer,
    batch_max: u32,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::default();
    loop {
        match catch_up(&read_model, &announcer, batch_max).await {
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

async fn catch_up<R: LeaderboardStore>(
    read_model: &R,
    announcer: &Announcer,
    batch_max: u32,
) -> Result<(), store::StoreError> {
    loop {
        let applied = read_model.fold_next(batch_max).await?;
        crate::announce_fold(&applied, announcer).await;
        if applied.to == applied.from {
            return Ok(());
        }
    }
}

//! Group commit: concurrent requests are appended in batches, one transaction per batch, so
//! throughput is not capped at one commit (one fsync) per request.
//!
//! One task owns the appending. While a batch commits, new requests queue; the next batch
//! takes everything queued (up to a maximum). Under light load a batch is one event and
//! latency is one commit; under heavy load batches grow and the commit cost is shared.

use std::sync::Arc;
use std::time::{Duration, Instant};

use store::{AppendOutcome, EventStore, NewEvent};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

/// Why an append did not happen (or its outcome is unknown). The cause is logged once, by
/// the group-commit task, for the whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// The database is unreachable or too slow; a retry with the same token is safe.
    #[error("event log unavailable")]
    Unavailable,
    /// Any other failure.
    #[error("event log failed")]
    Failed,
}

struct Pending {
    event: NewEvent,
    reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

/// A handle for appending through the group-commit task. Cheap to clone; the task ends
/// once every handle is dropped and the queue is drained.
#[derive(Clone)]
pub struct Appender {
    queue: mpsc::Sender<Pending>,
}

impl Appender {
    /// Starts the group-commit task. `committed` is notified after every commit that appended
    /// something (the relay waits on it).
    pub fn spawn<S: EventStore>(
        log: S,
        batch_max: usize,
        timeout: Duration,
        committed: Arc<Notify>,
    ) -> (Self, JoinHandle<()>) {
        let batch_max = batch_max.max(1);
        let (queue, requests) = mpsc::channel(batch_max * 4);
        let task = tokio::spawn(commit_batches(log, requests, batch_max, timeout, committed));
        (Self { queue }, task)
    }

    /// Appends `event` in the next batch and waits for that batch's commit.
    pub async fn append(&self, event: NewEvent) -> Result<AppendOutcome, AppendError> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send(Pending { event, reply }).await.map_err(|_| AppendError::Unavailable)?;
        outcome.await.map_err(|_| AppendError::Unavailable)?
    }
}

async fn commit_batches<S: EventStore>(
    log: S,
    mut requests: mpsc::Receiver<Pending>,
    batch_max: usize,
    timeout: Duration,
    committed: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(batch_max);
    while requests.recv_many(&mut batch, batch_max).await > 0 {
        let (events, replies): (Vec<NewEvent>, Vec<_>) = batch.drain(..).map(|p| (p.event, p.reply)).unzip();
        let started = Instant::now();
        let result = tokio::time::timeout(timeout, log.append(&events)).await;
        metrics::histogram!("append_batch_size").record(events.len() as f64);
        metrics::histogram!("append_batch_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(Ok(outcomes)) => {
                if outcomes.iter().any(|o| matches!(o, AppendOutcome::Appended(_))) {
                    committed.notify_one();
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // The requester may have gone away; its event is committed regardless.
                    drop(reply.send(Ok(outcome)));
                }
            }
            Ok(Err(error)) => {
                tracing::error!(error.message = %error, error.chain = ?error, events = events.len(), "append failed");
                let error = if error.is_unavailable() { AppendError::Unavailable } else { AppendError::Failed };
                for reply in replies {
                    drop(reply.send(Err(error)));
                }
            }
            Err(_) => {
                tracing::error!(?timeout, events = events.len(), "append timed out");
                for reply in replies {
                    drop(reply.send(Err(AppendError::Unavailable)));
                }
            }
        }
    }
    tracing::debug!("group commit stopped: no more requests");
}

//! Group commit: concurrent requests are appended in batches, one transaction per batch, so
//! throughput is not capped at one commit (one fsync) per request.
//!
//! One task owns the appending. While a batch commits, new requests queue; the next batch
//! takes everything queued (up to a maximum). Under light load a batch is one event and
//! latency is one commit; under heavy load batches grow and the commit cost is shared.
//!
//! - The queue is bounded: a request that finds it full is refused at once (`503` with
//!   `Retry-After`), so an overload sheds work instead of queueing without end.
//! - One bad event does not fail its neighbours: when the database refuses a batch for
//!   anything but unavailability, the batch is split in halves and each half appended on its
//!   own, down to the one event that is refused.

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
    /// The queue in front of the group commit is full; a retry with the same token is safe.
    #[error("too many appends waiting")]
    Overloaded,
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
        queue_max: usize,
        timeout: Duration,
        committed: Arc<Notify>,
    ) -> (Self, JoinHandle<()>) {
        let batch_max = batch_max.max(1);
        let (queue, requests) = mpsc::channel(queue_max.max(1));
        let task = tokio::spawn(commit_batches(log, requests, batch_max, timeout, committed));
        (Self { queue }, task)
    }

    /// Appends `event` in the next batch and waits for that batch's commit.
    pub async fn append(&self, event: NewEvent) -> Result<AppendOutcome, AppendError> {
        let (reply, outcome) = oneshot::channel();
        self.queue.try_send(Pending { event, reply }).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => {
                metrics::counter!("append_queue_full_total").increment(1);
                AppendError::Overloaded
            }
            mpsc::error::TrySendError::Closed(_) => AppendError::Unavailable,
        })?;
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
        let outcomes = append_isolating(&log, &events, timeout).await;
        metrics::histogram!("append_batch_size").record(events.len() as f64);
        metrics::histogram!("append_batch_seconds").record(started.elapsed().as_secs_f64());
        if outcomes.iter().any(|o| matches!(o, Ok(AppendOutcome::Appended(_)))) {
            committed.notify_one();
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            // The requester may have gone away; its event is committed regardless.
            drop(reply.send(outcome));
        }
    }
    tracing::debug!("group commit stopped: no more requests");
}

/// Appends `events` in one transaction if the database takes them all; if it refuses the batch
/// (for anything but being unavailable), appends each half on its own, so that only the events
/// it refuses fail. Outcomes are in the order of `events`, and so are positions.
async fn append_isolating<S: EventStore>(
    log: &S,
    events: &[NewEvent],
    timeout: Duration,
) -> Vec<Result<AppendOutcome, AppendError>> {
    let mut outcomes = Vec::with_capacity(events.len());
    let mut parts = vec![events];
    while let Some(part) = parts.pop() {
        match tokio::time::timeout(timeout, log.append(part)).await {
            Ok(Ok(appended)) => outcomes.extend(appended.into_iter().map(Ok)),
            Ok(Err(error)) if !error.is_unavailable() && part.len() > 1 => {
                let (first, second) = part.split_at(part.len() / 2);
                parts.extend([second, first]);
            }
            Ok(Err(error)) => {
                tracing::error!(error.message = %error, error.chain = ?error, events = part.len(), "append failed");
                let error = if error.is_unavailable() { AppendError::Unavailable } else { AppendError::Failed };
                outcomes.extend(part.iter().map(|_| Err(error)));
            }
            Err(_) => {
                tracing::error!(?timeout, events = part.len(), "append timed out");
                outcomes.extend(part.iter().map(|_| Err(AppendError::Unavailable)));
            }
        }
    }
    outcomes
}

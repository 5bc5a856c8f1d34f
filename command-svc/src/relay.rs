//! The relay: publishes the event log to JetStream, in order, so that the stream is an exact
//! copy of the log (stream sequence `n` = log position `n`).
//!
//! - It follows the log by position. Positions are dense and become visible in order, so
//!   reading `position > last published` never skips an event.
//! - Each event is published with `Nats-Msg-Id` = event id and `Nats-Expected-Last-Sequence` =
//!   the stream's last sequence (position − 1, as long as only relays write to the stream). The
//!   server refuses anything that would not land exactly there, so a crashed, restarted or
//!   concurrent relay can never duplicate or reorder an event, and nothing depends on the
//!   stream's two-minute duplicate window.
//! - After any restart it resumes after the stream's last message, once it checked that this
//!   message is the log's event at the position its `Scoreboard-Position` header names. Should
//!   anything else ever be written into the stream, the relay continues after it; consumers
//!   check every message against the log and fold only the log's own events.
//! - A stream whose newest event is not the log's (it holds events the log no longer has: a
//!   PostgreSQL failover that lost acknowledged commits, or a stream of another log) is a
//!   divergence: the relay stops publishing into it, says so at `/readyz` and in
//!   `relay_diverged`, and looks again with backoff. Actions are still accepted and durable
//!   in the log; the operator decides (docs/operating.md, "When the log is behind the stream").
//! - One relay publishes at a time: the processes sharing a database elect a leader with a
//!   PostgreSQL session advisory lock, released when the leader's connection ends.
//! - NATS being down never blocks or fails an append: the relay retries with backoff and
//!   publishes the backlog once NATS is back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;
use platform::backoff::Backoff;
use platform::nats::{LogStream, POSITION_HEADER};
use sqlx::Connection as _;
use sqlx::postgres::PgListener;
use store::{EventStore, PgEventLog, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Advisory lock key that elects the one publishing relay per database.
const LEADER_LOCK: i64 = 0x5C0E_B0A2_D0E1_A700;
/// Events read and published per round; acks are awaited after the whole round is sent.
const ROUND: u32 = 512;
/// How often the relay looks at the log without being woken (a safety net for lost wakeups).
const POLL: Duration = Duration::from_secs(1);
/// How many foreign messages at the end of the stream the relay steps over on resuming.
const FOREIGN_TAIL: usize = 1000;
/// The pause before resynchronising with a stream someone else wrote into.
const RESYNC_PAUSE: Duration = Duration::from_millis(50);
/// How long a stopping relay keeps trying to publish what remains.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// Why a relay round stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading the log failed.
    #[error("reading the event log failed")]
    Log(#[from] StoreError),
    /// Talking to PostgreSQL for leadership or notifications failed.
    #[error("leader election or log notifications failed")]
    Database(#[from] sqlx::Error),
    /// JetStream refused or did not answer.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// Someone else wrote into the stream since the relay last looked: it resynchronises.
    #[error("the stream moved before position {0}; resynchronising")]
    Moved(u64),
    /// The stream holds something other than a prefix of this log.
    #[error("stream {stream} does not match the event log: {detail}")]
    Diverged {
        /// The stream's name.
        stream: String,
        /// What does not match.
        detail: String,
    },
}

fn jetstream_error(error: impl std::fmt::Display) -> RelayError {
    RelayError::JetStream(error.to_string())
}

/// The last event the stream holds: its log position and its stream sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cursor {
    position: u64,
    sequence: u64,
}

/// Whether the relay found the stream diverged from the log: a readiness check.
#[derive(Debug, Clone, Default)]
pub struct Divergence(Arc<Mutex<Option<String>>>);

impl Divergence {
    /// `Err` with what does not match while the stream is diverged from the log.
    pub fn check(&self) -> Result<(), String> {
        match &*self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Some(detail) => Err(detail.clone()),
            None => Ok(()),
        }
    }

    fn set(&self, detail: Option<String>) {
        metrics::gauge!("relay_diverged").set(if detail.is_some() { 1.0 } else { 0.0 });
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = detail;
    }
}

/// Publishes the log to JetStream; see the module documentation.
pub struct Relay {
    log: PgEventLog,
    js: jetstream::Context,
    stream: LogStream,
    committed: Arc<Notify>,
    divergence: Divergence,
}

impl Relay {
    /// A relay for `log` into `stream`, woken early by `committed`.
    pub fn new(log: PgEventLog, js: jetstream::Context, stream: LogStream, committed: Arc<Notify>) -> Self {
        Self { log, js, stream, committed, divergence: Divergence::default() }
    }

    /// The relay's divergence, for `/readyz`.
    pub fn divergence(&self) -> Divergence {
        self.divergence.clone()
    }

    /// Runs until `stop` is cancelled, then tries for a few seconds to publish what is left.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Backoff::default();
        while !stop.is_cancelled() {
            match self.lead(&stop).await {
                Ok(()) => backoff.reset(),
                Err(RelayError::Moved(position)) => {
                    metrics::counter!("relay_resynchronisations_total").increment(1);
                    tracing::info!(position, "someone else wrote into the stream; resynchronising");
                    // Bounded, so that a flood of foreign messages cannot make the relay spin.
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep(RESYNC_PAUSE) => {}
                    }
                }
                Err(error @ RelayError::Diverged { .. }) => {
                    metrics::counter!("relay_errors_total").increment(1);
                    tracing::error!(error.message = %error, retry_in = ?backoff.delay(), "relay stopped: the stream is not a copy of the log");
                    self.divergence.set(Some(error.to_string()));
                    backoff.wait(&stop).await;
                }
                Err(error) => {
                    metrics::counter!("relay_errors_total").increment(1);
                    tracing::warn!(error.message = %error, retry_in = ?backoff.delay(), "relay interrupted");
                    backoff.wait(&stop).await;
                }
            }
        }
        tracing::debug!("relay stopped");
    }

    /// Waits to become the leader, then publishes until `stop` or an error.
    async fn lead(&self, stop: &CancellationToken) -> Result<(), RelayError> {
        let Some(mut leader) = platform::postgres::elect_leader(self.log.pool(), LEADER_LOCK, stop).await? else {
            return Ok(());
        };
        tracing::info!(stream = self.stream.name(), "relay elected; publishing the log");
        let mut listener = PgListener::connect_with(self.log.pool()).await?;
        listener.listen(store::postgres::LOG_CHANNEL).await?;

        let mut cursor = self.resume_point().await?;
        self.divergence.set(None);
        loop {
            cursor = self.publish_after(cursor).await?;
            tokio::select! {
                () = stop.cancelled() => {
                    let flush = tokio::time::timeout(FINAL_FLUSH, self.publish_after(cursor)).await;
                    match flush {
                        Ok(Ok(last)) => tracing::info!(published = last.position, "relay flushed before stopping"),
                        Ok(Err(error)) => tracing::warn!(error.message = %error, "relay could not flush before stopping"),
                        Err(_) => tracing::warn!("relay flush timed out; the next relay publishes the rest"),
                    }
                    return Ok(());
                }
                () = self.committed.notified() => {}
                notification = listener.recv() => { notification?; }
                () = tokio::time::sleep(POLL) => {
                    // Still the leader? The lock lives exactly as long as this connection.
                    leader.ping().await?;
                }
            }
        }
    }

    /// Where the stream ends: its last sequence, and the position of the newest message that is
    /// an event of this log. Messages someone else wrote into the stream (no message id or no
    /// position, or another event than the log holds at that position) are stepped over:
    /// consumers check every message against the log, so publishing after them is safe. A
    /// message that claims a position beyond the log's head means the log is behind the stream:
    /// a divergence.
    async fn resume_point(&self) -> Result<Cursor, RelayError> {
        let mut stream = self.stream.ensure(&self.js).await.map_err(jetstream_error)?;
        let info = stream.info().await.map_err(jetstream_error)?;
        let (first, last) = (info.state.first_sequence.max(1), info.state.last_sequence);
        for sequence in (first..=last).rev().take(FOREIGN_TAIL) {
            let message = stream.get_raw_message(sequence).await.map_err(jetstream_error)?;
            let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_string());
            let position = header(POSITION_HEADER).and_then(|p| p.parse::<u64>().ok());
            let (Some(position), Some(message_id)) = (position, header(async_nats::header::NATS_MESSAGE_ID.as_ref()))
            else {
                metrics::counter!("relay_foreign_messages_total").increment(1);
                tracing::warn!(sequence, "stepping over a message that is not an event of the log");
                continue;
            };
            match self.log.read_after(position.saturating_sub(1), 1).await?.first() {
                Some(event) if event.position == position && event.event_id.to_string() == message_id => {
                    return Ok(Cursor { position, sequence: last });
                }
                Some(event) if event.position == position => {
                    metrics::counter!("relay_foreign_messages_total").increment(1);
                    tracing::warn!(sequence, position, message_id, "stepping over a message the log contradicts");
                }
                _ => {
                    return Err(self.diverged(format!(
                        "message {sequence} claims position {position} (id {message_id}), beyond the log's head: \
                         the log is behind the stream"
                    )));
                }
            }
        }
        if last.saturating_sub(first) >= FOREIGN_TAIL as u64 {
            return Err(self.diverged(format!("none of the last {FOREIGN_TAIL} messages is an event of the log")));
        }
        // Nothing of the log in the stream yet (it is empty, or holds foreign messages only).
        Ok(Cursor { position: 0, sequence: last })
    }

    fn diverged(&self, detail: String) -> RelayError {
        RelayError::Diverged { stream: self.stream.name().to_string(), detail }
    }

    /// Publishes every event after `cursor`, in rounds; returns the new cursor.
    async fn publish_after(&self, mut cursor: Cursor) -> Result<Cursor, RelayError> {
        loop {
            let events = self.log.read_after(cursor.position, ROUND).await?;
            if events.is_empty() {
                let head = self.log.head().await?;
                metrics::gauge!("relay_lag_events").set(head.saturating_sub(cursor.position) as f64);
                return Ok(cursor);
            }
            let mut acks = Vec::with_capacity(events.len());
            for (sequence, event) in (cursor.sequence + 1..).zip(&events) {
                let message = platform::nats::publication(event).expected_last_sequence(sequence - 1);
                let ack = self
                    .js
                    .send_publish(self.stream.subject(&event.event_type), message)
                    .await
                    .map_err(jetstream_error)?;
                acks.push((event.position, sequence, ack));
            }
            for (position, sequence, ack) in acks {
                let ack = ack.await.map_err(|error| match error.kind() {
                    PublishErrorKind::WrongLastSequence => RelayError::Moved(position),
                    _ => jetstream_error(error),
                })?;
                if ack.sequence != sequence || ack.duplicate {
                    return Err(self.diverged(format!(
                        "position {position} landed at sequence {} (expected {sequence})",
                        ack.sequence
                    )));
                }
                cursor = Cursor { position, sequence };
            }
            metrics::gauge!("relay_published_position").set(cursor.position as f64);
            metrics::counter!("relay_published_total").increment(events.len() as u64);
        }
    }
}

//! The relay: publishes the event log to JetStream, in order, so that the stream is an exact
//! copy of the log (stream sequence `n` = log position `n`).
//!
//! - It follows the log by position. Positions are dense and become visible in order, so
//!   reading `position > last published` never skips an event.
//! - Each event is published with `Nats-Msg-Id` = event id and `Nats-Expected-Last-Sequence` =
//!   position − 1. The server refuses anything that would not land exactly at its position,
//!   so a crashed, restarted or concurrent relay can never duplicate or reorder an event, and
//!   nothing depends on the stream's two-minute duplicate window.
//! - After any restart it resumes from the stream's last sequence, after checking that the
//!   stream's last message is the log's event at that position.
//! - One relay publishes at a time: the processes sharing a database elect a leader with a
//!   PostgreSQL session advisory lock, released when the leader's connection ends.
//! - NATS being down never blocks or fails an append: the relay retries with backoff and
//!   publishes the backlog once NATS is back.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, message::PublishMessage};
use platform::jetstream::{EVENT_TYPE_HEADER, EVENT_VERSION_HEADER, LogStream, POSITION_HEADER};
use sqlx::postgres::PgListener;
use sqlx::{Connection, PgConnection};
use store::{PgEventLog, StoreError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Advisory lock key that elects the one publishing relay per database.
const LEADER_LOCK: i64 = 0x5C0E_B0A2_D0E1_A700;
/// Events read and published per round; acks are awaited after the whole round is sent.
const ROUND: u32 = 512;
/// How often the relay looks at the log without being woken (a safety net for lost wakeups).
const POLL: Duration = Duration::from_secs(1);
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

/// Publishes the log to JetStream; see the module documentation.
pub struct Relay {
    log: PgEventLog,
    js: jetstream::Context,
    stream: LogStream,
    committed: Arc<Notify>,
}

impl Relay {
    /// A relay for `log` into `stream`, woken early by `committed`.
    pub fn new(log: PgEventLog, js: jetstream::Context, stream: LogStream, committed: Arc<Notify>) -> Self {
        Self { log, js, stream, committed }
    }

    /// Runs until `stop` is cancelled, then tries for a few seconds to publish what is left.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        while !stop.is_cancelled() {
            match self.lead(&stop).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    metrics::counter!("relay_errors_total").increment(1);
                    tracing::warn!(error.message = %error, retry_in = ?backoff, "relay interrupted");
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::debug!("relay stopped");
    }

    /// Waits to become the leader, then publishes until `stop` or an error.
    async fn lead(&self, stop: &CancellationToken) -> Result<(), RelayError> {
        let mut leader = PgConnection::connect_with(&self.log.pool().connect_options()).await?;
        loop {
            let elected: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LEADER_LOCK).fetch_one(&mut leader).await?;
            if elected {
                break;
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(POLL) => {}
            }
        }
        tracing::info!(stream = self.stream.name(), "relay elected; publishing the log");
        let mut listener = PgListener::connect_with(self.log.pool()).await?;
        listener.listen(store::postgres::LOG_CHANNEL).await?;

        let mut published = self.resume_point().await?;
        loop {
            published = self.publish_after(published).await?;
            tokio::select! {
                () = stop.cancelled() => {
                    let flush = tokio::time::timeout(FINAL_FLUSH, self.publish_after(published)).await;
                    match flush {
                        Ok(Ok(last)) => tracing::info!(published = last, "relay flushed before stopping"),
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

    /// The stream's last sequence, after checking that the stream is a prefix of the log.
    async fn resume_point(&self) -> Result<u64, RelayError> {
        let mut stream = self.stream.ensure(&self.js).await.map_err(jetstream_error)?;
        let last = stream.info().await.map_err(jetstream_error)?.state.last_sequence;
        if last == 0 {
            return Ok(0);
        }
        let diverged = |detail: String| RelayError::Diverged { stream: self.stream.name().to_string(), detail };
        let in_log = self.log.read_after(last - 1, 1).await?;
        let Some(expected) = in_log.first().filter(|e| e.position == last) else {
            return Err(diverged(format!("the stream holds {last} events but the log is shorter")));
        };
        let message = stream.get_raw_message(last).await.map_err(jetstream_error)?;
        let message_id = message.headers.get(async_nats::header::NATS_MESSAGE_ID).map(|v| v.as_str().to_string());
        if message_id.as_deref() != Some(expected.event_id.to_string().as_str()) {
            return Err(diverged(format!(
                "message {last} has id {message_id:?}, the log's event {last} is {}",
                expected.event_id
            )));
        }
        Ok(last)
    }

    /// Publishes every event after `published`, in rounds; returns the new last position.
    async fn publish_after(&self, mut published: u64) -> Result<u64, RelayError> {
        loop {
            let events = self.log.read_after(published, ROUND).await?;
            if events.is_empty() {
                let head = self.log.head().await?;
                metrics::gauge!("relay_lag_events").set(head.saturating_sub(published) as f64);
                return Ok(published);
            }
            let mut acks = Vec::with_capacity(events.len());
            for event in &events {
                let message = PublishMessage::build()
                    .payload(event.payload.clone().into())
                    .message_id(event.event_id.to_string())
                    .expected_last_sequence(event.position - 1)
                    .header(POSITION_HEADER, event.position.to_string().as_str())
                    .header(EVENT_TYPE_HEADER, event.event_type.as_str())
                    .header(EVENT_VERSION_HEADER, event.event_version.to_string().as_str());
                let ack = self
                    .js
                    .send_publish(self.stream.subject(&event.event_type), message)
                    .await
                    .map_err(jetstream_error)?;
                acks.push((event.position, ack));
            }
            for (position, ack) in acks {
                let ack = ack.await.map_err(|error| match error.kind() {
                    PublishErrorKind::WrongLastSequence => RelayError::Diverged {
                        stream: self.stream.name().to_string(),
                        detail: format!("the stream did not expect position {position}; resynchronising"),
                    },
                    _ => jetstream_error(error),
                })?;
                if ack.sequence != position {
                    return Err(RelayError::Diverged {
                        stream: self.stream.name().to_string(),
                        detail: format!("position {position} landed at sequence {}", ack.sequence),
                    });
                }
                published = position;
            }
            metrics::gauge!("relay_published_position").set(published as f64);
            metrics::counter!("relay_published_total").increment(events.len() as u64);
        }
    }
}

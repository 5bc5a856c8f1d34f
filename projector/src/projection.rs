//! The leaderboard projection: folds the JetStream copy of the log into the read model,
//! exactly once, and announces every change to the query services.
//!
//! - One projector is active per database (elected with a PostgreSQL advisory lock); others
//!   stand by and take over when its connection ends.
//! - On taking over it (re)creates its durable pull consumer to start at checkpoint + 1: the
//!   checkpoint in PostgreSQL, not the consumer's state, says where the fold stands.
//! - Each batch is applied in one transaction that also moves the checkpoint; anything at or
//!   below the checkpoint is skipped; the batch is acknowledged after the commit (`AckAll` on
//!   its last message). A crash at any instant therefore loses nothing and counts nothing twice.
//! - The stream is the wake-up and the order, never the authority: each message only claims to
//!   be the event at some position, and the transaction that folds checks every claim against
//!   the log and folds the log's own events through the highest confirmed one. A message the
//!   log contradicts (forged, or from a log that no longer exists) is counted, logged,
//!   acknowledged and never folded. An event whose message has not arrived yet (a redelivery
//!   overtaken by later messages) is folded from the log all the same, so there is no gap to
//!   wait for and nothing to rewind.
//! - After each commit the new checkpoint is announced on the changes subject.
//! - The leader also builds the boards added to `BOARDS` from the log, in the fold it keeps in
//!   memory, between its batches.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::{self, Message};
use futures::StreamExt as _;
use platform::backoff::Backoff;
use platform::nats::LogStream;
use sqlx::Connection as _;
use store::{LeaderboardStore, PgLeaderboard, StoreError};
use tokio_util::sync::CancellationToken;

use crate::announce::Announcer;

/// Advisory lock key that elects the one active projector per database.
const LEADER_LOCK: i64 = 0x5C0E_B0A2_D0E1_A701;
/// How often the leader checks that it still holds its lock while no message arrives.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// Why a projection run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The read model could not be read or written.
    #[error("read model")]
    Store(#[from] StoreError),
    /// Leader election failed.
    #[error("leader election")]
    Database(#[from] sqlx::Error),
    /// JetStream refused or did not answer.
    #[error("JetStream: {0}")]
    JetStream(String),
}

fn jetstream_error(error: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::JetStream(error.to_string())
}

/// Settings of the projection.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The stream to consume.
    pub stream: LogStream,
    /// The durable consumer's name.
    pub consumer: String,
    /// The most events folded in one transaction.
    pub batch_max: usize,
    /// How long JetStream waits for an acknowledgement before redelivering.
    pub ack_wait: Duration,
    /// How many positions apart the fold is snapshotted.
    pub snapshot_interval: u64,
    /// The rules that flag players for review.
    pub rules: events::anomaly::Rules,
    /// The boards folded besides `global`.
    pub boards: events::boards::BoardDefs,
    /// How long after a season's end its results wait for appends in flight.
    pub season_grace: Duration,
    /// Where season results are sent.
    pub results_stream: LogStream,
}

/// The leaderboard projection; see the module documentation.
pub struct Projection {
    read_model: PgLeaderboard,
    pool: sqlx::PgPool,
    nats: async_nats::Client,
    announcer: Announcer,
    settings: Settings,
}

impl Projection {
    /// A projection into the read model behind `pool`, consuming through `nats` and
    /// announcing through `announcer`.
    pub fn new(pool: sqlx::PgPool, nats: async_nats::Client, announcer: Announcer, settings: Settings) -> Self {
        let read_model = PgLeaderboard::new(pool.clone())
            .folding(settings.snapshot_interval, settings.rules.clone())
            .boards(settings.boards.clone());
        Self { read_model, pool, nats, announcer, settings }
    }

    /// The read model it folds into.
    pub fn read_model(&self) -> &PgLeaderboard {
        &self.read_model
    }

    /// Runs until `shutdown`, retrying with backoff after any error.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            match self.lead(&shutdown).await {
                Ok(()) => backoff.reset(),
                Err(error) => {
                    metrics::counter!("projector_errors_total").increment(1);
                    tracing::warn!(error.message = %error, retry_in = ?backoff.delay(), "projection interrupted");
                    backoff.wait(&shutdown).await;
                }
            }
        }
        tracing::debug!("projection stopped");
    }

    async fn lead(&self, shutdown: &CancellationToken) -> Result<(), ProjectionError> {
        let Some(mut leader) = platform::postgres::elect_leader(&self.pool, LEADER_LOCK, shutdown).await? else {
            return Ok(());
        };
        let js = jetstream::new(self.nats.clone());
        let stream = self.settings.stream.ensure(&js).await.map_err(jetstream_error)?;
        let checkpoint = self.read_model.checkpoint().await?;
        // The checkpoint decides where to start: an earlier consumer's state is dropped.
        match stream.delete_consumer(&self.settings.consumer).await {
            Ok(_) => {}
            Err(error) if error.to_string().contains("not found") => {}
            Err(error) => return Err(jetstream_error(error)),
        }
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(self.settings.consumer.clone()),
                deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: checkpoint + 1 },
                ack_policy: AckPolicy::All,
                ack_wait: self.settings.ack_wait,
                max_ack_pending: i64::try_from(self.settings.batch_max * 20).unwrap_or(i64::MAX),
                ..Default::default()
            })
            .await
            .map_err(jetstream_error)?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.settings.batch_max)
            .messages()
            .await
            .map_err(jetstream_error)?;
        let mut batches = messages.ready_chunks(self.settings.batch_max);
        tracing::info!(checkpoint, consumer = %self.settings.consumer, "projector elected; folding from the checkpoint");
        // Boards are built, and season results published, by the one folder, beside its
        // folding, for as long as it leads.
        let leading = shutdown.child_token();
        let _stop_building = leading.clone().drop_guard();
        tokio::spawn(crate::build_boards(self.read_model.clone(), leading.clone()));
        let relay = crate::results::Relay { js: js.clone(), stream: self.settings.results_stream.clone() };
        tokio::spawn(crate::results::publish_periodically(
            self.read_model.clone(),
            self.settings.season_grace,
            time::OffsetDateTime::now_utc,
            Some(relay),
            leading,
        ));

        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                _ = heartbeat.tick() => leader.ping().await?,
                batch = batches.next() => {
                    let batch = batch.ok_or_else(|| jetstream_error("the consumer's message stream ended"))?;
                    self.project(batch).await?;
                }
            }
        }
    }

    /// Folds what one batch confirms and acknowledges the batch.
    async fn project<E: std::fmt::Display>(&self, batch: Vec<Result<Message, E>>) -> Result<(), ProjectionError> {
        let started = Instant::now();
        let mut claims = Vec::with_capacity(batch.len());
        let mut last = None;
        for message in batch {
            let message = message.map_err(jetstream_error)?;
            match platform::nats::claim(message.headers.as_ref(), &message.payload) {
                Ok(claim) => claims.push(claim),
                Err(foreign) => {
                    metrics::counter!("projector_foreign_messages_total").increment(1);
                    tracing::warn!(subject = %message.subject, error.message = %foreign, "skipping a message that is not an event");
                }
            }
            last = Some(message);
        }
        let applied = self.read_model.fold_claimed(&claims).await?;
        crate::announce_fold(&applied, &self.announcer).await;
        if let Some(last) = last {
            if let Ok(info) = last.info() {
                metrics::gauge!("projector_lag_events").set(info.pending as f64);
            }
            // AckAll: acknowledges every message of the batch, after the commit.
            last.ack().await.map_err(jetstream_error)?;
        }
        metrics::histogram!("projector_batch_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("projector_batch_size").record((applied.to - applied.from) as f64);
        Ok(())
    }
}

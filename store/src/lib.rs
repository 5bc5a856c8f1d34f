//! Scoreboard's persistence: the event log (source of truth) and, beside it, the leaderboard
//! read model with its projection checkpoint.
//!
//! The log hands out dense global positions in commit order, so that anything following it by
//! position (the JetStream relay, the projector, an auditor) can never skip an event.

mod error;
pub mod postgres;
pub mod read_model;

use events::{DecodeError, Event, RecordedEvent};
use time::OffsetDateTime;
use uuid::Uuid;

pub use error::StoreError;
pub use postgres::PgEventLog;
pub use read_model::{Applied, PgLeaderboard};

/// An event to append, with the digest of the token claims that caused it (if any).
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The event.
    pub event: Event,
    /// SHA-256 of the canonical token claims: equal digests mean the same action.
    pub claims_digest: Option<[u8; 32]>,
}

/// What became of one event of an appended batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Appended now, at this position.
    Appended(RecordedEvent),
    /// Its action id was recorded before (by an earlier batch, or earlier in this one): the
    /// original event, and whether it came from the same claims (a safe retry) or not (a conflict).
    AlreadyRecorded {
        /// The event recorded first for this action id.
        original: RecordedEvent,
        /// `true` when the claims digests are equal.
        same_claims: bool,
    },
}

/// An event as the log stores it: position, identity, and the exact payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Global position, dense from 1.
    pub position: u64,
    /// The event's id.
    pub event_id: Uuid,
    /// Type name, e.g. `ScoreAwarded`.
    pub event_type: String,
    /// Schema version of `payload`.
    pub event_version: i32,
    /// The payload exactly as written.
    pub payload: String,
    /// When it was recorded.
    pub recorded_at: OffsetDateTime,
}

impl StoredEvent {
    /// Reads the payload back as an event.
    pub fn decode(&self) -> Result<RecordedEvent, DecodeError> {
        let event = Event::decode(&self.event_type, self.event_version, self.payload.as_bytes())?;
        Ok(RecordedEvent { position: self.position, event })
    }
}

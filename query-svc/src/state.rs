//! What the read endpoints share: the boards in memory, the database read apart, who may read
//! it and what it left in memory.

use std::sync::Arc;
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use store::EventStore;

use crate::admission::{Admission, Cost};
use crate::apart::Apart;
use crate::error::QueryError;
use crate::kept::Kept;
use crate::live::{LiveBoard, LiveBoards};
use platform::limits::Slot;

/// What the read endpoints share, behind one pointer: axum clones it for every request, and
/// each clone of a pointer the worker threads share is an atomic write to a line of memory
/// they pass back and forth (cloning and dropping its eight fields took 8 % of query-svc's
/// time under `wrk`).
pub struct Reader<S, R>(Arc<ReaderState<S, R>>);

impl<S, R> Reader<S, R> {
    /// Shares `state`.
    pub fn new(state: ReaderState<S, R>) -> Self {
        Self(Arc::new(state))
    }
}

impl<S, R> std::ops::Deref for Reader<S, R> {
    type Target = ReaderState<S, R>;

    fn deref(&self) -> &ReaderState<S, R> {
        &self.0
    }
}

impl<S, R> Clone for Reader<S, R> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// What [`Reader`] shares.
///
/// The boards are served from memory; whatever is read from the database (past boards and
/// seasons, the log, proofs) is read through connections of its own, never the ones the boards
/// are kept current with, each read admitted by its cost ([`Reader::admit`]), and kept in
/// memory when it can never change ([`Kept`]).
pub struct ReaderState<S, R> {
    /// The in-memory board (`global`).
    pub live: Arc<LiveBoard>,
    /// Every board, `global` among them.
    pub boards: Arc<LiveBoards>,
    /// The event log, for the audit endpoints and past boards.
    pub log: Arc<S>,
    /// The read model's snapshots of the fold, for past boards.
    pub read_model: Arc<R>,
    /// Who may read the database, and how much.
    pub admission: Admission,
    /// What reads of the database left in memory.
    pub kept: Kept,
    /// Where the reads that cost a core run.
    pub apart: Apart,
    /// How long `min_position` may wait.
    pub read_your_writes_timeout: Duration,
}

impl<S, R> Reader<S, R> {
    /// Admits a read of the database for `client`: held until the read is done.
    pub(crate) fn admit(&self, client: std::net::IpAddr, cost: Cost) -> Result<Slot, QueryError> {
        self.admission.read_database(client, cost)
    }
}

/// A JSON body already encoded.
pub(crate) fn json(body: Bytes) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

/// `value` encoded as JSON.
pub(crate) fn encoded(value: &impl Serialize) -> Bytes {
    serde_json::to_vec(value).expect("answers always serialise").into()
}

/// How far beyond the log's head `min_position` may be and still be waited for: positions the
/// appends in flight may take while the head is read. Beyond, no write of the client's can
/// have been answered with it: `404 unknown_position` at once.
pub const IN_FLIGHT: u64 = 10_000;

impl<S: EventStore, R> Reader<S, R> {
    /// Waits for read-your-writes, then checks the board is loaded at all.
    pub(crate) async fn ready_for(&self, min_position: Option<u64>) -> Result<(), QueryError> {
        self.ready_on(&self.live, min_position).await
    }

    /// Waits for read-your-writes on `live`, then checks it is loaded at all.
    pub(crate) async fn ready_on(&self, live: &LiveBoard, min_position: Option<u64>) -> Result<(), QueryError> {
        if let Some(position) = min_position {
            if position > live.position().saturating_add(IN_FLIGHT) {
                // Far beyond the board: is it beyond the log too? (One row, read apart.)
                let head = self.log.head().await?;
                if position > head.saturating_add(IN_FLIGHT) {
                    return Err(QueryError::UnknownPosition(position, head));
                }
            }
            if !live.wait_for(position, self.read_your_writes_timeout).await {
                metrics::counter!("query_projection_lagging_total").increment(1);
                return Err(QueryError::ProjectionLagging(position));
            }
        }
        if !live.is_loaded() {
            return Err(QueryError::Loading);
        }
        Ok(())
    }
}

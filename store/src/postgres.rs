//! The event log on PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use events::RecordedEvent;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{FromRow, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{AppendOutcome, NewEvent, StoreError, StoredEvent};

/// The PostgreSQL schema: event log, read model, checkpoints.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations/postgres");

/// The `NOTIFY` channel on which every append announces the new head of the log.
pub const LOG_CHANNEL: &str = "scoreboard_log";

/// A pool for `url` that connects on first use, so a service can start before its database.
pub fn connect_lazy(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_lazy_with(options.application_name("scoreboard")))
}

#[derive(FromRow)]
struct EventRow {
    position: i64,
    event_id: Uuid,
    event_type: String,
    event_version: i32,
    payload: String,
    recorded_at: OffsetDateTime,
}

impl From<EventRow> for StoredEvent {
    fn from(row: EventRow) -> Self {
        Self {
            position: position_from_db(row.position),
            event_id: row.event_id,
            event_type: row.event_type,
            event_version: row.event_version,
            payload: row.payload,
            recorded_at: row.recorded_at,
        }
    }
}

fn position_from_db(position: i64) -> u64 {
    u64::try_from(position).expect("positions are positive (CHECK constraint)")
}

fn position_to_db(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

const SELECT_EVENT: &str =
    "SELECT position, event_id, event_type, event_version, payload::text AS payload, recorded_at FROM events";

/// The event log in PostgreSQL: appends in batches with dense positions, reads by position.
#[derive(Clone, Debug)]
pub struct PgEventLog {
    pool: PgPool,
}

impl PgEventLog {
    /// The log in the database behind `pool` (migrated with [`MIGRATOR`]).
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The pool, for callers that need a connection of their own (listeners, locks).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Appends `batch` in one transaction and says, per event and in order, what became of it.
    ///
    /// Positions are taken under the lock on `event_log_head`, held until commit, so batches
    /// from any number of processes commit in position order and leave no gaps. Whether an
    /// action id was seen before is decided by the unique constraint on `action_id`
    /// (`ON CONFLICT DO NOTHING`); when some rows of the batch collide, the attempt is rolled
    /// back and repeated without them, so that the rows appended still get dense positions.
    /// Within the batch, the first event of an action id is the candidate and later ones are
    /// answered with it.
    pub async fn append(&self, batch: &[NewEvent]) -> Result<Vec<AppendOutcome>, StoreError> {
        let mut first_index: HashMap<Uuid, usize> = HashMap::new();
        let candidates: Vec<usize> = (0..batch.len())
            .filter(|&i| match batch[i].event.action_id() {
                Some(action_id) => *first_index.entry(action_id).or_insert(i) == i,
                None => true,
            })
            .collect();

        let mut recorded_before: HashSet<Uuid> = HashSet::new();
        loop {
            let fresh: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&i| batch[i].event.action_id().is_none_or(|a| !recorded_before.contains(&a)))
                .collect();
            let mut tx = self.pool.begin().await?;
            let head = if fresh.is_empty() { 0 } else { lock_head(&mut tx).await? };
            let inserted = insert_at(&mut tx, head, fresh.iter().map(|&i| &batch[i])).await?;
            if inserted.len() < fresh.len() {
                tx.rollback().await?;
                let inserted: HashSet<Uuid> = inserted.into_iter().flatten().collect();
                recorded_before
                    .extend(fresh.iter().filter_map(|&i| batch[i].event.action_id()).filter(|a| !inserted.contains(a)));
                continue;
            }
            if !fresh.is_empty() {
                advance_head(&mut tx, head + fresh.len() as u64).await?;
            }
            let originals = originals_of(&mut tx, &recorded_before).await?;
            tx.commit().await?;
            return Ok(outcomes(batch, head, &fresh, &first_index, &originals));
        }
    }

    /// The position of the last committed event (0 for an empty log).
    pub async fn head(&self) -> Result<u64, StoreError> {
        let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head").fetch_one(&self.pool).await?;
        Ok(position_from_db(head))
    }

    /// Up to `limit` events after position `after`, in order.
    pub async fn read_after(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_EVENT} WHERE position > $1 ORDER BY position LIMIT $2"
        )))
        .bind(position_to_db(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// Up to `limit` of one player's events after position `after`, in order.
    pub async fn read_player(&self, player_id: &str, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{SELECT_EVENT} WHERE player_id = $1 AND position > $2 ORDER BY position LIMIT $3"
        )))
        .bind(player_id)
        .bind(position_to_db(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Takes the log's append lock (held until the transaction ends) and returns the head.
async fn lock_head(tx: &mut Transaction<'_, Postgres>) -> Result<u64, StoreError> {
    let head: i64 = sqlx::query_scalar("SELECT position FROM event_log_head FOR UPDATE").fetch_one(&mut **tx).await?;
    Ok(position_from_db(head))
}

/// Inserts `events` at positions `head + 1 …`, skipping action ids already recorded; returns
/// the action ids of the rows inserted (`None` for events that carry none).
async fn insert_at<'a>(
    tx: &mut Transaction<'_, Postgres>,
    head: u64,
    events: impl ExactSizeIterator<Item = &'a NewEvent>,
) -> Result<Vec<Option<Uuid>>, StoreError> {
    let len = events.len();
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut positions = Vec::with_capacity(len);
    let mut event_ids = Vec::with_capacity(len);
    let mut action_ids = Vec::with_capacity(len);
    let mut types = Vec::with_capacity(len);
    let mut versions = Vec::with_capacity(len);
    let mut players = Vec::with_capacity(len);
    let mut payloads = Vec::with_capacity(len);
    let mut digests = Vec::with_capacity(len);
    let mut recorded = Vec::with_capacity(len);
    for (offset, new) in (1..).zip(events) {
        positions.push(position_to_db(head + offset));
        event_ids.push(new.event.event_id());
        action_ids.push(new.event.action_id());
        types.push(new.event.event_type());
        versions.push(new.event.version());
        players.push(new.event.player_id().as_str());
        payloads.push(new.event.encode());
        digests.push(new.claims_digest.map(|d| d.to_vec()));
        recorded.push(new.event.recorded_at());
    }
    Ok(sqlx::query_scalar(
        "INSERT INTO events (position, event_id, action_id, event_type, event_version, player_id, payload, \
                             claims_digest, recorded_at) \
         SELECT position, event_id, action_id, event_type, event_version, player_id, payload::json, \
                claims_digest, recorded_at \
         FROM unnest($1::bigint[], $2::uuid[], $3::uuid[], $4::text[], $5::int[], $6::text[], $7::text[], \
                     $8::bytea[], $9::timestamptz[]) \
              AS input(position, event_id, action_id, event_type, event_version, player_id, payload, \
                       claims_digest, recorded_at) \
         ON CONFLICT (action_id) DO NOTHING \
         RETURNING action_id",
    )
    .bind(positions)
    .bind(event_ids)
    .bind(action_ids)
    .bind(types)
    .bind(versions)
    .bind(players)
    .bind(payloads)
    .bind(digests)
    .bind(recorded)
    .fetch_all(&mut **tx)
    .await?)
}

/// Moves the head and wakes every listener of [`LOG_CHANNEL`] (delivered at commit).
async fn advance_head(tx: &mut Transaction<'_, Postgres>, head: u64) -> Result<(), StoreError> {
    sqlx::query(
        "WITH advanced AS (UPDATE event_log_head SET position = $1) \
         SELECT pg_notify($2, $1::text)",
    )
    .bind(position_to_db(head))
    .bind(LOG_CHANNEL)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(FromRow)]
struct OriginalRow {
    action_id: Uuid,
    claims_digest: Option<Vec<u8>>,
    #[sqlx(flatten)]
    event: EventRow,
}

/// The event first recorded for each action id, with its claims digest.
type Originals = HashMap<Uuid, (RecordedEvent, Option<Vec<u8>>)>;

async fn originals_of(tx: &mut Transaction<'_, Postgres>, action_ids: &HashSet<Uuid>) -> Result<Originals, StoreError> {
    if action_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = action_ids.iter().copied().collect();
    let rows: Vec<OriginalRow> = sqlx::query_as(
        "SELECT action_id, claims_digest, position, event_id, event_type, event_version, payload::text AS payload, \
                recorded_at \
         FROM events WHERE action_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter()
        .map(|row| {
            let stored = StoredEvent::from(row.event);
            let recorded =
                stored.decode().map_err(|source| StoreError::Corrupt { position: stored.position, source })?;
            Ok((row.action_id, (recorded, row.claims_digest)))
        })
        .collect()
}

fn outcomes(
    batch: &[NewEvent],
    head: u64,
    fresh: &[usize],
    first_index: &HashMap<Uuid, usize>,
    originals: &Originals,
) -> Vec<AppendOutcome> {
    let appended_at: HashMap<usize, u64> = fresh.iter().zip(head + 1..).map(|(&i, position)| (i, position)).collect();
    let original_of = |i: usize| -> (RecordedEvent, Option<Vec<u8>>) {
        let action_id = batch[i].event.action_id().expect("only events with an action id can repeat one");
        let first = first_index[&action_id];
        match appended_at.get(&first) {
            Some(&position) => (
                RecordedEvent { position, event: batch[first].event.clone() },
                batch[first].claims_digest.map(|d| d.to_vec()),
            ),
            None => originals[&action_id].clone(),
        }
    };
    (0..batch.len())
        .map(|i| match appended_at.get(&i) {
            Some(&position) => AppendOutcome::Appended(RecordedEvent { position, event: batch[i].event.clone() }),
            None => {
                let (original, digest) = original_of(i);
                let same_claims = digest.is_some() && digest == batch[i].claims_digest.map(|d| d.to_vec());
                AppendOutcome::AlreadyRecorded { original, same_claims }
            }
        })
        .collect()
}

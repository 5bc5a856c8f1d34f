//! A log written straight through the event store's own append (Merkle tree included), for the
//! benchmarks that need a large log fast: 1 000 events a transaction.

use anyhow::Context as _;
use events::{Event, Points, ScoreAwarded};
use store::{EventStore as _, NewEvent, PgEventLog};
use uuid::Uuid;

/// Event `position` (from 1) of such a log: an award to `player-<position mod players>` of 10 to 70
/// points, recorded `at`.
fn award(position: u64, players: u64, at: time::OffsetDateTime) -> NewEvent {
    NewEvent {
        event: Event::ScoreAwarded(ScoreAwarded {
            event_id: Uuid::now_v7(),
            action_id: Uuid::new_v4(),
            player_id: format!("player-{}", position % players).parse().expect("a player id"),
            display_name: None,
            action: "complete_task".parse().expect("an action"),
            points: Points::new(10 + (position % 7) as i64 * 10).expect("points"),
            token_issued_at: at.unix_timestamp(),
            key_id: "bench".parse().expect("a key id"),
            recorded_at: at,
        }),
        claims_digest: Some([7; 32]),
    }
}

/// Migrates the database at `database_url` and appends awards by `players` players, all
/// recorded now, until the log holds `events` (a log written before is reused). Returns a pool
/// on it.
pub async fn write(database_url: &str, events: u64, players: u64) -> anyhow::Result<sqlx::PgPool> {
    let pool = store::postgres::connect_lazy(database_url, 4, std::time::Duration::from_secs(30))?;
    store::postgres::MIGRATOR.run(&pool).await.context("migrating")?;
    let log = PgEventLog::new(pool.clone());
    let at = events::event::stored_precision(time::OffsetDateTime::now_utc());
    let mut next = log.head().await? + 1;
    while next <= events {
        let batch: Vec<NewEvent> = (next..(next + 1000).min(events + 1)).map(|p| award(p, players, at)).collect();
        next += batch.len() as u64;
        log.append(&batch).await?;
    }
    Ok(pool)
}

//! The leaderboard read model in PostgreSQL, with its checkpoint.

use events::leaderboard::{self, Board, Standing};
use events::{DisplayName, PlayerId, RecordedEvent};
use sqlx::{FromRow, PgPool};

use crate::StoreError;

const PROJECTION: &str = "leaderboard";

/// What one call of [`PgLeaderboard::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The checkpoint before.
    pub from: u64,
    /// The checkpoint after (equal to `from` when nothing new was applied).
    pub to: u64,
    /// The new standings of every player the applied events touched.
    pub standings: Vec<Standing>,
    /// Events at or below the checkpoint, skipped (redeliveries, duplicates).
    pub skipped: usize,
    /// Set when an event after `to + 1` arrived without `to + 1`: the events from there on
    /// were not applied and must be delivered again in order.
    pub missing: Option<u64>,
}

#[derive(FromRow)]
struct StandingRow {
    player_id: String,
    display_name: Option<String>,
    score: i64,
    reached_at: i64,
}

impl TryFrom<StandingRow> for Standing {
    type Error = StoreError;

    fn try_from(row: StandingRow) -> Result<Self, StoreError> {
        let invalid = || StoreError::InvalidRow(format!("leaderboard row for {:?}", row.player_id));
        Ok(Standing {
            player_id: PlayerId::parse(row.player_id.as_str()).map_err(|_| invalid())?,
            name: row.display_name.as_deref().map(DisplayName::parse).transpose().map_err(|_| invalid())?,
            score: u64::try_from(row.score).map_err(|_| invalid())?,
            reached_at: u64::try_from(row.reached_at).map_err(|_| invalid())?,
        })
    }
}

fn to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The leaderboard read model: one row per player, plus the checkpoint of the log position
/// folded so far.
#[derive(Clone, Debug)]
pub struct PgLeaderboard {
    pool: PgPool,
}

impl PgLeaderboard {
    /// The read model in the database behind `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The last log position folded into the read model.
    pub async fn checkpoint(&self) -> Result<u64, StoreError> {
        let position: i64 = sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
            .bind(PROJECTION)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(position).unwrap_or(0))
    }

    /// Folds `events` into the read model, exactly once: in one transaction, under the lock of
    /// the checkpoint row, it skips what is at or below the checkpoint, applies the contiguous
    /// run that follows it, and moves the checkpoint to the end of that run.
    pub async fn apply(&self, events: &[RecordedEvent]) -> Result<Applied, StoreError> {
        let mut events: Vec<&RecordedEvent> = events.iter().collect();
        events.sort_by_key(|e| e.position);
        events.dedup_by_key(|e| e.position);

        let mut tx = self.pool.begin().await?;
        let from: i64 =
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1 FOR UPDATE")
                .bind(PROJECTION)
                .fetch_one(&mut *tx)
                .await?;
        let from = u64::try_from(from).unwrap_or(0);
        let skipped = events.iter().take_while(|e| e.position <= from).count();
        let run: Vec<&RecordedEvent> = events[skipped..]
            .iter()
            .zip(from + 1..)
            .take_while(|(event, expected)| event.position == *expected)
            .map(|(event, _)| *event)
            .collect();
        let to = from + run.len() as u64;
        let missing = (skipped + run.len() < events.len()).then_some(to + 1);
        if run.is_empty() {
            tx.commit().await?;
            return Ok(Applied { from, to, standings: Vec::new(), skipped, missing });
        }

        let deltas = leaderboard::fold(run.iter().copied());
        let rows: Vec<StandingRow> = sqlx::query_as(
            "INSERT INTO leaderboard (player_id, display_name, score, reached_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) \
             ON CONFLICT (player_id) DO UPDATE SET \
                 score = leaderboard.score + EXCLUDED.score, \
                 reached_at = GREATEST(leaderboard.reached_at, EXCLUDED.reached_at), \
                 display_name = COALESCE(EXCLUDED.display_name, leaderboard.display_name) \
             RETURNING player_id, display_name, score, reached_at",
        )
        .bind(deltas.iter().map(|d| d.player_id.as_str()).collect::<Vec<_>>())
        .bind(deltas.iter().map(|d| d.name.as_ref().map(DisplayName::as_str)).collect::<Vec<_>>())
        .bind(deltas.iter().map(|d| to_db(d.score)).collect::<Vec<_>>())
        .bind(deltas.iter().map(|d| to_db(d.reached_at)).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("UPDATE projection_checkpoints SET position = $2, updated_at = now() WHERE projection = $1")
            .bind(PROJECTION)
            .bind(to_db(to))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let standings = rows.into_iter().map(Standing::try_from).collect::<Result<_, _>>()?;
        Ok(Applied { from, to, standings, skipped, missing })
    }

    /// The whole board as of its checkpoint, read from one consistent snapshot.
    pub async fn load(&self) -> Result<Board, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let position: i64 = sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE projection = $1")
            .bind(PROJECTION)
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<StandingRow> =
            sqlx::query_as("SELECT player_id, display_name, score, reached_at FROM leaderboard")
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        let standings = rows.into_iter().map(Standing::try_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Board::from_standings(u64::try_from(position).unwrap_or(0), standings))
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

//! Reaching PostgreSQL: the database is created if it does not exist and migrations are
//! applied, with retries, so that services start in any order and before their database.

use std::time::Duration;

use sqlx::migrate::MigrateDatabase as _;
use sqlx::{Connection as _, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::DatabaseConfig;

/// A pool on the configured database, migrated to the current schema.
///
/// Retries with backoff until PostgreSQL answers; returns `Ok(None)` if `shutdown` fires
/// first, `Err` only for a malformed URL. Migrations are safe to run from several processes
/// at once: sqlx serialises them with an advisory lock.
pub async fn connect_and_migrate(
    config: &DatabaseConfig,
    shutdown: &CancellationToken,
) -> Result<Option<PgPool>, sqlx::Error> {
    let pool = config.pool.connect_lazy(&config.database_url)?;
    let mut backoff = Backoff::default();
    loop {
        match prepare(&config.database_url, &pool).await {
            Ok(()) => return Ok(Some(pool)),
            Err(error) => {
                tracing::warn!(error.message = %error, retry_in = ?backoff.delay(), "database not ready; retrying");
            }
        }
        if !backoff.wait(shutdown).await {
            return Ok(None);
        }
    }
}

async fn prepare(url: &str, pool: &PgPool) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if !sqlx::Postgres::database_exists(url).await? {
        tracing::info!("creating the database");
        // Another service may create it at the same moment; the next check settles it.
        if let Err(error) = sqlx::Postgres::create_database(url).await {
            tracing::debug!(error.message = %error, "creating the database failed");
        }
    }
    store::postgres::MIGRATOR.run(pool).await?;
    Ok(())
}

/// Waits until this process holds the session advisory lock `key` on a connection of its own,
/// and returns that connection: the process is the leader for as long as it keeps it open.
/// Used to run exactly one relay and one projector per database, with standbys.
///
/// Returns `Ok(None)` if `shutdown` fires first.
pub async fn elect_leader(
    pool: &PgPool,
    key: i64,
    shutdown: &CancellationToken,
) -> Result<Option<PgConnection>, sqlx::Error> {
    let mut connection = PgConnection::connect_with(&pool.connect_options()).await?;
    loop {
        let elected: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut connection).await?;
        if elected {
            return Ok(Some(connection));
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

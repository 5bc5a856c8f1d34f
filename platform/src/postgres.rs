//! Reaching PostgreSQL: a lazily connecting pool, and migrations applied with retries so that
//! services start in any order.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::config::DatabaseConfig;

/// A pool for the configured database; no connection is opened yet.
pub fn pool(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    store::postgres::connect_lazy(&config.database_url, config.database_max_connections)
}

/// Applies pending migrations, retrying with backoff until the database answers.
///
/// Returns `false` if `shutdown` fired first. Migrations are safe to run from several
/// processes at once: sqlx serialises them with an advisory lock.
pub async fn migrate_when_reachable(pool: &PgPool, shutdown: &CancellationToken) -> bool {
    let mut delay = Duration::from_millis(100);
    loop {
        match store::postgres::MIGRATOR.run(pool).await {
            Ok(()) => return true,
            Err(error) => {
                tracing::warn!(error.message = %error, retry_in = ?delay, "database not ready; retrying");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return false,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

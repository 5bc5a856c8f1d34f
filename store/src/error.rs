use events::DecodeError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or dropped the connection: the operation did not
    /// happen, or its outcome is unknown and a retry is safe.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database error.
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// The database file can be read but not written (its permissions, a read-only mount).
    #[error("the database {} cannot be written: check the permissions of the file and of its folder", .path.display())]
    NotWritable {
        /// The file.
        path: std::path::PathBuf,
        /// What SQLite said.
        #[source]
        source: sqlx::Error,
    },
    /// A stored row holds a value the domain refuses.
    #[error("invalid stored row: {0}")]
    InvalidRow(String),
    /// A stored event could not be read back.
    #[error("stored event at position {position} cannot be decoded")]
    Corrupt {
        /// Where in the log.
        position: u64,
        /// Why.
        #[source]
        source: DecodeError,
    },
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_transient(&error) { Self::Unavailable(error) } else { Self::Database(error) }
    }
}

impl StoreError {
    /// `true` when retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Connection-level failures; the SQLSTATEs PostgreSQL uses when it is shutting down, starting
/// up, out of resources, breaking a deadlock or ending a lock wait or an idle transaction;
/// SQLite's "busy" and "locked" result codes.
fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else { return false };
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                return sqlite_busy_or_locked(&code);
            }
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "40001"
                || code == "40P01"
                // lock_not_available (lock_timeout), idle_in_transaction_session_timeout
                || code == "55P03"
                || code == "25P03"
        }
        _ => false,
    }
}

/// SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes (the low byte is the
/// primary code).
fn sqlite_busy_or_locked(code: &str) -> bool {
    code.parse::<u32>().is_ok_and(|code| matches!(code & 0xFF, 5 | 6))
}

#[cfg(test)]
mod tests {
    use super::sqlite_busy_or_locked;

    #[test]
    fn sqlite_busy_and_locked_codes_are_transient() {
        for code in ["5", "6", "261", "517", "773", "262"] {
            assert!(sqlite_busy_or_locked(code), "{code}");
        }
        for code in ["19", "2067", "23505", "1"] {
            assert!(!sqlite_busy_or_locked(code), "{code}");
        }
    }
}

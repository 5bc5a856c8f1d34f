//! Who may read, and how much: a token bucket per client address for every read (a read of the
//! database costs more of it than one served from memory), and caps per client address and in
//! total on live streams and on reads of the database in flight, so that one client (or a
//! reconnect storm, or many clients asking for past seasons) cannot take what the others need.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use platform::client::ClientIp;
use platform::limits::{Full, Limiter, RateLimit, Slot, Slots, client_key};
use tokio_util::sync::CancellationToken;

use crate::error::QueryError;

/// The read-side admission rules of one query service; cheap to clone (one shared pointer:
/// the middleware clones it for every request).
#[derive(Clone)]
pub struct Admission(Arc<Rules>);

struct Rules {
    reads: Limiter<IpAddr>,
    streams: Arc<Slots>,
    database_reads: Arc<Slots>,
}

/// How much of a client's read budget a read of the database takes, in reads served from memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// A row or a few (a checkpoint, a tile, a proof's nodes).
    Light,
    /// A page of the log, or a whole board to load or replay (a past season, a past position).
    Heavy,
}

impl Cost {
    fn tokens(self) -> u32 {
        match self {
            Self::Light => 2,
            Self::Heavy => 10,
        }
    }
}

impl Admission {
    /// `reads` per client address; at most `streams_max` live streams, `streams_per_address_max`
    /// of them from one address; at most `database_reads_max` reads of the database in flight,
    /// half of them (at least one) from one address.
    pub fn new(
        reads: RateLimit,
        streams_max: usize,
        streams_per_address_max: usize,
        database_reads_max: usize,
    ) -> Self {
        Self(Arc::new(Rules {
            reads: Limiter::new(reads),
            streams: Slots::new(streams_max, streams_per_address_max),
            database_reads: Slots::new(database_reads_max, (database_reads_max / 2).max(1)),
        }))
    }

    /// A slot for one more live stream from `client`, or why there is none.
    pub fn open_stream(&self, client: IpAddr) -> Result<Slot, QueryError> {
        self.0.streams.take(client).map_err(|full| {
            metrics::counter!("live_connections_refused_total", "reason" => full.label()).increment(1);
            QueryError::TooManyStreams(match full {
                Full::Total => "too many live streams on this server; retry later",
                Full::PerAddress => "too many live streams from this address; close one or retry later",
            })
        })
    }

    /// Admits a read of the database from `client` that costs `cost` (the request itself was
    /// charged one token already): a slot among the reads of the database in flight, held
    /// until dropped; `Err` when the client's budget is used or no slot is free.
    pub fn read_database(&self, client: IpAddr, cost: Cost) -> Result<Slot, QueryError> {
        if let Err(wait) = self.0.reads.check_n(&client_key(client), cost.tokens() - 1) {
            metrics::counter!("query_rate_limited_total").increment(1);
            return Err(QueryError::RateLimited(wait));
        }
        self.0.database_reads.take(client).map_err(|full| {
            metrics::counter!("query_database_reads_refused_total", "reason" => full.label()).increment(1);
            QueryError::Busy(match full {
                Full::Total => "too many reads of the log and of past boards in flight; retry later",
                Full::PerAddress => {
                    "too many reads of the log and of past boards in flight from this address; retry later"
                }
            })
        })
    }

    /// Forgets the read buckets of clients that are idle, every minute until `shutdown`.
    pub async fn forget_idle_clients(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(60)) => self.0.reads.forget_idle(),
            }
        }
    }
}

/// Middleware: answers `429 rate_limited` with `Retry-After` once the client's address used its
/// read budget.
pub async fn limit_reads(
    State(admission): State<Admission>,
    ClientIp(client): ClientIp,
    request: Request,
    next: Next,
) -> Response {
    match admission.0.reads.check(&client_key(client)) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            metrics::counter!("query_rate_limited_total").increment(1);
            QueryError::RateLimited(wait).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_capped_per_address_and_in_total() {
        let admission = Admission::new(RateLimit::Off, 3, 2, 1);
        let (a, b, c) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap(), "192.0.2.3".parse().unwrap());
        let first = admission.open_stream(a).unwrap();
        let _second = admission.open_stream(a).unwrap();
        assert!(admission.open_stream(a).is_err(), "per address");
        let _third = admission.open_stream(b).unwrap();
        assert!(admission.open_stream(c).is_err(), "in total");
        drop(first);
        assert!(admission.open_stream(c).is_ok(), "a closed stream frees its slot");
    }

    #[test]
    fn database_reads_in_flight_are_capped_and_one_address_gets_half() {
        let admission = Admission::new(RateLimit::Off, 1, 1, 4);
        let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let held: Vec<Slot> = (0..2).map(|_| admission.read_database(a, Cost::Heavy).unwrap()).collect();
        assert!(matches!(admission.read_database(a, Cost::Light), Err(QueryError::Busy(_))), "half per address");
        let others: Vec<Slot> = (0..2).map(|_| admission.read_database(b, Cost::Light).unwrap()).collect();
        let c = "192.0.2.3".parse().unwrap();
        assert!(matches!(admission.read_database(c, Cost::Light), Err(QueryError::Busy(_))), "in total");
        drop(held);
        assert!(admission.read_database(c, Cost::Light).is_ok(), "a finished read frees its slot");
        drop(others);
    }

    #[test]
    fn a_heavy_read_costs_ten_of_a_clients_reads() {
        let admission = Admission::new("20/m".parse().unwrap(), 1, 1, 8);
        let a = "192.0.2.1".parse().unwrap();
        // The middleware charged each request one token; a heavy read takes nine more.
        assert!(admission.0.reads.check(&a).is_ok() && admission.read_database(a, Cost::Heavy).is_ok());
        assert!(admission.0.reads.check(&a).is_ok() && admission.read_database(a, Cost::Heavy).is_ok());
        assert!(admission.0.reads.check(&a).is_err(), "20 tokens taken by two heavy reads");
    }
}

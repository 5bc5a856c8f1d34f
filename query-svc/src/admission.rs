//! Who may read, and how much: a token bucket per client address for every read, and caps on
//! live streams per client address and in total, so that one client (or a reconnect storm)
//! cannot take what the others need.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use platform::client::ClientIp;
use platform::limits::{Limiter, RateLimit, client_key};
use tokio_util::sync::CancellationToken;

use crate::api::QueryError;

/// The read-side admission rules of one query service.
#[derive(Clone)]
pub struct Admission {
    reads: Limiter<IpAddr>,
    streams: Arc<StreamSlots>,
}

#[derive(Default)]
struct StreamSlots {
    total_max: usize,
    per_address_max: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One open live stream, counted until it is dropped.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    address: IpAddr,
}

impl Admission {
    /// `reads` per client address; at most `streams_max` live streams, `streams_per_address_max`
    /// of them from one address.
    pub fn new(reads: RateLimit, streams_max: usize, streams_per_address_max: usize) -> Self {
        Self {
            reads: Limiter::new(reads),
            streams: Arc::new(StreamSlots {
                total_max: streams_max,
                per_address_max: streams_per_address_max,
                open: Mutex::default(),
            }),
        }
    }

    /// A slot for one more live stream from `client`, or why there is none.
    pub fn open_stream(&self, client: IpAddr) -> Result<StreamSlot, QueryError> {
        let address = client_key(client);
        let slots = &self.streams;
        let mut open = slots.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_address) = &mut *open;
        let from_address = per_address.entry(address).or_default();
        let refusal = if *total >= slots.total_max {
            Some(("total", "too many live streams on this server; retry later"))
        } else if *from_address >= slots.per_address_max {
            Some(("per_address", "too many live streams from this address; close one or retry later"))
        } else {
            None
        };
        if let Some((reason, detail)) = refusal {
            if *from_address == 0 {
                per_address.remove(&address);
            }
            metrics::counter!("live_connections_refused_total", "reason" => reason).increment(1);
            return Err(QueryError::TooManyStreams(detail));
        }
        *from_address += 1;
        *total += 1;
        Ok(StreamSlot { slots: slots.clone(), address })
    }

    /// Forgets the read buckets of clients that are idle, every minute until `shutdown`.
    pub async fn forget_idle_clients(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(60)) => self.reads.forget_idle(),
            }
        }
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_address) = &mut *open;
        *total -= 1;
        if let Some(count) = per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&self.address);
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
    match admission.reads.check(&client_key(client)) {
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
        let admission = Admission::new(RateLimit::Off, 3, 2);
        let (a, b, c) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap(), "192.0.2.3".parse().unwrap());
        let first = admission.open_stream(a).unwrap();
        let _second = admission.open_stream(a).unwrap();
        assert!(admission.open_stream(a).is_err(), "per address");
        let _third = admission.open_stream(b).unwrap();
        assert!(admission.open_stream(c).is_err(), "in total");
        drop(first);
        assert!(admission.open_stream(c).is_ok(), "a closed stream frees its slot");
    }
}

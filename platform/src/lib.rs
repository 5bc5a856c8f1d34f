//! What every Scoreboard process shares, a module per concern: configuration (`config`), the
//! HTTP assembly (`http`) and serving (`connections`, `long_lived`), probes (`probes`) and
//! metrics (`metrics`), the OpenAPI description (`openapi`), RFC 9457 problem documents
//! (`problem`), limits and client addresses, reaching PostgreSQL (`postgres`) and NATS with the
//! JetStream stream that copies the event log (`nats`), tracing and shutdown on SIGTERM.

pub mod backoff;
pub mod client;
pub mod config;
pub mod connections;
pub mod http;
pub mod limits;
pub mod long_lived;
pub mod metrics;
pub mod nats;
pub mod openapi;
pub mod params;
pub mod postgres;
pub mod probes;
pub mod problem;
pub mod shutdown;
pub mod telemetry;

pub use connections::serve;
pub use problem::Problem;

/// Declares the process's allocator, jemalloc: each binary's `main.rs` says
/// `platform::jemalloc!();` (a library, and every test that links one, keeps the system's).
/// Requests allocate and free many small blocks on every worker thread; glibc's allocator spent
/// a third of query-svc's user time on them, contending on its arena locks. jemalloc serves
/// about 10 % more reads than glibc with the same resident memory at a million players, and a
/// steadier one than mimalloc's (BENCHMARKS.md).
#[macro_export]
macro_rules! jemalloc {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::Jemalloc = $crate::Jemalloc;
    };
}

#[doc(hidden)]
pub use tikv_jemallocator::Jemalloc;

/// Has jemalloc return the memory a service frees to the system from a thread of its own,
/// within seconds (its default decay, ten seconds), rather than only when the service next
/// allocates or frees: a query service that loads its boards (millions of rows read, turned
/// into standings and dropped) and then serves from memory would otherwise keep the pages
/// of that load resident while idle — about 50 MB beside three boards of a million players
/// (BENCHMARKS.md). Each service's `main` calls it first; it is harmless where jemalloc is
/// not the allocator.
pub fn return_freed_memory() {
    if let Err(error) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::debug!(error.message = %error, "jemalloc's background thread did not start");
    }
}

//! What every Scoreboard process shares: tracing setup, shutdown on SIGTERM, RFC 9457 problem
//! documents, the `/healthz` `/readyz` `/metrics` endpoints, reaching PostgreSQL and NATS with
//! retries, and the definition of the JetStream stream that copies the event log.

pub mod config;
pub mod jetstream;
pub mod operations;
pub mod postgres;
pub mod problem;
pub mod shutdown;
pub mod telemetry;

pub use problem::Problem;

//! The projector against real PostgreSQL and real NATS JetStream, with faults injected.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod exactly_once;
mod openapi;
mod results;
mod support;

//! command-svc against real PostgreSQL and real NATS JetStream.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod api;
mod concurrency;
mod faults;
mod interop;
mod openapi;
mod relay;
mod rotation;
mod secrets;
mod support;

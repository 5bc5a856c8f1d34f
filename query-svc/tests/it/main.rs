//! query-svc with the whole system behind it: real PostgreSQL, real NATS JetStream, real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod floods;
mod forgery;
mod nats_accounts;
mod openapi;
mod reads;
mod streams;
mod support;

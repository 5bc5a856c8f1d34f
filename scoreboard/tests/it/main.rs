//! The all-in-one binary: embedded SQLite default, demo mode, distributed mode, and the website
//! in a real browser.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod audit;
mod boards;
mod browser;
mod cluster;
mod cold;
mod demo;
mod distributed;
mod embedded;
mod metrics;
mod moderation;
mod openapi;
mod past;
mod rebuild;
mod support;

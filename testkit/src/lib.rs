//! Test support for Scoreboard's integration tests, which talk to real PostgreSQL and real
//! NATS JetStream: a fresh database and a fresh stream per test (both removed afterwards),
//! private nats-server processes that a test can kill, a TCP proxy that a test can cut to make
//! a dependency unreachable, and signing keys with a token minter. Everything is re-exported
//! at the root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod db;
mod http;
mod nats;
mod ports;
mod process;
mod proxy;
mod tokens;

pub use db::*;
pub use http::*;
pub use nats::*;
pub use ports::*;
pub use process::*;
pub use proxy::*;
pub use tokens::*;

/// Fails unless the file at `path` (relative to the workspace) holds exactly `current`, the
/// text the code generates now; with `SCOREBOARD_UPDATE_DOCS=1` it writes `current` there
/// instead, to regenerate what is checked in.
pub fn assert_checked_in(path: &str, current: &str) {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    if std::env::var_os("SCOREBOARD_UPDATE_DOCS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, current).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        checked_in == current,
        "{path} differs from what the code generates; regenerate it with \
         `SCOREBOARD_UPDATE_DOCS=1 cargo test --workspace openapi` and review the change"
    );
}

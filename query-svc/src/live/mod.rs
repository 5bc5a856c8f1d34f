//! The boards a query service serves, held in memory: each board ([`board`]), every board and
//! its seasons ([`boards`]), and the task that keeps them current from the read model
//! ([`keeper`]).

pub mod board;
pub mod boards;
pub mod keeper;

pub use board::{Body, Entry, LeaderboardView, LiveBoard, MAX_LIMIT, Snapshot};
pub(crate) use boards::read_season;
pub use boards::{Clock, LiveBoards, SetClock, SystemClock};
pub use keeper::{ChangeFeed, keep_current};

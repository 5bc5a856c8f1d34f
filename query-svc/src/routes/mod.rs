//! The read endpoints, by what they serve; each depends on the state, the errors and the
//! parameters, never on another's handlers.

pub mod boards;
pub mod history;
pub mod leaderboard;
pub mod proofs;
pub mod results;
pub mod streams;

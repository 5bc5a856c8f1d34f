//! Scoreboard's domain, free of I/O: what an event is, how an action token is minted and
//! verified, which actions are worth how many points, and how events fold into a ranked board.
//!
//! Every service depends on this crate; nothing here opens a socket or speaks SQL, so all of it
//! is tested with plain unit tests.

pub mod anomaly;
pub mod award;
pub mod boards;
pub mod catalog;
pub mod event;
pub mod fold;
pub mod ids;
pub mod keys;
pub mod leaderboard;
pub mod results;
pub mod sketch;
pub mod token;
pub mod usage;

pub use award::{AwardError, award};
pub use catalog::{ActionCatalog, CatalogError};
pub use event::{DecodeError, Event, Moderated, RecordedEvent, RevokedAward, ScoreAwarded, ScoreRevoked};
pub use ids::{ActionName, BoardId, DisplayName, IdError, KeyId, Operator, PlayerId, Points, Reason};
pub use keys::{KeyError, KeySecret, KeySet};
pub use leaderboard::{Behind, Board, BoardChange, Ranked, Standing};
pub use token::{ActionClaims, TokenError, TokenPolicy, VerifiedToken, mint, mint_for};

//! The test signing key and tokens signed with it.

use events::{ActionClaims, KeyId, KeySecret, KeySet};
use uuid::Uuid;

/// The key id tests sign with.
pub const TEST_KID: &str = "test";
/// The secret tests sign with.
pub const TEST_SECRET: &str = "testkit-secret-key-of-at-least-32-bytes";

/// `ACTION_KEYS` for tests.
pub fn action_keys() -> String {
    format!("{TEST_KID}={TEST_SECRET}")
}

/// The test key set.
pub fn keys() -> KeySet {
    KeySet::parse(&action_keys()).unwrap()
}

/// Claims for `player` completing `action`, issued now, valid five minutes, fresh `jti`.
pub fn claims(player: &str, action: &str) -> ActionClaims {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    ActionClaims {
        jti: Uuid::now_v7(),
        sub: player.parse().unwrap(),
        act: action.parse().unwrap(),
        name: None,
        score: None,
        iat: now,
        exp: now + 300,
    }
}

/// A `ScoreAwarded` event as the command side would have recorded it at `at`: `player` completed
/// `action` for `points`, with the test key, a fresh event and action id and no name.
pub fn award(player: &str, action: &str, points: i64, at: time::OffsetDateTime) -> events::Event {
    events::Event::ScoreAwarded(events::ScoreAwarded {
        event_id: Uuid::now_v7(),
        action_id: Uuid::new_v4(),
        player_id: player.parse().unwrap(),
        display_name: None,
        action: action.parse().unwrap(),
        points: events::Points::new(points).unwrap(),
        token_issued_at: at.unix_timestamp(),
        key_id: TEST_KID.parse().unwrap(),
        recorded_at: at,
    })
}

/// `claims` signed with the test key.
pub fn sign(claims: &ActionClaims) -> String {
    events::mint(&KeyId::parse(TEST_KID).unwrap(), &KeySecret::new(TEST_SECRET.as_bytes()).unwrap(), claims)
}

/// A signed token for `player` completing `action`.
pub fn token(player: &str, action: &str) -> String {
    sign(&claims(player, action))
}

//! The command side's decision: a verified action token becomes a `ScoreAwarded` event.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::catalog::ActionCatalog;
use crate::event::ScoreAwarded;
use crate::ids::ActionName;
use crate::token::VerifiedToken;

/// Why a verified token earns no points.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwardError {
    /// The token names an action the catalog does not list.
    #[error("action \"{0}\" is not in the action catalog")]
    UnknownAction(ActionName),
}

/// Decides the event for a verified token: the points come from `catalog`, never from the
/// token. `event_id` (a UUIDv7) and `recorded_at` are supplied by the caller so the decision
/// stays pure; `recorded_at` is truncated to microseconds, the precision the stores keep.
pub fn award(
    token: &VerifiedToken,
    catalog: &ActionCatalog,
    event_id: Uuid,
    recorded_at: OffsetDateTime,
) -> Result<ScoreAwarded, AwardError> {
    let claims = &token.claims;
    let points = catalog.points(claims.act.as_str()).ok_or_else(|| AwardError::UnknownAction(claims.act.clone()))?;
    Ok(ScoreAwarded {
        event_id,
        action_id: claims.jti,
        player_id: claims.sub.clone(),
        display_name: claims.name.clone(),
        action: claims.act.clone(),
        points,
        token_issued_at: claims.iat,
        key_id: token.kid.clone(),
        recorded_at: crate::event::stored_precision(recorded_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::ActionClaims;
    use time::macros::datetime;

    fn token(act: &str) -> VerifiedToken {
        VerifiedToken {
            kid: "k1".parse().unwrap(),
            claims: ActionClaims {
                jti: Uuid::nil(),
                sub: "alice".parse().unwrap(),
                act: act.parse().unwrap(),
                name: None,
                iat: 100,
                exp: 200,
            },
        }
    }

    #[test]
    fn points_come_from_the_catalog() {
        let catalog = ActionCatalog::from_toml("[actions]\nwin_match = 100\n").unwrap();
        let event = award(&token("win_match"), &catalog, Uuid::max(), datetime!(2026-01-01 0:00 UTC)).unwrap();
        assert_eq!(event.points.get(), 100);
        assert_eq!(event.action_id, Uuid::nil());
        assert_eq!(event.player_id.as_str(), "alice");
        assert_eq!(event.key_id.as_str(), "k1");
        assert_eq!(event.token_issued_at, 100);
    }

    #[test]
    fn an_action_outside_the_catalog_earns_nothing() {
        let catalog = ActionCatalog::from_toml("[actions]\nwin_match = 100\n").unwrap();
        let result = award(&token("cheat"), &catalog, Uuid::max(), datetime!(2026-01-01 0:00 UTC));
        assert_eq!(result, Err(AwardError::UnknownAction("cheat".parse().unwrap())));
        let detail = result.unwrap_err().to_string();
        assert_eq!(detail, "action \"cheat\" is not in the action catalog", "clients see the name, not Rust");
    }

    #[test]
    fn recorded_time_keeps_microseconds() {
        let catalog = ActionCatalog::from_toml("[actions]\nwin_match = 100\n").unwrap();
        let at = datetime!(2026-01-01 0:00:00.123456789 UTC);
        let event = award(&token("win_match"), &catalog, Uuid::max(), at).unwrap();
        assert_eq!(event.recorded_at, datetime!(2026-01-01 0:00:00.123456 UTC));
    }
}

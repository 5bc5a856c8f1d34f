//! The command side's decision: a verified action token becomes a `ScoreAwarded` event, worth
//! what the catalog says: its fixed points, or the score the token reports within the catalog's
//! range.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::catalog::{ActionCatalog, Worth};
use crate::event::ScoreAwarded;
use crate::ids::{ActionName, Points};
use crate::token::VerifiedToken;

/// Why a verified token earns no points.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwardError {
    /// The token names an action the catalog does not list.
    #[error("action \"{0}\" is not in the action catalog")]
    UnknownAction(ActionName),
    /// The action is worth a reported score, and the token carries no `score` claim.
    #[error("action \"{0}\" is worth a reported score: the token needs a `score` claim")]
    ScoreMissing(ActionName),
    /// The action is worth fixed points, and the token carries a `score` claim.
    #[error("action \"{0}\" is worth fixed points: the token must not carry a `score` claim")]
    ScoreNotAsked(ActionName),
    /// The reported score lies outside the catalog's range for the action.
    #[error("score {score} of action \"{action}\" is outside {min} … {max}")]
    ScoreOutOfRange {
        /// The action.
        action: ActionName,
        /// The score reported.
        score: i64,
        /// The lowest accepted.
        min: u32,
        /// The highest accepted.
        max: u32,
    },
}

impl AwardError {
    /// The problem code the API answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownAction(_) => "unknown_action",
            Self::ScoreMissing(_) => "score_missing",
            Self::ScoreNotAsked(_) => "score_not_asked",
            Self::ScoreOutOfRange { .. } => "score_out_of_range",
        }
    }
}

/// What `action` is worth with the `score` a token reports (if any), by `catalog`: its fixed
/// points, or the score where the catalog asks for one and within its range.
pub fn points(catalog: &ActionCatalog, action: &ActionName, score: Option<i64>) -> Result<Points, AwardError> {
    let worth = catalog.worth(action.as_str()).ok_or_else(|| AwardError::UnknownAction(action.clone()))?;
    match (worth, score) {
        (Worth::Fixed(points), None) => Ok(points),
        (Worth::Fixed(_), Some(_)) => Err(AwardError::ScoreNotAsked(action.clone())),
        (Worth::Reported { .. }, None) => Err(AwardError::ScoreMissing(action.clone())),
        (Worth::Reported { min, max }, Some(score)) => match Points::new(score) {
            Ok(points) if (min..=max).contains(&points) => Ok(points),
            _ => Err(AwardError::ScoreOutOfRange { action: action.clone(), score, min: min.get(), max: max.get() }),
        },
    }
}

/// Decides the event for a verified token: its worth comes from `catalog` — fixed points, or the
/// token's `score` where the catalog asks for one and within its range. `event_id` (a UUIDv7) and `recorded_at` are supplied by the caller so the decision
/// stays pure; `recorded_at` is truncated to microseconds, the precision the stores keep.
pub fn award(
    token: &VerifiedToken,
    catalog: &ActionCatalog,
    event_id: Uuid,
    recorded_at: OffsetDateTime,
) -> Result<ScoreAwarded, AwardError> {
    let claims = &token.claims;
    let points = points(catalog, &claims.act, claims.score)?;
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
        scored(act, None)
    }

    fn scored(act: &str, score: Option<i64>) -> VerifiedToken {
        VerifiedToken {
            kid: "k1".parse().unwrap(),
            claims: ActionClaims {
                jti: Uuid::nil(),
                sub: "alice".parse().unwrap(),
                act: act.parse().unwrap(),
                name: None,
                score,
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
    fn a_reported_score_counts_within_the_catalogs_range_and_only_where_it_asks_for_one() {
        let catalog =
            ActionCatalog::from_toml("[actions]\nwin_match = 100\nlap = { score = { min = 10, max = 600 } }\n")
                .unwrap();
        let at = datetime!(2026-01-01 0:00 UTC);
        let decide = |act: &str, score| award(&scored(act, score), &catalog, Uuid::max(), at);
        for (score, points) in [(10, 10), (600, 600), (42, 42)] {
            assert_eq!(decide("lap", Some(score)).unwrap().points.get(), points);
        }
        for score in [9, 601, -1, i64::MAX] {
            let refused = decide("lap", Some(score)).unwrap_err();
            assert_eq!(refused.code(), "score_out_of_range");
            assert_eq!(refused.to_string(), format!("score {score} of action \"lap\" is outside 10 … 600"));
        }
        assert_eq!(decide("lap", None), Err(AwardError::ScoreMissing("lap".parse().unwrap())));
        assert_eq!(decide("win_match", Some(100)), Err(AwardError::ScoreNotAsked("win_match".parse().unwrap())));
    }

    #[test]
    fn recorded_time_keeps_microseconds() {
        let catalog = ActionCatalog::from_toml("[actions]\nwin_match = 100\n").unwrap();
        let at = datetime!(2026-01-01 0:00:00.123456789 UTC);
        let event = award(&token("win_match"), &catalog, Uuid::max(), at).unwrap();
        assert_eq!(event.recorded_at, datetime!(2026-01-01 0:00:00.123456 UTC));
    }
}

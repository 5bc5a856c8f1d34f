//! What a transport says against what the log holds: a claim (a JetStream message) is
//! believed only where the log holds that very event at that position.

use crate::{Claim, StoredEvent};

/// The most log events one fold transaction reads: a claim further ahead than this is not
/// checked (and not folded) until the fold has caught up to it.
pub(crate) const FOLD_WINDOW: u64 = 10_000;

/// The log positions a fold of `claims` must read: `(checkpoint, through]`, or `None` when no
/// claim lies beyond the checkpoint.
pub(crate) fn claimed_window(claims: &[Claim], checkpoint: u64) -> Option<u64> {
    let furthest = claims.iter().map(|c| c.position).filter(|&p| p > checkpoint).max()?;
    Some(furthest.min(checkpoint + FOLD_WINDOW))
}

/// What the log says of the claims a transport delivered.
pub(crate) struct Confirmation {
    /// The highest position whose claim the log confirmed: the fold goes through it.
    pub to: u64,
    /// Claims at or below the checkpoint.
    pub skipped: usize,
    /// Positions of claims the log contradicts: another event there, or none at all.
    pub forged: Vec<u64>,
}

/// Checks `claims` against `log`, the events at `checkpoint + 1 …` in order (dense, as the log
/// is), read up to `through`. A claim is confirmed when the log holds an event at its position
/// with the same id, type, version and payload bytes.
pub(crate) fn confirm(claims: &[Claim], checkpoint: u64, through: u64, log: &[StoredEvent]) -> Confirmation {
    let mut confirmation = Confirmation { to: checkpoint, skipped: 0, forged: Vec::new() };
    let window_full = log.len() as u64 == through - checkpoint;
    for claim in claims {
        if claim.position <= checkpoint {
            confirmation.skipped += 1;
            continue;
        }
        let index = usize::try_from(claim.position - checkpoint - 1).unwrap_or(usize::MAX);
        match log.get(index) {
            Some(event) if claim.matches(event) => confirmation.to = confirmation.to.max(claim.position),
            // Beyond a window the log fills: it may hold it; the fold will reach it later.
            None if claim.position > through && window_full => {}
            _ => confirmation.forged.push(claim.position),
        }
    }
    confirmation
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn stored(position: u64, payload: &str) -> StoredEvent {
        StoredEvent {
            position,
            event_id: Uuid::from_u128(u128::from(position)),
            event_type: "ScoreAwarded".into(),
            event_version: 1,
            payload: payload.into(),
            recorded_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_log_decides_which_claims_are_true() {
        let log: Vec<StoredEvent> = (3..=6).map(|p| stored(p, "{}")).collect();
        let mut edited = Claim::from(&log[1]);
        edited.payload = b"{\"points\":1000000}".to_vec();
        let claims = vec![
            Claim::from(&stored(2, "{}")),
            Claim::from(&log[0]),
            edited,
            Claim::from(&log[2]),
            Claim::from(&stored(9, "{}")),
        ];
        let confirmation = confirm(&claims, 2, 9, &log);
        assert_eq!(confirmation.to, 5, "the highest confirmed claim");
        assert_eq!(confirmation.skipped, 1);
        assert_eq!(confirmation.forged, [4, 9], "an edited payload, and a position the log does not hold");
    }

    #[test]
    fn a_claim_beyond_a_full_window_is_left_for_later() {
        let log: Vec<StoredEvent> = (1..=3).map(|p| stored(p, "{}")).collect();
        let claims = vec![Claim::from(&log[0]), Claim::from(&stored(7, "{}"))];
        assert_eq!(claimed_window(&claims, 0), Some(7));
        let confirmation = confirm(&claims, 0, 3, &log);
        assert_eq!((confirmation.to, confirmation.forged.len()), (1, 0));
    }
}

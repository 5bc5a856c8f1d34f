//! The logic of appending and of folding that is the same on every database. Each back end
//! supplies one transaction's worth of SQL; these decide what goes into it and what it means.

use std::collections::{HashMap, HashSet};

use events::{Event, RecordedEvent, ScoreRevoked};
use uuid::Uuid;

use crate::{AppendOutcome, Claim, NewEvent, Refusal, StoreError, StoredEvent};

/// The event first recorded for each action id, with its claims digest.
pub(crate) type Originals = HashMap<Uuid, (RecordedEvent, Option<Vec<u8>>)>;

/// What one append transaction did.
pub(crate) enum Attempt {
    /// Every fresh event was inserted at `head + 1 …` and committed.
    Committed {
        /// The head before the transaction.
        head: u64,
        /// The originals asked for.
        originals: Originals,
        /// The fresh events refused by [`admit`], by event id; the others were appended in order.
        refused: HashMap<Uuid, Refusal>,
    },
    /// Some fresh events collided with action ids already in the log; the transaction was
    /// rolled back. Holds the colliding action ids.
    Collided(HashSet<Uuid>),
}

/// Appends `batch` through `attempt`, one transaction per call.
///
/// `attempt(fresh, wanted)` must, in one transaction: take the head (holding the log's append
/// lock until it ends), drop what [`admit`] refuses, insert the rest at `head + 1 …` skipping
/// action ids already recorded,
/// and then either roll back, reporting [`Attempt::Collided`] if any was skipped, or advance
/// the head, read the originals of the `wanted` action ids and commit.
///
/// Whether an action id was seen before is thus decided by the database's unique constraint,
/// and positions stay dense: a collided attempt is repeated without the collided events. Within
/// the batch, the first event of an action id is the candidate and later ones are answered
/// with it.
pub(crate) async fn append_with<'b, F, Fut>(
    batch: &'b [NewEvent],
    mut attempt: F,
) -> Result<Vec<AppendOutcome>, StoreError>
where
    F: FnMut(Vec<&'b NewEvent>, Vec<Uuid>) -> Fut,
    Fut: Future<Output = Result<Attempt, StoreError>>,
{
    let mut first_index: HashMap<Uuid, usize> = HashMap::new();
    let candidates: Vec<usize> = (0..batch.len())
        .filter(|&i| match batch[i].event.action_id() {
            Some(action_id) => *first_index.entry(action_id).or_insert(i) == i,
            None => true,
        })
        .collect();
    let mut recorded_before: HashSet<Uuid> = HashSet::new();
    loop {
        let fresh: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| batch[i].event.action_id().is_none_or(|a| !recorded_before.contains(&a)))
            .collect();
        let wanted = recorded_before.iter().copied().collect();
        match attempt(fresh.iter().map(|&i| &batch[i]).collect(), wanted).await? {
            Attempt::Committed { head, originals, refused } => {
                let appended: Vec<usize> =
                    fresh.into_iter().filter(|&i| !refused.contains_key(&batch[i].event.event_id())).collect();
                return Ok(outcomes(batch, head, &appended, &refused, &first_index, &originals));
            }
            Attempt::Collided(collided) => recorded_before.extend(collided),
        }
    }
}

fn outcomes(
    batch: &[NewEvent],
    head: u64,
    appended: &[usize],
    refused: &HashMap<Uuid, Refusal>,
    first_index: &HashMap<Uuid, usize>,
    originals: &Originals,
) -> Vec<AppendOutcome> {
    let appended_at: HashMap<usize, u64> =
        appended.iter().zip(head + 1..).map(|(&i, position)| (i, position)).collect();
    let original_of = |i: usize| -> (RecordedEvent, Option<Vec<u8>>) {
        let action_id = batch[i].event.action_id().expect("only events with an action id can repeat one");
        let first = first_index[&action_id];
        match appended_at.get(&first) {
            Some(&position) => (
                RecordedEvent { position, event: batch[first].event.clone() },
                batch[first].claims_digest.map(|d| d.to_vec()),
            ),
            None => originals[&action_id].clone(),
        }
    };
    (0..batch.len())
        .map(|i| match appended_at.get(&i) {
            Some(&position) => AppendOutcome::Appended(RecordedEvent { position, event: batch[i].event.clone() }),
            None if refused.contains_key(&batch[i].event.event_id()) => {
                AppendOutcome::Refused(refused[&batch[i].event.event_id()])
            }
            None => {
                let (original, digest) = original_of(i);
                let same_claims = digest.is_some() && digest == batch[i].claims_digest.map(|d| d.to_vec());
                AppendOutcome::AlreadyRecorded { original, same_claims }
            }
        })
        .collect()
}

/// What moderation says of some players at the log's head: who is banned, which awards were
/// taken back, and where all of a player's points were last taken back.
#[derive(Debug, Default)]
pub(crate) struct Moderation {
    banned: HashSet<String>,
    revoked: HashSet<Uuid>,
    cleared: HashMap<String, u64>,
}

impl Moderation {
    /// The moderation that `events` (the moderation events of some players, in log order) make.
    pub(crate) fn of(events: &[RecordedEvent]) -> Self {
        let mut moderation = Self::default();
        for recorded in events {
            moderation.apply(&recorded.event, recorded.position);
        }
        moderation
    }

    /// Whether the log refuses `event`, were it appended at `position`; if not, takes it in.
    fn admit(&mut self, event: &Event, position: u64) -> Option<Refusal> {
        let player = event.player_id().as_str();
        let refusal = match event {
            Event::ScoreAwarded(_) => self.banned.contains(player).then_some(Refusal::PlayerBanned),
            Event::PlayerBanned(_) => self.banned.contains(player).then_some(Refusal::AlreadyBanned),
            Event::PlayerUnbanned(_) => (!self.banned.contains(player)).then_some(Refusal::NotBanned),
            Event::ScoreRevoked(ScoreRevoked { award: Some(award), .. }) => {
                let cleared_after = self.cleared.get(player).is_some_and(|&at| at > award.position);
                (self.revoked.contains(&award.event_id) || cleared_after).then_some(Refusal::AlreadyRevoked)
            }
            Event::ScoreRevoked(ScoreRevoked { award: None, .. }) => None,
        };
        if refusal.is_none() {
            self.apply(event, position);
        }
        refusal
    }

    fn apply(&mut self, event: &Event, position: u64) {
        let player = event.player_id().to_string();
        match event {
            Event::ScoreAwarded(_) => {}
            Event::PlayerBanned(_) => {
                self.banned.insert(player);
            }
            Event::PlayerUnbanned(_) => {
                self.banned.remove(&player);
            }
            Event::ScoreRevoked(ScoreRevoked { award: Some(award), .. }) => {
                self.revoked.insert(award.event_id);
            }
            Event::ScoreRevoked(ScoreRevoked { award: None, .. }) => {
                self.cleared.insert(player, position);
            }
        }
    }
}

/// Decides, in batch order and starting from the `moderation` at the head, which of `fresh` the
/// log refuses: an award for a banned player, a ban of a banned player, an unban of a player who
/// is not banned, a revocation of an award already taken back. This runs under the log's append
/// lock, so a ban and an award for the same player are ordered here once and for all: an award
/// after the ban never counts.
pub(crate) fn admit(fresh: &[&NewEvent], head: u64, mut moderation: Moderation) -> HashMap<Uuid, Refusal> {
    let mut refused = HashMap::new();
    let mut position = head;
    for new in fresh {
        match moderation.admit(&new.event, position + 1) {
            Some(refusal) => {
                refused.insert(new.event.event_id(), refusal);
            }
            None => position += 1,
        }
    }
    refused
}

/// The leaf hashes of `events`, appended from position `first` on with `payloads` (their
/// encodings, the very strings the insert writes).
pub(crate) fn leaves(first: u64, events: &[&NewEvent], payloads: &[String]) -> Vec<audit::Hash> {
    events
        .iter()
        .zip(payloads)
        .zip(first..)
        .map(|((new, payload), position)| {
            let entry = audit::entry(position, new.event.event_type(), new.event.version(), payload);
            audit::leaf_hash(entry.as_bytes())
        })
        .collect()
}

/// The leaf hashes of events read back from the log (a log older than its tree).
pub(crate) fn stored_leaves(events: &[StoredEvent]) -> Vec<audit::Hash> {
    events.iter().map(|e| audit::leaf_hash(e.entry().as_bytes())).collect()
}

/// The frontier of the tree after `completed` (what [`audit::append`] returned for a tree of
/// `size` leaves whose frontier hashes were `frontier`) grew it to `grown` leaves.
pub(crate) fn frontier_after(
    size: u64,
    frontier: &[audit::Hash],
    completed: &[(audit::Node, audit::Hash)],
    grown: u64,
) -> Result<Vec<audit::Hash>, StoreError> {
    let mut known: HashMap<audit::Node, audit::Hash> =
        audit::frontier(size).into_iter().zip(frontier.iter().copied()).collect();
    known.extend(completed.iter().copied());
    frontier_hashes(grown, &known)
}

/// The hashes of the tree's frontier at `size`, from the stored nodes `known`.
pub(crate) fn frontier_hashes(
    size: u64,
    known: &HashMap<audit::Node, audit::Hash>,
) -> Result<Vec<audit::Hash>, StoreError> {
    audit::frontier(size)
        .iter()
        .map(|node| {
            known.get(node).copied().ok_or_else(|| StoreError::InvalidRow(format!("Merkle tree node {node:?}")))
        })
        .collect()
}

/// A stored node, read back from its row.
pub(crate) fn node_of_row((level, index, hash): (i16, i64, Vec<u8>)) -> Result<(audit::Node, audit::Hash), StoreError> {
    let invalid = || StoreError::InvalidRow(format!("Merkle tree node at level {level}, index {index}"));
    let node = audit::Node {
        level: u8::try_from(level).map_err(|_| invalid())?,
        index: u64::try_from(index).map_err(|_| invalid())?,
    };
    Ok((node, hash.try_into().map_err(|_| invalid())?))
}

/// The action ids of `admitted` that the insert skipped, given the ones it `inserted`: those
/// recorded before.
pub(crate) fn collided(admitted: &[&NewEvent], inserted: &HashSet<Uuid>) -> HashSet<Uuid> {
    admitted.iter().filter_map(|new| new.event.action_id()).filter(|a| !inserted.contains(a)).collect()
}

/// The players `fresh` is about, each once.
pub(crate) fn players_of(fresh: &[&NewEvent]) -> Vec<String> {
    let players: HashSet<&str> = fresh.iter().map(|new| new.event.player_id().as_str()).collect();
    players.into_iter().map(str::to_string).collect()
}

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

    #[test]
    fn the_frontier_after_an_append_is_the_frontier_of_the_grown_tree() {
        let leaves: Vec<audit::Hash> = (0..40u8).map(|i| audit::leaf_hash(&[i])).collect();
        let mut all: std::collections::HashMap<audit::Node, audit::Hash> = Default::default();
        let mut frontier = Vec::new();
        let mut size = 0;
        for cut in [1, 2, 3, 7, 8, 13, 32, 33, 40] {
            let completed = audit::append(size, &frontier, &leaves[size as usize..cut]);
            all.extend(completed.iter().copied());
            frontier = frontier_after(size, &frontier, &completed, cut as u64).unwrap();
            size = cut as u64;
            assert_eq!(frontier, frontier_hashes(size, &all).unwrap(), "at {size}");
        }
    }

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

//! The append protocol, the same on every database: which events of a batch are fresh, which
//! the log refuses under its append lock, and what each requester is answered.

use std::collections::{HashMap, HashSet};

use events::{Event, RecordedEvent, ScoreRevoked};
use uuid::Uuid;

use crate::{AppendOutcome, NewEvent, Refusal, StoreError};

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
pub(crate) fn leaves(first: u64, events: &[&NewEvent], payloads: &[String]) -> Vec<tlog::Hash> {
    events
        .iter()
        .zip(payloads)
        .zip(first..)
        .map(|((new, payload), position)| {
            let entry = tlog::entry(position, new.event.event_type(), new.event.version(), payload);
            tlog::leaf_hash(entry.as_bytes())
        })
        .collect()
}

/// The players `fresh` is about, each once.
pub(crate) fn players_of(fresh: &[&NewEvent]) -> Vec<String> {
    let players: HashSet<&str> = fresh.iter().map(|new| new.event.player_id().as_str()).collect();
    players.into_iter().map(str::to_string).collect()
}

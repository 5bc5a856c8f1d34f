//! The logic of appending and of folding that is the same on every database. Each back end
//! supplies one transaction's worth of SQL; these decide what goes into it and what it means.

use std::collections::{HashMap, HashSet};

use events::RecordedEvent;
use uuid::Uuid;

use crate::{AppendOutcome, Applied, NewEvent, StoreError};

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
    },
    /// Some fresh events collided with action ids already in the log; the transaction was
    /// rolled back. Holds the action ids that did insert.
    Collided(HashSet<Uuid>),
}

/// Appends `batch` through `attempt`, one transaction per call.
///
/// `attempt(fresh, wanted)` must, in one transaction: take the head (holding the log's append
/// lock until it ends), insert `fresh` at `head + 1 …` skipping action ids already recorded,
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
            Attempt::Committed { head, originals } => {
                return Ok(outcomes(batch, head, &fresh, &first_index, &originals));
            }
            Attempt::Collided(inserted) => recorded_before
                .extend(fresh.iter().filter_map(|&i| batch[i].event.action_id()).filter(|a| !inserted.contains(a))),
        }
    }
}

fn outcomes(
    batch: &[NewEvent],
    head: u64,
    fresh: &[usize],
    first_index: &HashMap<Uuid, usize>,
    originals: &Originals,
) -> Vec<AppendOutcome> {
    let appended_at: HashMap<usize, u64> = fresh.iter().zip(head + 1..).map(|(&i, position)| (i, position)).collect();
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
            None => {
                let (original, digest) = original_of(i);
                let same_claims = digest.is_some() && digest == batch[i].claims_digest.map(|d| d.to_vec());
                AppendOutcome::AlreadyRecorded { original, same_claims }
            }
        })
        .collect()
}

/// How a delivery of events splits against the read model's checkpoint.
pub(crate) struct Split<'a> {
    /// The checkpoint split against.
    pub from: u64,
    /// Events at or below the checkpoint.
    pub skipped: usize,
    /// The contiguous run from checkpoint + 1, to apply.
    pub run: Vec<&'a RecordedEvent>,
    /// The first position missing before later events, if any.
    pub missing: Option<u64>,
}

/// Splits `events` (any order, repeats allowed) against `checkpoint`.
pub(crate) fn split(events: &[RecordedEvent], checkpoint: u64) -> Split<'_> {
    let mut events: Vec<&RecordedEvent> = events.iter().collect();
    events.sort_by_key(|e| e.position);
    events.dedup_by_key(|e| e.position);
    let skipped = events.iter().take_while(|e| e.position <= checkpoint).count();
    let run: Vec<&RecordedEvent> = events[skipped..]
        .iter()
        .zip(checkpoint + 1..)
        .take_while(|(event, expected)| event.position == *expected)
        .map(|(event, _)| *event)
        .collect();
    let missing = (skipped + run.len() < events.len()).then_some(checkpoint + run.len() as u64 + 1);
    Split { from: checkpoint, skipped, run, missing }
}

impl Split<'_> {
    /// The checkpoint once the run is applied.
    pub fn to(&self) -> u64 {
        self.from + self.run.len() as u64
    }

    /// What applying the run did, given the standings it changed.
    pub fn applied(&self, standings: Vec<events::Standing>) -> Applied {
        Applied { from: self.from, to: self.to(), standings, skipped: self.skipped, missing: self.missing }
    }
}

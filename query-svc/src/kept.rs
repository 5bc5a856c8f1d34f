//! What the reads of the database leave in memory, so that the same question is read once: the
//! past seasons of boards and the boards at past positions that are being paged through, and
//! the answers that can never change (a full page of the log or of checkpoints, a proof at a
//! tree size).
//!
//! A past board at a position is the log's, which only grows: it never changes. A past season
//! changes only when moderation (a ban, a revocation) reaches into it; the read model's change
//! rows say which seasons each fold touched, and the board keeper forgets those
//! ([`Kept::changed`]). A load that raced such a change is not kept: every load notes the
//! generation of forgetting it started in, and what it read is kept only if none came since.
//! When the boards are loaded again whole (the read model was restored or rebuilt), everything
//! is forgotten.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use events::Board;
use events::boards::Season;
use events::leaderboard::PastBoard;
use quick_cache::sync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, OptionsBuilder, Weighter};

use crate::error::QueryError;

/// Standings kept in all, past seasons and past positions together (about 150 bytes each).
pub const KEPT_STANDINGS: u64 = 500_000;

/// Bytes of answers kept.
pub const KEPT_ANSWER_BYTES: u64 = 16 << 20;

/// What the reads of the database keep; cheap to clone (shared).
#[derive(Clone)]
pub struct Kept(Arc<Inner>);

struct Inner {
    seasons: Keep<(String, Season), Arc<Board>>,
    positions: Keep<u64, Arc<PastBoard>>,
    answers: Keep<String, Bytes>,
    /// Counts the times something was forgotten.
    generation: AtomicU64,
}

type Keep<K, V> = Cache<K, V, ByWeight, DefaultHashBuilder>;

/// What a kept value weighs: standings for boards, bytes for answers.
trait Weighed {
    fn weight(&self) -> u64;
}

impl Weighed for Arc<Board> {
    fn weight(&self) -> u64 {
        self.len() as u64 + 1
    }
}

impl Weighed for Arc<PastBoard> {
    fn weight(&self) -> u64 {
        self.len() as u64 + 1
    }
}

impl Weighed for Bytes {
    fn weight(&self) -> u64 {
        self.len() as u64 + 1
    }
}

#[derive(Clone, Copy)]
struct ByWeight;

impl<K, V: Weighed> Weighter<K, V> for ByWeight {
    fn weight(&self, _: &K, value: &V) -> u64 {
        value.weight()
    }
}

/// One shard, so that a board as large as the whole budget can be kept.
fn keep<K: Eq + std::hash::Hash, V: Weighed + Clone>(weight: u64) -> Keep<K, V> {
    let options = OptionsBuilder::new()
        .estimated_items_capacity(64)
        .weight_capacity(weight)
        .shards(1)
        .build()
        .expect("every option is set");
    Cache::with_options(options, ByWeight, DefaultHashBuilder::default(), DefaultLifecycle::default())
}

impl Default for Kept {
    fn default() -> Self {
        Self(Arc::new(Inner {
            seasons: keep(KEPT_STANDINGS / 2),
            positions: keep(KEPT_STANDINGS / 2),
            answers: keep(KEPT_ANSWER_BYTES),
            generation: AtomicU64::new(0),
        }))
    }
}

impl Kept {
    /// Season `season` of board `board`, kept or read by `load` (`None`: the read model is
    /// building the board; not kept).
    pub async fn season(
        &self,
        board: &str,
        season: Season,
        load: impl AsyncFnOnce() -> Result<Option<Board>, QueryError>,
    ) -> Result<Option<Arc<Board>>, QueryError> {
        let key = (board.to_string(), season);
        self.kept(&self.0.seasons, &key, "season", async move || Ok(load().await?.map(|b| (Arc::new(b), true)))).await
    }

    /// The board at `position`, kept or replayed by `load`.
    pub async fn at(
        &self,
        position: u64,
        load: impl AsyncFnOnce() -> Result<PastBoard, QueryError>,
    ) -> Result<Arc<PastBoard>, QueryError> {
        let kept = self
            .kept(&self.0.positions, &position, "position", async move || Ok(Some((Arc::new(load().await?), true))));
        Ok(kept.await?.expect("a past board is always loaded"))
    }

    /// The answer named `key`, kept or made by `load`, which says whether it is final (can never
    /// change, so may be kept).
    pub async fn answer(
        &self,
        key: String,
        load: impl AsyncFnOnce() -> Result<(Bytes, bool), QueryError>,
    ) -> Result<Bytes, QueryError> {
        let kept = self.kept(&self.0.answers, &key, "answer", async move || Ok(Some(load().await?)));
        Ok(kept.await?.expect("an answer is always made"))
    }

    /// The value of `key` in `cache`, or what `load` reads, kept when final and when nothing
    /// was forgotten while it was read.
    async fn kept<K: Eq + std::hash::Hash + Clone, V: Weighed + Clone>(
        &self,
        cache: &Keep<K, V>,
        key: &K,
        kind: &'static str,
        load: impl AsyncFnOnce() -> Result<Option<(V, bool)>, QueryError>,
    ) -> Result<Option<V>, QueryError> {
        let guard = match cache.get_value_or_guard_async(key).await {
            Ok(value) => {
                metrics::counter!("query_cache_hits_total", "kind" => kind).increment(1);
                return Ok(Some(value));
            }
            Err(guard) => guard,
        };
        let generation = self.0.generation.load(Ordering::SeqCst);
        let Some((value, fin)) = load().await? else { return Ok(None) };
        if fin && self.0.generation.load(Ordering::SeqCst) == generation {
            let _ = guard.insert(value.clone());
            // Forgotten between the check and the insert: forget what was just kept too.
            if self.0.generation.load(Ordering::SeqCst) != generation {
                cache.remove(key);
            }
        }
        Ok(Some(value))
    }

    /// The read model changed these seasons of these boards: forget them.
    pub fn changed<'a>(&self, seasons: impl IntoIterator<Item = (&'a str, Season)>) {
        let mut seasons = seasons.into_iter().peekable();
        if seasons.peek().is_none() {
            return;
        }
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        for (board, season) in seasons {
            self.0.seasons.remove(&(board.to_string(), season));
        }
    }

    /// The boards were loaded whole again (the read model was restored or rebuilt, the log may
    /// be another): forget everything.
    pub fn forget_all(&self) {
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        self.0.seasons.clear();
        self.0.positions.clear();
        self.0.answers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(players: u64) -> Board {
        let standings = (0..players).map(|i| events::Standing {
            player_id: events::PlayerId::parse(format!("p{i}")).unwrap(),
            name: None,
            score: i + 1,
            reached_at: 0,
            banned: false,
        });
        Board::from_standings(7, standings)
    }

    #[tokio::test]
    async fn a_past_season_is_read_once_until_moderation_changes_it() {
        let kept = Kept::default();
        let season = Season::AllTime;
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let load = async || {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok(Some(board(3)))
        };
        assert_eq!(kept.season("daily", season, load).await.unwrap().unwrap().len(), 3);
        assert_eq!(kept.season("daily", season, load).await.unwrap().unwrap().len(), 3);
        assert_eq!(reads.load(Ordering::SeqCst), 1, "kept");
        kept.changed([("weekly", season)]);
        kept.season("daily", season, load).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1, "another board's change");
        kept.changed([("daily", season)]);
        kept.season("daily", season, load).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2, "read again after its change");
    }

    #[tokio::test]
    async fn what_was_read_while_something_was_forgotten_is_not_kept() {
        let kept = Kept::default();
        let season = Season::AllTime;
        let racing = async || {
            // Moderation reaches the season while it is being read.
            kept.changed([("daily", season)]);
            Ok(Some(board(2)))
        };
        kept.season("daily", season, racing).await.unwrap();
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let load = async || {
            reads.fetch_add(1, Ordering::SeqCst);
            Ok(Some(board(2)))
        };
        kept.season("daily", season, load).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1, "the raced read was not kept");
    }

    #[tokio::test]
    async fn only_final_answers_are_kept() {
        let kept = Kept::default();
        let made = std::sync::atomic::AtomicUsize::new(0);
        let partial = async || {
            made.fetch_add(1, Ordering::SeqCst);
            Ok((Bytes::from_static(b"[]"), false))
        };
        kept.answer("page".into(), partial).await.unwrap();
        kept.answer("page".into(), partial).await.unwrap();
        assert_eq!(made.load(Ordering::SeqCst), 2);
        let full = async || {
            made.fetch_add(1, Ordering::SeqCst);
            Ok((Bytes::from_static(b"[1]"), true))
        };
        kept.answer("page".into(), full).await.unwrap();
        assert_eq!(kept.answer("page".into(), full).await.unwrap(), Bytes::from_static(b"[1]"));
        assert_eq!(made.load(Ordering::SeqCst), 3);
        kept.forget_all();
        kept.answer("page".into(), full).await.unwrap();
        assert_eq!(made.load(Ordering::SeqCst), 4);
    }
}

//! Rebuilding the read model from the log, beside the live one, at the speed the database hands
//! out the log: the log is read in one stream (PostgreSQL: binary `COPY`), folded in memory with
//! every board and season held, and the fresh tables are filled in bulk (binary `COPY`); then the
//! fresh model catches up with the live one and takes its place in one transaction.

use std::collections::{BTreeMap, HashMap};

use events::anomaly::{Detector, Flag};
use events::boards::{BoardDef, GLOBAL, Place, Reads, Season, SeasonStanding};
use events::fold::{Delta, Fold};
use events::usage::Usage;
use events::{BoardId, PlayerId, RecordedEvent, Standing};
use futures::StreamExt as _;
use sqlx::Database;

use crate::fold::{self, BoardPositions, ChangeRows, FoldRows, StandingRows, Tables};
use crate::rows::PROJECTION;
use crate::rows::from_db;
use crate::snapshot::Due;
use crate::sql::{self, Arg, Backend, Write};
use crate::usage::{self, UsageRows};
use crate::{LeaderboardStore as _, ReadModel, Rebuilt, StoreError, StoredEvent};

type Connection<B> = <<B as Backend>::Db as Database>::Connection;

/// Change rows written together.
const CHANGES_PER_WRITE: usize = 64;

impl<B: Backend> ReadModel<B> {
    /// Builds a fresh read model from the log beside this (live) one, which keeps serving and
    /// folding meanwhile, `batch` events a change row; once the fresh one is within a batch of
    /// the live one, takes the live one's lock (the projector waits), folds the rest, and puts the
    /// fresh tables in the place of the live ones in the same transaction, bumping the generation
    /// so that query services and the projector load them. Readers therefore see the old read
    /// model up to the swap and the new one after, at the same checkpoint: no gap, no older
    /// board. `progress` is told the fresh model's position as it goes.
    ///
    /// Every standing of every board and season is held in memory while it runs.
    pub async fn rebuild(&self, batch: u32, mut progress: impl FnMut(u64)) -> Result<Rebuilt, StoreError> {
        let backend = self.backend();
        let batch = u64::from(batch.max(1));
        let mut connection = backend.writer().acquire().await?;
        for statement in B::SQL.create_next {
            B::execute(&mut connection, statement, vec![]).await?;
        }
        drop(connection);
        let mut replay = Replay::new(self.settings());

        // Unlocked: the log up to where the live model stood, folded in one stream, then the
        // standings loaded in bulk; then, while the live model is more than a batch ahead, the
        // rest, written as folds write. The fresh model never folds past the live checkpoint it
        // takes over at.
        let started = std::time::Instant::now();
        let start = self.checkpoint().await?;
        replay.stream::<B>(backend, start, batch, &mut progress).await?;
        tracing::info!(position = start, seconds = started.elapsed().as_secs_f64(), "rebuild: the log is folded");
        replay.load_standings::<B>(&mut *backend.writer().acquire().await?).await?;
        tracing::info!(seconds = started.elapsed().as_secs_f64(), "rebuild: the standings are loaded and indexed");
        loop {
            let live = self.checkpoint().await?;
            if live <= replay.fold.position() + batch {
                break;
            }
            let mut tx = backend.begin_derived().await?;
            replay.catch_up::<B>(&mut tx, live, batch, &mut progress).await?;
            tx.commit().await?;
        }

        let mut tx = backend.begin_derived().await?;
        let (live, _): (i64, i64) =
            sql::one::<B, _>(&mut tx, B::SQL.lock_checkpoint, vec![Arg::Text(PROJECTION)]).await?;
        let live = from_db(live);
        replay.catch_up::<B>(&mut tx, live, batch, &mut progress).await?;
        B::load(&mut tx, &UsageRows::of(&replay.usage.tallies).write(Tables::NEXT.usage)).await?;
        for statement in B::SQL.swap_next {
            B::execute(&mut tx, statement, vec![]).await?;
        }
        let (generation,): (i64,) =
            sql::one::<B, _>(&mut tx, B::SQL.bump_generation, vec![Arg::Text(PROJECTION)]).await?;
        tx.commit().await?;
        tracing::info!(position = live, seconds = started.elapsed().as_secs_f64(), "rebuild: taken over");
        progress(live);
        Ok(Rebuilt { position: live, generation: from_db(generation) })
    }
}

/// The fold of the whole log in memory, every season of every board kept.
struct Replay<'f> {
    folding: &'f fold::Folding,
    fold: Fold,
    /// Every player's standings on the boards other than `global`, in every season.
    archive: HashMap<PlayerId, BTreeMap<(BoardId, Season), Standing>>,
    detector: Option<Detector>,
    due: Due,
    /// Change rows not written yet.
    pending: Vec<ChangeRows>,
    /// Usage analytics of the whole log, written as the fresh model takes over.
    usage: Usage,
}

impl<'f> Replay<'f> {
    fn new(folding: &'f fold::Folding) -> Self {
        let detector = (!folding.rules.is_empty()).then(|| Detector::new(folding.rules.clone(), 0));
        Self {
            folding,
            fold: Fold::new(folding.boards.iter().cloned()),
            archive: HashMap::new(),
            detector,
            due: Due::default(),
            pending: Vec::new(),
            usage: Usage::default(),
        }
    }

    fn named(&self) -> Vec<BoardDef> {
        self.folding.boards.named().to_vec()
    }

    /// Folds the log through `through` in one stream, `batch` events a change row. One task reads
    /// and decodes the log while this one folds it.
    async fn stream<B: Backend>(
        &mut self,
        backend: &B,
        through: u64,
        batch: u64,
        progress: &mut impl FnMut(u64),
    ) -> Result<(), StoreError> {
        let (chunks, mut decoded) = tokio::sync::mpsc::channel(4);
        let reading = tokio::spawn(read_decoded(backend.clone(), self.fold.position(), through, batch, chunks));
        let mut lookups = backend.reader().acquire().await?;
        while let Some(events) = decoded.recv().await {
            let events = events?;
            let (delta, flags) = self.fold_chunk::<B>(&mut lookups, &events).await?;
            self.pending.push(ChangeRows::of(&delta, &flags));
            let snapshot_due = self.take(delta);
            if snapshot_due || self.pending.len() >= CHANGES_PER_WRITE {
                // The writer only while writing: on SQLite, the live side appends through it too.
                let mut writer = backend.writer().acquire().await?;
                self.flush::<B>(&mut writer).await?;
                if snapshot_due {
                    self.snapshot::<B>(&mut writer).await?;
                }
            }
            progress(self.fold.position());
        }
        reading.await.map_err(|e| StoreError::InvalidRow(format!("reading the log: {e}")))?;
        self.flush::<B>(&mut *backend.writer().acquire().await?).await
    }

    /// Folds the log through `through`, `batch` events a transaction's worth, writing each fold
    /// into the fresh tables as the projector writes into the live ones.
    async fn catch_up<B: Backend>(
        &mut self,
        connection: &mut Connection<B>,
        through: u64,
        batch: u64,
        progress: &mut impl FnMut(u64),
    ) -> Result<(), StoreError> {
        while self.fold.position() < through {
            let from = self.fold.position();
            let run: Vec<StoredEvent> = B::log(connection, from, through.min(from + batch))
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?;
            if run.is_empty() {
                break;
            }
            let events = run.iter().map(StoredEvent::decoded).collect::<Result<Vec<_>, _>>()?;
            let (delta, flags) = self.fold_chunk::<B>(connection, &events).await?;
            let rows = FoldRows::of(&delta, &self.named(), &flags);
            B::write(connection, &rows.writes(Tables::NEXT), None).await?;
            if self.take(delta) {
                self.snapshot::<B>(connection).await?;
            }
            progress(self.fold.position());
        }
        Ok(())
    }

    /// What folding `events` changes, with what the fold does not hold taken from the archive,
    /// and the flags they raise.
    async fn fold_chunk<B: Backend>(
        &mut self,
        connection: &mut Connection<B>,
        events: &[RecordedEvent],
    ) -> Result<(Delta, Vec<Flag>), StoreError> {
        let revoked = fold::revoked_awards::<B>(connection, events).await?;
        let wanted = self.fold.reads(events, &revoked);
        let cold = self.held(&wanted);
        let earlier = fold::histories::<B>(connection, &wanted, self.fold.position()).await?;
        let delta = self.fold.fold(events, &revoked, cold, &earlier);
        let flags = match &mut self.detector {
            Some(detector) => fold::flag::<B>(connection, detector, &self.fold, events).await?,
            None => Vec::new(),
        };
        self.usage.merge(&usage::of_batch::<B>(connection, &self.fold, events, self.fold.defs()).await?);
        Ok((delta, flags))
    }

    /// The standings `wanted` names, as the archive holds them.
    fn held(&self, wanted: &Reads) -> Vec<SeasonStanding> {
        let at = |place: &Place| {
            let standing = self.archive.get(&place.player_id)?.get(&(place.board.clone(), place.season))?;
            Some(SeasonStanding { board: place.board.clone(), season: place.season, standing: standing.clone() })
        };
        let mut held: Vec<SeasonStanding> = wanted.places.iter().filter_map(at).collect();
        for player in &wanted.players {
            let places = self.archive.get(player).into_iter().flatten();
            held.extend(places.map(|((board, season), standing)| SeasonStanding {
                board: board.clone(),
                season: *season,
                standing: standing.clone(),
            }));
        }
        held
    }

    /// Makes `delta` the fold's and the archive's; `true` when a snapshot is due.
    fn take(&mut self, delta: Delta) -> bool {
        for standing in delta.standings.iter().filter(|s| s.board.as_str() != GLOBAL) {
            self.archive
                .entry(standing.standing.player_id.clone())
                .or_default()
                .insert((standing.board.clone(), standing.season), standing.standing.clone());
        }
        self.due.changes += delta.of(GLOBAL).count() as u64;
        self.fold.apply(delta);
        self.due.now(self.fold.position(), self.fold.len(GLOBAL) as u64, self.folding.snapshot_interval)
    }

    /// Writes a snapshot of the fold.
    async fn snapshot<B: Backend>(&mut self, connection: &mut Connection<B>) -> Result<(), StoreError> {
        let position = self.fold.position();
        fold::write_snapshot::<B>(connection, Tables::NEXT, position, self.fold.standings(GLOBAL)).await?;
        self.due = Due { last: position, changes: 0 };
        Ok(())
    }

    /// Writes the change rows and flags not written yet.
    async fn flush<B: Backend>(&mut self, connection: &mut Connection<B>) -> Result<(), StoreError> {
        let pending = std::mem::take(&mut self.pending);
        let writes: Vec<Write<'_>> = pending.iter().flat_map(|rows| rows.writes(Tables::NEXT)).collect();
        B::write(connection, &writes, None).await?;
        Ok(())
    }

    /// Loads every standing into the fresh tables, and the boards at the fold's position.
    async fn load_standings<B: Backend>(&mut self, connection: &mut Connection<B>) -> Result<(), StoreError> {
        let global = StandingRows::of_global(self.fold.standings(GLOBAL));
        B::load(connection, &global.global(Tables::NEXT.standings)).await?;
        let mut seasons = StandingRows::of([]);
        for ((board, season), standing) in self.archive.values().flatten() {
            seasons.push_place(board, *season, standing);
        }
        B::load(connection, &seasons.seasons(Tables::NEXT.seasons)).await?;
        for statement in B::SQL.index_next {
            B::execute(connection, statement, vec![]).await?;
        }
        let boards = BoardPositions::of(&self.named(), self.fold.position());
        B::write(connection, std::slice::from_ref(&boards.write(Tables::NEXT)), None).await?;
        Ok(())
    }
}

/// Reads the log's events in `(after, through]` in one stream, decodes them, and sends them on
/// `chunks`, `batch` at a time.
async fn read_decoded<B: Backend>(
    backend: B,
    after: u64,
    through: u64,
    batch: u64,
    chunks: tokio::sync::mpsc::Sender<Result<Vec<RecordedEvent>, StoreError>>,
) {
    let mut connection = match backend.reader().acquire().await {
        Ok(connection) => connection,
        Err(error) => return drop(chunks.send(Err(error.into())).await),
    };
    let mut log = B::log(&mut connection, after, through).chunks(batch as usize);
    while let Some(chunk) = log.next().await {
        let decoded = chunk
            .into_iter()
            .map(|stored| stored.and_then(|stored| stored.decoded()))
            .collect::<Result<Vec<RecordedEvent>, StoreError>>();
        let failed = decoded.is_err();
        if chunks.send(decoded).await.is_err() || failed {
            return;
        }
    }
}

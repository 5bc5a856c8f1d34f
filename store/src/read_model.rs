//! The read model on any database: the fold ([`crate::fold`]), and what query services read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use events::anomaly::Rules;
use events::boards::{BoardDefs, Place, Season, SeasonStanding};
use events::{Board, BoardChange, PlayerId, Standing};
use futures::TryStreamExt as _;

use crate::fold::{self, Folding, Source};
use crate::rows::PROJECTION;
use crate::rows::{BoardRow, ChangeRow, ChangesSinceRow, SeasonRow, SnapshotRow, StandingRow, from_db, to_db};
use crate::snapshot::{self, Changed, Snapshot};
use crate::sql::{self, Arg, Backend};
use crate::{Anchor, Applied, BoardSeason, BoardsBuilt, Changes, Claim, LeaderboardStore, Seasons, StoreError};

/// The most change rows one read of changes takes: a query service further behind loads the
/// board afresh.
const CHANGE_ROWS_MAX: i64 = 10_000;

/// The leaderboard read model, on the database `B`: every player's standing on every board and
/// season, the checkpoint of the log position folded so far (always changed together), what
/// each fold changed, and snapshots of the fold.
#[derive(Clone, Debug)]
pub struct ReadModel<B: Backend> {
    backend: B,
    folding: Arc<Folding>,
}

impl<B: Backend> ReadModel<B> {
    /// The read model on `backend`, snapshotting by [`snapshot::DEFAULT_INTERVAL`], flagging by
    /// [`Rules::defaults`], folding `global` only.
    pub fn on(backend: B) -> Self {
        Self { backend, folding: Arc::default() }
    }

    /// The database.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The same read model, at least `snapshot_interval` positions between snapshots, flagging by
    /// `rules`.
    pub fn folding(self, snapshot_interval: u64, rules: Rules) -> Self {
        let boards = self.folding.boards.clone();
        Self { folding: Arc::new(Folding::new(snapshot_interval, rules, boards)), ..self }
    }

    /// The same, folding into `boards` too (see [`LeaderboardStore::build_boards`]).
    pub fn boards(self, boards: BoardDefs) -> Self {
        let (interval, rules) = (self.folding.snapshot_interval, self.folding.rules.clone());
        Self { folding: Arc::new(Folding::new(interval, rules, boards)), ..self }
    }

    pub(crate) fn settings(&self) -> &Folding {
        &self.folding
    }

    async fn read(&self) -> Result<sqlx::pool::PoolConnection<B::Db>, StoreError> {
        Ok(self.backend.reader().acquire().await?)
    }
}

impl<B: Backend> LeaderboardStore for ReadModel<B> {
    async fn publish_results(
        &self,
        now: time::OffsetDateTime,
        grace: time::Duration,
    ) -> Result<Vec<crate::SeasonResults>, StoreError> {
        crate::results::publish(&self.backend, &self.folding, now, grace).await
    }

    async fn season_results(
        &self,
        board: &str,
        season: Season,
        version: Option<u32>,
    ) -> Result<Option<crate::SeasonResults>, StoreError> {
        crate::results::read::<B>(&mut *self.read().await?, board, season, version).await
    }

    async fn unrelayed_results(&self) -> Result<Vec<crate::SeasonResults>, StoreError> {
        crate::results::unrelayed::<B>(&mut *self.read().await?).await
    }

    async fn mark_relayed(&self, results: &crate::SeasonResults) -> Result<(), StoreError> {
        crate::results::mark_relayed::<B>(&mut *self.backend.writer().acquire().await?, results).await
    }

    fn apart(&self, connections: u32) -> Self {
        Self { backend: self.backend.readers_apart(connections), folding: self.folding.clone() }
    }

    async fn checkpoint(&self) -> Result<u64, StoreError> {
        let (position, _): (i64, i64) =
            sql::one::<B, _>(&mut *self.read().await?, B::SQL.checkpoint, vec![Arg::Text(PROJECTION)]).await?;
        Ok(from_db(position))
    }

    async fn fold_next(&self, limit: u32) -> Result<Applied, StoreError> {
        fold::fold(&self.backend, &self.folding, Source::Next(limit)).await
    }

    async fn fold_claimed(&self, claims: &[Claim]) -> Result<Applied, StoreError> {
        fold::fold(&self.backend, &self.folding, Source::Claims(claims)).await
    }

    async fn changes_since(&self, since: Anchor) -> Result<Option<Changes>, StoreError> {
        let args = vec![Arg::Text(PROJECTION), Arg::Int(to_db(since.position)), Arg::Int(CHANGE_ROWS_MAX + 1)];
        let rows: Vec<ChangesSinceRow> = B::rows(&mut *self.read().await?, B::SQL.changes_since, args).await?;
        let Some(stands) = rows.first() else { return Ok(None) };
        let (checkpoint, generation) = (from_db(stands.checkpoint), from_db(stands.generation));
        let same_history = since.event_id.is_none() || since.event_id == stands.at_since;
        if checkpoint < since.position || !same_history || since.generation != generation {
            return Ok(None);
        }
        let anchor = Anchor { position: checkpoint, event_id: stands.at_checkpoint, generation };
        if rows.len() as i64 > CHANGE_ROWS_MAX {
            return Ok(None);
        }
        // The rows must follow one another from `since` to the checkpoint; else load afresh.
        let mut at = since.position;
        let mut global: HashMap<PlayerId, Standing> = HashMap::new();
        let mut seasons: BTreeMap<Place, SeasonStanding> = BTreeMap::new();
        for row in &rows {
            let (Some(from), Some(position), Some(standings)) = (row.from_position, row.position, &row.standings)
            else {
                continue;
            };
            let (Some(changed_seasons), true) = (&row.seasons, from_db(from) == at) else { return Ok(None) };
            at = from_db(position);
            for standing in snapshot::decode(at, standings)?.standings {
                global.insert(standing.player_id.clone(), standing);
            }
            for standing in snapshot::decode_seasons(at, changed_seasons)? {
                seasons.insert(standing.place(), standing);
            }
        }
        if at != checkpoint {
            return Ok(None);
        }
        let change = BoardChange { from: since.position, to: checkpoint, standings: global.into_values().collect() };
        Ok(Some(Changes { change, seasons: seasons.into_values().collect(), anchor }))
    }

    async fn load(&self) -> Result<(Board, Anchor), StoreError> {
        let mut tx = self.backend.begin_read().await?;
        let (position, generation): (i64, i64) =
            sql::one::<B, _>(&mut tx, B::SQL.checkpoint, vec![Arg::Text(PROJECTION)]).await?;
        let anchor = Anchor { position: from_db(position), event_id: None, generation: from_db(generation) };
        // Converted one by one as they arrive: a million players never sit in memory twice.
        let standings: Vec<Standing> = B::stream::<StandingRow>(&mut tx, B::SQL.standings, vec![])
            .and_then(|row| std::future::ready(Standing::try_from(row)))
            .try_collect()
            .await?;
        tx.commit().await?;
        Ok((Board::from_standings(anchor.position, standings), anchor))
    }

    async fn load_seasons(&self, wanted: &[(String, Season)], ids: Option<&Board>) -> Result<Seasons, StoreError> {
        let mut tx = self.backend.begin_read().await?;
        let (position, generation): (i64, i64) =
            sql::one::<B, _>(&mut tx, B::SQL.checkpoint, vec![Arg::Text(PROJECTION)]).await?;
        let kept: Vec<BoardRow> = B::rows(&mut tx, B::SQL.boards, vec![]).await?;
        let ready = kept.into_iter().filter(|row| row.position == position).map(|row| (row.board, row.definition));
        let seasons: Vec<String> = wanted.iter().map(|(_, season)| season.to_string()).collect();
        let args = vec![
            Arg::Texts(wanted.iter().map(|(board, _)| board.as_str()).collect()),
            Arg::Texts(seasons.iter().map(String::as_str).collect()),
            Arg::Int(position),
        ];
        // Rows go into their season as they arrive: a query service loads millions of them, and
        // a row held with its board and season until all have come would double what it holds.
        let mut seasons: Vec<BoardSeason> = Vec::new();
        let mut rows = B::stream::<SeasonRow>(&mut tx, B::SQL.seasons, args);
        while let Some(row) = rows.try_next().await? {
            let SeasonStanding { board, season, mut standing } = SeasonStanding::try_from(row)?;
            if let Some(ids) = ids {
                ids.share_ids(&mut standing);
            }
            match seasons.iter_mut().find(|held| held.board == board && held.season == season) {
                Some(held) => held.standings.push(standing),
                None => seasons.push(BoardSeason { board, season, standings: vec![standing] }),
            }
        }
        drop(rows);
        tx.commit().await?;
        let anchor = Anchor { position: from_db(position), event_id: None, generation: from_db(generation) };
        Ok(Seasons { ready: ready.collect(), seasons, anchor })
    }

    async fn build_boards(&self, batch: u32) -> Result<BoardsBuilt, StoreError> {
        fold::build_boards(&self.backend, &self.folding, batch).await
    }

    async fn snapshot_before(&self, position: u64) -> Result<Option<Snapshot>, StoreError> {
        let row: Option<SnapshotRow> =
            sql::row::<B, _>(&mut *self.read().await?, B::SQL.snapshot_before, vec![Arg::Int(to_db(position))]).await?;
        row.map(|row| snapshot::decode(from_db(row.position), &row.standings)).transpose()
    }

    async fn changed_between(&self, after: u64, through: u64) -> Result<Vec<Changed>, StoreError> {
        let args = vec![Arg::Int(to_db(after)), Arg::Int(to_db(through))];
        let rows: Vec<ChangeRow> = B::rows(&mut *self.read().await?, B::SQL.changed_between, args).await?;
        rows.into_iter()
            .map(|row| {
                let Snapshot { position, standings } = snapshot::decode(from_db(row.position), &row.standings)?;
                Ok(Changed { from: from_db(row.from_position), position, standings })
            })
            .collect()
    }
}

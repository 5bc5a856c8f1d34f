//! Usage analytics in the read model ([`events::usage`]): what a batch adds, merged into the
//! rows of the buckets it touches in the fold's own transaction (under the checkpoint's lock,
//! so each event counts once), and a window of them read back.

use std::collections::{BTreeSet, HashSet};

use events::boards::{BoardDef, GLOBAL};
use events::fold::Fold;
use events::usage::{Bucket, Granularity, Sketch, Tally, Usage, Window};
use events::{BoardId, PlayerId, RecordedEvent};
use sqlx::{Database, FromRow};

use crate::rows::{BoardRow, PROJECTION, from_db, invalid, to_db};
use crate::sql::{self, Arg, Backend, Column, Write};
use crate::{StoreError, UsageFolded, UsageStats};

type Connection<B> = <<B as Backend>::Db as Database>::Connection;

/// What `events` (the log's next after `fold`'s position) add to usage on `boards`, and the
/// rows of the buckets they touch with it added: what the fold's transaction writes.
pub(crate) async fn fold<'a, B: Backend>(
    connection: &mut Connection<B>,
    fold: &Fold,
    events: &[RecordedEvent],
    boards: impl IntoIterator<Item = &'a BoardDef>,
) -> Result<(Usage, Usage), StoreError> {
    let added = of_batch::<B>(connection, fold, events, boards).await?;
    let merged = merged::<B>(connection, added.clone()).await?;
    Ok((added, merged))
}

/// What `events` (the log's next after `fold`'s position) count on `boards`.
pub(crate) async fn of_batch<'a, B: Backend>(
    connection: &mut Connection<B>,
    fold: &Fold,
    events: &[RecordedEvent],
    boards: impl IntoIterator<Item = &'a BoardDef>,
) -> Result<Usage, StoreError> {
    let boards: Vec<&BoardDef> = boards.into_iter().collect();
    let before = match boards.iter().any(|def| def.id.as_str() == GLOBAL) {
        true => awarded_before::<B>(connection, fold, events).await?,
        false => HashSet::new(),
    };
    Ok(Usage::of(events, boards, |player| before.contains(player)))
}

/// The players awarded in `events` who had an award before: those `global` holds with a score,
/// and those it holds without one (all taken back, awards of 0 points, or a standing made by
/// moderation alone) whom the log shows an award for.
async fn awarded_before<B: Backend>(
    connection: &mut Connection<B>,
    fold: &Fold,
    events: &[RecordedEvent],
) -> Result<HashSet<PlayerId>, StoreError> {
    let mut before = HashSet::new();
    let mut unsure = Vec::new();
    for player in Usage::awarded(events) {
        match fold.standing(GLOBAL, player) {
            None => {}
            Some(standing) if standing.score > 0 => drop(before.insert(player.clone())),
            Some(_) => unsure.push(player.as_str()),
        }
    }
    if !unsure.is_empty() {
        let args = vec![Arg::Texts(unsure), Arg::Int(to_db(fold.position()))];
        let rows: Vec<(String,)> = B::rows(connection, B::SQL.awarded_before, args).await?;
        for (player,) in rows {
            before.insert(PlayerId::parse(player).map_err(|e| invalid(e.to_string()))?);
        }
    }
    Ok(before)
}

/// `usage` added to what the read model holds of its buckets: the rows to write back.
async fn merged<B: Backend>(connection: &mut Connection<B>, mut usage: Usage) -> Result<Usage, StoreError> {
    if usage.is_empty() {
        return Ok(usage);
    }
    let boards: BTreeSet<&str> = usage.tallies.keys().map(|b| b.board.as_str()).collect();
    let starts: BTreeSet<i64> = usage.tallies.keys().map(|b| b.start).collect();
    let args = vec![Arg::Texts(boards.into_iter().collect()), Arg::Ints(starts.into_iter().collect())];
    let held: Vec<UsageRow> = B::rows(connection, B::SQL.usage_at, args).await?;
    for row in held {
        let (bucket, tally) = row.tally()?;
        if let Some(added) = usage.tallies.get_mut(&bucket) {
            added.merge(&tally);
        }
    }
    Ok(usage)
}

/// The tallies of `window`, with the read model's position: `global`'s and those of the boards
/// folded up to it (not those still being built).
pub(crate) async fn read<B: Backend>(backend: &B, window: &Window) -> Result<UsageStats, StoreError> {
    let mut tx = backend.begin_read().await?;
    let (position, _): (i64, i64) = sql::one::<B, _>(&mut tx, B::SQL.checkpoint, vec![Arg::Text(PROJECTION)]).await?;
    let args = vec![Arg::Text(window.granularity.as_str()), Arg::Int(window.from), Arg::Int(window.to)];
    let rows: Vec<UsageRow> = B::rows(&mut tx, B::SQL.usage_range, args).await?;
    // A board still being built from the log has counted only part of it: left out until ready.
    let boards: Vec<BoardRow> = B::rows(&mut tx, B::SQL.boards, vec![]).await?;
    tx.commit().await?;
    let ready = |board: &str| board == GLOBAL || boards.iter().any(|b| b.board == board && b.position == position);
    let rows = rows.into_iter().filter(|row| ready(&row.board));
    let tallies = rows.map(UsageRow::tally).collect::<Result<Vec<_>, _>>()?;
    let series = events::usage::series(window, tallies.iter().map(|(bucket, tally)| (bucket, tally)));
    Ok(UsageStats { position: from_db(position), window: *window, series })
}

/// What a batch added on `global`, for the metrics: `added` its own, `merged` its buckets as the
/// read model holds them now.
pub(crate) fn folded(added: &Usage, merged: &Usage) -> UsageFolded {
    let mut folded = UsageFolded::default();
    let global = |bucket: &Bucket, granularity| bucket.board.as_str() == GLOBAL && bucket.granularity == granularity;
    for (_, tally) in added.tallies.iter().filter(|(bucket, _)| global(bucket, Granularity::Hour)) {
        for (action, count) in &tally.by_action {
            let entry = folded.by_action.entry(action.to_string()).or_default();
            entry.actions += count.actions;
            entry.points += count.points;
        }
        folded.new_players += tally.new_players;
    }
    for granularity in Granularity::ALL {
        let newest = merged.tallies.iter().rfind(|(bucket, _)| global(bucket, granularity));
        if let Some((_, tally)) = newest {
            folded.active.push((granularity, tally.players.estimate()));
        }
    }
    folded
}

/// Usage tallies as rows.
pub(crate) struct UsageRows {
    granularities: Vec<&'static str>,
    starts: Vec<i64>,
    boards: Vec<String>,
    actions: Vec<i64>,
    points: Vec<i64>,
    by_action: Vec<String>,
    new_players: Vec<i64>,
    players: Vec<Vec<u8>>,
}

impl UsageRows {
    pub(crate) fn of<'a>(tallies: impl IntoIterator<Item = (&'a Bucket, &'a Tally)>) -> Self {
        let mut rows = Self {
            granularities: Vec::new(),
            starts: Vec::new(),
            boards: Vec::new(),
            actions: Vec::new(),
            points: Vec::new(),
            by_action: Vec::new(),
            new_players: Vec::new(),
            players: Vec::new(),
        };
        for (bucket, tally) in tallies {
            let total = tally.total();
            rows.granularities.push(bucket.granularity.as_str());
            rows.starts.push(bucket.start);
            rows.boards.push(bucket.board.to_string());
            rows.actions.push(to_db(total.actions));
            rows.points.push(to_db(total.points));
            rows.by_action.push(serde_json::to_string(&tally.by_action).expect("counts serialise"));
            rows.new_players.push(to_db(tally.new_players));
            rows.players.push(tally.players.to_bytes());
        }
        rows
    }

    /// The rows, each replacing its bucket's.
    pub(crate) fn write(&self, table: &'static str) -> Write<'_> {
        Write {
            table,
            columns: &["granularity", "bucket", "board", "actions", "points", "by_action", "new_players", "players"],
            values: vec![
                Column::Text(self.granularities.clone()),
                Column::Int(self.starts.clone()),
                Column::Text(self.boards.iter().map(String::as_str).collect()),
                Column::Int(self.actions.clone()),
                Column::Int(self.points.clone()),
                Column::Text(self.by_action.iter().map(String::as_str).collect()),
                Column::Int(self.new_players.clone()),
                Column::Bytes(self.players.iter().map(Vec::as_slice).collect()),
            ],
            conflict: "ON CONFLICT (granularity, bucket, board) DO UPDATE SET actions = excluded.actions, \
                       points = excluded.points, by_action = excluded.by_action, \
                       new_players = excluded.new_players, players = excluded.players",
        }
    }
}

#[derive(FromRow)]
struct UsageRow {
    granularity: String,
    bucket: i64,
    board: String,
    by_action: String,
    new_players: i64,
    players: Vec<u8>,
}

impl UsageRow {
    fn tally(self) -> Result<(Bucket, Tally), StoreError> {
        let row = format!("usage_stats row {} {} {:?}", self.granularity, self.bucket, self.board);
        let bad = |what: String| invalid(format!("{row}: {what}"));
        let bucket = Bucket {
            board: BoardId::parse(self.board.as_str()).map_err(|e| bad(e.to_string()))?,
            granularity: self.granularity.parse().map_err(|e: events::usage::UsageError| bad(e.to_string()))?,
            start: self.bucket,
        };
        let tally = Tally {
            by_action: serde_json::from_str(&self.by_action).map_err(|e| bad(format!("by_action: {e}")))?,
            new_players: from_db(self.new_players),
            players: Sketch::from_bytes(&self.players).map_err(|e| bad(e.to_string()))?,
        };
        Ok((bucket, tally))
    }
}

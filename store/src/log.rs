//! The event log on any database: the append transaction and the reads.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use events::anomaly::Flag;
use time::OffsetDateTime;
use tlog::tiles::{Edge, TilePath};
use uuid::Uuid;

use crate::append::{self, Attempt, Moderation, Originals};
use crate::rows::{CheckpointRow, EventRow, FlagRow, LockedHeadRow, OriginalRow, convert, from_db, stored, to_db};
use crate::sql::{self, Arg, Backend, Column, Notice, Write};
use crate::tree::{self, TileRows};
use crate::{AppendOutcome, Checkpoint, EventStore, KeptSigner, NewEvent, StoreError, StoredEvent};

/// The event log: the source of truth, on the database `B`.
///
/// Positions are taken under the log's append lock (PostgreSQL: the row lock of
/// `event_log_head`; SQLite: its one writer), held until commit, so batches from any number of
/// processes commit in position order and leave no gaps.
#[derive(Clone, Debug)]
pub struct EventLog<B: Backend> {
    backend: B,
    /// The right edge of the tree this process last grew: a tile never changes but by growing,
    /// so while the tree has that size (no other replica appended since) it spares reading it.
    edge: Arc<Mutex<Option<Edge>>>,
}

impl<B: Backend> EventLog<B> {
    /// The log on `backend`.
    pub fn on(backend: B) -> Self {
        Self { backend, edge: Arc::default() }
    }

    /// The database.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    async fn attempt(&self, fresh: Vec<&NewEvent>, wanted: Vec<Uuid>) -> Result<Attempt, StoreError> {
        let mut tx = self.backend.begin_write().await?;
        let (head, tree_size, moderation) = match fresh.is_empty() {
            true => (0, 0, Moderation::default()),
            false => locked_head::<B>(&mut tx, append::players_of(&fresh)).await?,
        };
        let refused = append::admit(&fresh, head, moderation);
        let admitted: Vec<&NewEvent> =
            fresh.into_iter().filter(|new| !refused.contains_key(&new.event.event_id())).collect();
        let mut grown = None;
        if !admitted.is_empty() {
            let payloads: Vec<String> = admitted.iter().map(|new| new.event.encode()).collect();
            let leaves = append::leaves(head + 1, &admitted, &payloads);
            let mut edge = self.edge_at(&mut tx, tree_size).await?;
            // The tree grows in the transaction that decides the positions (a log older than its
            // tree is hashed first).
            let mut tiles = Vec::new();
            if tree_size < head {
                let older: Vec<EventRow> =
                    B::rows(&mut tx, B::SQL.read_range, vec![Arg::Int(to_db(tree_size)), Arg::Int(to_db(head))])
                        .await?;
                let hashes: Vec<tlog::Hash> =
                    stored(older).iter().map(|e| tlog::leaf_hash(e.entry().as_bytes())).collect();
                tiles.extend(edge.append(&hashes));
            }
            tiles.extend(edge.append(&leaves));
            let new_head = head + admitted.len() as u64;
            let rows = EventRows::of(head, &admitted, &payloads, &leaves);
            let tile_rows = TileRows::of(&tiles);
            let head_text = new_head.to_string();
            let writes = [rows.write(), tile_rows.write(), head_write(new_head)];
            let notice = Notice { channel: crate::postgres::LOG_CHANNEL, payload: &head_text };
            let written = B::write(&mut tx, &writes, Some(notice)).await?;
            if written[0] < admitted.len() as u64 {
                tx.rollback().await?;
                return Ok(Attempt::Collided(self.recorded(&admitted).await?));
            }
            grown = Some(edge);
        }
        let originals = originals_of::<B>(&mut tx, wanted).await?;
        tx.commit().await?;
        if let Some(grown) = grown {
            *self.edge.lock().unwrap_or_else(PoisonError::into_inner) = Some(grown);
        }
        Ok(Attempt::Committed { head, originals, refused })
    }

    /// The edge of the tree of `size` leaves: the one this process keeps, or read.
    async fn edge_at(
        &self,
        connection: &mut <B::Db as sqlx::Database>::Connection,
        size: u64,
    ) -> Result<Edge, StoreError> {
        let kept = self.edge.lock().unwrap_or_else(PoisonError::into_inner).take();
        match kept {
            Some(edge) if edge.size() == size => Ok(edge),
            _ => tree::edge::<B>(connection, size).await,
        }
    }

    /// Which action ids of `admitted` the log holds (recorded by an earlier batch).
    async fn recorded(&self, admitted: &[&NewEvent]) -> Result<HashSet<Uuid>, StoreError> {
        let ids = admitted.iter().filter_map(|new| new.event.action_id()).collect();
        let mut connection = self.backend.reader().acquire().await?;
        let rows: Vec<(Uuid,)> = B::rows(&mut connection, B::SQL.recorded, vec![Arg::Uuids(ids)]).await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// A connection of the readers' pool.
    async fn read(&self) -> Result<sqlx::pool::PoolConnection<B::Db>, StoreError> {
        Ok(self.backend.reader().acquire().await?)
    }

    async fn events(&self, sql: &'static str, args: Vec<Arg<'_>>) -> Result<Vec<StoredEvent>, StoreError> {
        let mut connection = self.read().await?;
        Ok(stored(B::rows(&mut connection, sql, args).await?))
    }
}

/// The head, moved to `position` with the tree (which holds every event).
fn head_write<'a>(position: u64) -> Write<'a> {
    Write {
        table: "event_log_head",
        columns: &["singleton", "position", "tree_size"],
        values: vec![Column::Bool(vec![true]), Column::Int(vec![to_db(position)]), Column::Int(vec![to_db(position)])],
        conflict: "ON CONFLICT (singleton) DO UPDATE SET position = excluded.position, tree_size = excluded.tree_size",
    }
}

/// A batch of events as rows.
struct EventRows<'a> {
    events: &'a [&'a NewEvent],
    payloads: &'a [String],
    positions: Vec<i64>,
    players: Vec<String>,
    digests: Vec<Option<[u8; 32]>>,
    leaves: &'a [tlog::Hash],
}

impl<'a> EventRows<'a> {
    fn of(head: u64, events: &'a [&'a NewEvent], payloads: &'a [String], leaves: &'a [tlog::Hash]) -> Self {
        Self {
            events,
            payloads,
            positions: (1..=events.len() as u64).map(|offset| to_db(head + offset)).collect(),
            players: events.iter().map(|e| e.event.player_id().to_string()).collect(),
            digests: events.iter().map(|e| e.claims_digest).collect(),
            leaves,
        }
    }

    /// Their insert, skipping action ids already recorded: fewer rows written than events means
    /// a collision.
    fn write(&self) -> Write<'_> {
        let events = self.events;
        Write {
            table: "events",
            columns: &[
                "position",
                "event_id",
                "action_id",
                "event_type",
                "event_version",
                "player_id",
                "payload",
                "claims_digest",
                "recorded_at",
                "leaf_hash",
            ],
            values: vec![
                Column::Int(self.positions.clone()),
                Column::Uuid(events.iter().map(|e| e.event.event_id()).collect()),
                Column::OptUuid(events.iter().map(|e| e.event.action_id()).collect()),
                Column::Text(events.iter().map(|e| e.event.event_type()).collect()),
                Column::Int(events.iter().map(|e| i64::from(e.event.version())).collect()),
                Column::Text(self.players.iter().map(String::as_str).collect()),
                Column::Json(self.payloads.iter().map(String::as_str).collect()),
                Column::OptBytes(self.digests.iter().map(|d| d.as_ref().map(|d| &d[..])).collect()),
                Column::Time(events.iter().map(|e| e.event.recorded_at()).collect()),
                Column::Bytes(self.leaves.iter().map(|h| &h[..]).collect()),
            ],
            conflict: "ON CONFLICT (action_id) DO NOTHING",
        }
    }
}

/// Takes the log's append lock: the head, the tree's size, and the moderation of `players` at
/// the head, read in the statement that takes the lock (again after it, when an append committed
/// while the lock was awaited).
async fn locked_head<B: Backend>(
    connection: &mut <B::Db as sqlx::Database>::Connection,
    players: Vec<String>,
) -> Result<(u64, u64, Moderation), StoreError> {
    let names: Vec<&str> = players.iter().map(String::as_str).collect();
    let rows: Vec<LockedHeadRow> = B::rows(connection, B::SQL.lock_head, vec![Arg::Texts(names.clone())]).await?;
    let first = rows.first().ok_or_else(|| StoreError::InvalidRow("no head of the log".into()))?;
    let (head, tree_size, seen) = (from_db(first.head), from_db(first.tree_size), from_db(first.seen));
    let moderation: Vec<StoredEvent> = if seen == head {
        rows.into_iter().filter_map(|row| row.event.event()).collect()
    } else {
        stored(B::rows(connection, B::SQL.moderation, vec![Arg::Texts(names)]).await?)
    };
    let events = moderation.iter().map(StoredEvent::decoded).collect::<Result<Vec<_>, _>>()?;
    Ok((head, tree_size, Moderation::of(&events)))
}

async fn originals_of<B: Backend>(
    connection: &mut <B::Db as sqlx::Database>::Connection,
    action_ids: Vec<Uuid>,
) -> Result<Originals, StoreError> {
    if action_ids.is_empty() {
        return Ok(Originals::new());
    }
    let rows: Vec<OriginalRow> = B::rows(connection, B::SQL.originals, vec![Arg::Uuids(action_ids)]).await?;
    rows.into_iter()
        .map(|row| Ok((row.action_id, (StoredEvent::from(row.event).decoded()?, row.claims_digest))))
        .collect()
}

impl<B: Backend> EventStore for EventLog<B> {
    fn apart(&self, connections: u32) -> Self {
        Self::on(self.backend.readers_apart(connections))
    }

    async fn append(&self, batch: &[NewEvent]) -> Result<Vec<AppendOutcome>, StoreError> {
        append::append_with(batch, |fresh, wanted| self.attempt(fresh, wanted)).await
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let (head, _): (i64, i64) = sql::one::<B, _>(&mut *self.read().await?, B::SQL.head, vec![]).await?;
        Ok(from_db(head))
    }

    async fn read_after(&self, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        self.events(B::SQL.read_after, vec![Arg::Int(to_db(after)), Arg::Int(i64::from(limit))]).await
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<StoredEvent>, StoreError> {
        Ok(self.events(B::SQL.read_event, vec![Arg::Uuid(event_id)]).await?.into_iter().next())
    }

    async fn read_player(&self, player_id: &str, after: u64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let args = vec![Arg::Text(player_id), Arg::Int(to_db(after)), Arg::Int(i64::from(limit))];
        self.events(B::SQL.read_player, args).await
    }

    async fn flags(&self, limit: u32) -> Result<Vec<Flag>, StoreError> {
        let rows: Vec<FlagRow> =
            B::rows(&mut *self.read().await?, B::SQL.flags, vec![Arg::Int(i64::from(limit))]).await?;
        convert(rows)
    }

    async fn usage(&self, window: &events::usage::Window) -> Result<crate::UsageStats, StoreError> {
        crate::usage::read(&self.backend, window).await
    }

    async fn position_at(&self, time: OffsetDateTime) -> Result<u64, StoreError> {
        let found: Option<(i64,)> =
            sql::row::<B, _>(&mut *self.read().await?, B::SQL.position_at, vec![Arg::Time(time)]).await?;
        Ok(found.map_or(0, |(position,)| from_db(position)))
    }

    async fn tree_size(&self) -> Result<u64, StoreError> {
        let (_, size): (i64, i64) = sql::one::<B, _>(&mut *self.read().await?, B::SQL.head, vec![]).await?;
        Ok(from_db(size))
    }

    async fn read_nodes(&self, nodes: &[tlog::Node]) -> Result<HashMap<tlog::Node, tlog::Hash>, StoreError> {
        tree::nodes::<B>(&mut *self.read().await?, nodes).await
    }

    async fn read_tile(&self, path: TilePath, tree_size: u64) -> Result<Option<Vec<u8>>, StoreError> {
        tree::resource::<B>(&mut *self.read().await?, path, tree_size).await
    }

    async fn keep_signer(&self, signer: &KeptSigner, replace: bool) -> Result<KeptSigner, StoreError> {
        let mut tx = self.backend.begin_write().await?;
        let keep = if replace { B::SQL.replace_signer } else { B::SQL.keep_signer };
        let args = vec![Arg::Text(&signer.verifier), Arg::OptText(signer.private_key.as_deref())];
        B::execute(&mut tx, keep, args).await?;
        let (verifier, private_key): (String, Option<String>) =
            sql::one::<B, _>(&mut tx, B::SQL.signer, vec![]).await?;
        tx.commit().await?;
        Ok(KeptSigner { verifier, private_key })
    }

    async fn verifier_key(&self) -> Result<Option<String>, StoreError> {
        let kept: Option<(String, Option<String>)> =
            sql::row::<B, _>(&mut *self.read().await?, B::SQL.signer, vec![]).await?;
        Ok(kept.map(|(verifier, _)| verifier))
    }

    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let args =
            vec![Arg::Int(to_db(checkpoint.tree_size)), Arg::Bytes(&checkpoint.root_hash), Arg::Text(&checkpoint.note)];
        let mut connection = self.backend.writer().acquire().await?;
        B::execute(&mut connection, B::SQL.save_checkpoint, args).await?;
        Ok(())
    }

    async fn checkpoints(&self, after_size: u64, limit: u32) -> Result<Vec<Checkpoint>, StoreError> {
        let args = vec![Arg::Int(to_db(after_size)), Arg::Int(i64::from(limit))];
        let rows: Vec<CheckpointRow> = B::rows(&mut *self.read().await?, B::SQL.checkpoints, args).await?;
        convert(rows)
    }

    async fn latest_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let row: Option<CheckpointRow> =
            sql::row::<B, _>(&mut *self.read().await?, B::SQL.latest_checkpoint, vec![]).await?;
        row.map(Checkpoint::try_from).transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: (i32,) = sql::one::<B, _>(&mut *self.read().await?, B::SQL.ping, vec![]).await?;
        Ok(())
    }
}

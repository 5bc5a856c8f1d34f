//! The Merkle tree in the database, as C2SP tiles (`tlog::tiles`): each event's leaf hash in
//! its own row (level 0), and the tiles of level 1 and above as rows that grow until full.

use std::collections::{BTreeMap, HashMap};

use sqlx::Database;
use tlog::tiles::{Edge, Tile, TilePath, WIDTH};
use tlog::{Hash, Node};

use crate::StoreError;
use crate::rows::{LeafRow, TileRow, to_db};
use crate::sql::{Arg, Backend, Column, Write};

type Connection<B> = <<B as Backend>::Db as Database>::Connection;

/// The leaf hashes of positions `(after, through]` the tree holds, in order.
pub(crate) async fn leaves<B: Backend>(
    connection: &mut Connection<B>,
    after: u64,
    through: u64,
) -> Result<Vec<(u64, Hash)>, StoreError> {
    let rows: Vec<LeafRow> =
        B::rows(connection, B::SQL.leaves, vec![Arg::Int(to_db(after)), Arg::Int(to_db(through))]).await?;
    rows.iter().map(LeafRow::leaf).collect()
}

/// The stored tiles of level 1 and above among `tiles`, as wide as they are.
pub(crate) async fn tiles<B: Backend>(
    connection: &mut Connection<B>,
    tiles: &[Tile],
) -> Result<HashMap<Tile, Vec<Hash>>, StoreError> {
    if tiles.is_empty() {
        return Ok(HashMap::new());
    }
    let levels = tiles.iter().map(|t| i64::from(t.level)).collect();
    let indexes = tiles.iter().map(|t| to_db(t.index)).collect();
    let rows: Vec<TileRow> = B::rows(connection, B::SQL.tiles, vec![Arg::Ints(levels), Arg::Ints(indexes)]).await?;
    rows.into_iter().map(TileRow::tile).collect()
}

/// The hashes of tile `tile` (any level) as far as the tree holds them.
async fn tile_hashes<B: Backend>(connection: &mut Connection<B>, tile: Tile) -> Result<Vec<Hash>, StoreError> {
    if tile.level == 0 {
        let first = tile.index * WIDTH as u64;
        let leaves = leaves::<B>(connection, first, first + WIDTH as u64).await?;
        return Ok(leaves.into_iter().map(|(_, hash)| hash).collect());
    }
    Ok(tiles::<B>(connection, &[tile]).await?.remove(&tile).unwrap_or_default())
}

/// The right edge of the tree of `size` leaves, read from its partial tiles.
pub(crate) async fn edge<B: Backend>(connection: &mut Connection<B>, size: u64) -> Result<Edge, StoreError> {
    let mut hashes = Vec::new();
    for (tile, width) in Edge::tiles(size) {
        let mut tile_hashes = tile_hashes::<B>(connection, tile).await?;
        tile_hashes.truncate(width);
        hashes.push(tile_hashes);
    }
    Edge::from_tiles(size, hashes)
        .ok_or_else(|| StoreError::InvalidRow(format!("the tiles of the tree of size {size}")))
}

/// The hashes of `nodes` the tree holds; the others are absent.
pub(crate) async fn nodes<B: Backend>(
    connection: &mut Connection<B>,
    nodes: &[Node],
) -> Result<HashMap<Node, Hash>, StoreError> {
    // Leaves in one read; other nodes of level-0 tiles from the leaves they span, one read per
    // tile; the rest from the stored tiles.
    let mut single = Vec::new();
    let mut spans: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut stored = Vec::new();
    for &node in nodes {
        let (tile, _) = Tile::of(node);
        if node.level == 0 {
            single.push(to_db(node.index + 1));
        } else if tile.level == 0 {
            let (start, end) = node.leaves();
            let span = spans.entry(tile.index).or_insert((start, end));
            *span = (span.0.min(start), span.1.max(end));
        } else {
            stored.push(tile);
        }
    }
    // Leaf `i` is the event at position `i + 1`.
    let mut leaves_held: HashMap<u64, Hash> = HashMap::new();
    if !single.is_empty() {
        let rows: Vec<LeafRow> = B::rows(connection, B::SQL.leaves_at, vec![Arg::Ints(single)]).await?;
        for row in &rows {
            let (position, hash) = row.leaf()?;
            leaves_held.insert(position - 1, hash);
        }
    }
    for (start, end) in spans.into_values() {
        leaves_held.extend(leaves::<B>(connection, start, end).await?.into_iter().map(|(p, h)| (p - 1, h)));
    }
    stored.sort_unstable();
    stored.dedup();
    let held = tiles::<B>(connection, &stored).await?;
    let mut found = HashMap::with_capacity(nodes.len());
    for &node in nodes {
        let hash = match Tile::of(node) {
            (tile, _) if tile.level == 0 => {
                let (start, end) = node.leaves();
                (start..end)
                    .map(|i| leaves_held.get(&i).copied())
                    .collect::<Option<Vec<Hash>>>()
                    .map(|l| tlog::root_of(&l))
            }
            (tile, _) => held.get(&tile).and_then(|hashes| tlog::tiles::node_in_tile(node, hashes)),
        };
        found.extend(hash.map(|hash| (node, hash)));
    }
    Ok(found)
}

/// The bytes of the tile resource `path` of a tree of `size` leaves: `None` when the tree does
/// not have it (yet).
pub(crate) async fn resource<B: Backend>(
    connection: &mut Connection<B>,
    path: TilePath,
    size: u64,
) -> Result<Option<Vec<u8>>, StoreError> {
    let (tile, width) = match path {
        TilePath::Hashes { tile, width } => (tile, width),
        TilePath::Entries { index, width } => (Tile { level: 0, index }, width),
    };
    if tile.width_at(size) < width {
        return Ok(None);
    }
    if let TilePath::Entries { index, width } = path {
        let first = index * WIDTH as u64;
        let rows: Vec<crate::rows::EventRow> =
            B::rows(connection, B::SQL.read_range, vec![Arg::Int(to_db(first)), Arg::Int(to_db(first + width as u64))])
                .await?;
        let entries: Vec<String> = crate::rows::stored(rows).iter().map(crate::StoredEvent::entry).collect();
        return Ok((entries.len() == width).then(|| tlog::tiles::entry_bundle(entries.iter().map(String::as_bytes))));
    }
    let hashes = tile_hashes::<B>(connection, tile).await?;
    Ok(hashes.get(..width).map(|hashes| hashes.concat()))
}

/// Tiles as rows, their bytes kept here while a [`Write`] borrows them.
pub(crate) struct TileRows {
    levels: Vec<i64>,
    indexes: Vec<i64>,
    bytes: Vec<Vec<u8>>,
}

impl TileRows {
    pub(crate) fn of(tiles: &[(Tile, Vec<Hash>)]) -> Self {
        Self {
            levels: tiles.iter().map(|(t, _)| i64::from(t.level)).collect(),
            indexes: tiles.iter().map(|(t, _)| to_db(t.index)).collect(),
            bytes: tiles.iter().map(|(_, hashes)| hashes.concat()).collect(),
        }
    }

    /// Their write: a tile there already only grows (the database refuses anything else).
    pub(crate) fn write(&self) -> Write<'_> {
        Write {
            table: "tiles",
            columns: &["level", "idx", "hashes"],
            values: vec![
                Column::Int(self.levels.clone()),
                Column::Int(self.indexes.clone()),
                Column::Bytes(self.bytes.iter().map(Vec::as_slice).collect()),
            ],
            conflict: "ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes",
        }
    }
}

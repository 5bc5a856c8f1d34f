//! The tree as C2SP `tlog-tiles` lays it out: a tile at level `L` holds up to 256 consecutive
//! hashes of the tree's level `8·L` (level 0: the leaf hashes), so any node is one tile away,
//! and the tile paths `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]` let standard tile
//! clients read and verify the log without any API of ours.
//!
//! The stores keep the leaf hashes (level 0) beside the events they hash, and the tiles of
//! level 1 and above as rows that grow until they are full; an [`Edge`] is what an append
//! needs of the tree: the partial tile at the right edge of every level.

use std::ops::Range;

use crate::{Hash, Node, empty_root, node_hash, root_of};

/// Hashes in a full tile.
pub const WIDTH: usize = 256;

/// Tree levels a tile spans.
pub const HEIGHT: u8 = 8;

/// The highest tile level a path may name (C2SP: 0 to 63).
const MAX_LEVEL: u8 = 63;

/// A tile of hashes: level `L` holds the tree's nodes at level `8·L`, and index `N` those of
/// them from `N·256` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tile {
    /// `L`.
    pub level: u8,
    /// `N`.
    pub index: u64,
}

impl Tile {
    /// The tile holding the hashes `node` is made of, and their range in it.
    pub fn of(node: Node) -> (Self, Range<usize>) {
        let level = node.level / HEIGHT;
        let span = node.level - level * HEIGHT;
        let first = node.index << span;
        let start = (first % WIDTH as u64) as usize;
        (Self { level, index: first / WIDTH as u64 }, start..start + (1 << span))
    }

    /// How many hashes this tile has in a tree of `size` leaves (0: none yet; [`WIDTH`]: full).
    pub fn width_at(self, size: u64) -> usize {
        let hashes = size.checked_shr(u32::from(self.level) * u32::from(HEIGHT)).unwrap_or(0);
        hashes.saturating_sub(self.index.saturating_mul(WIDTH as u64)).min(WIDTH as u64) as usize
    }
}

/// The hash of `node`, from `hashes`: the first hashes of the tile [`Tile::of`] names. `None`
/// when the tile does not hold all of them yet.
pub fn node_in_tile(node: Node, hashes: &[Hash]) -> Option<Hash> {
    let (_, range) = Tile::of(node);
    hashes.get(range).map(root_of)
}

/// A resource of the tile API, as its path (after `tile/`) names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TilePath {
    /// `<L>/<N>[.p/<W>]`: `width` hashes of a tile.
    Hashes {
        /// The tile.
        tile: Tile,
        /// 1–255 for a partial tile, [`WIDTH`] for a full one.
        width: usize,
    },
    /// `entries/<N>[.p/<W>]`: the entries of the leaves of level-0 tile `index`.
    Entries {
        /// `N`.
        index: u64,
        /// 1–255 for a partial bundle, [`WIDTH`] for a full one.
        width: usize,
    },
}

impl TilePath {
    /// Reads a path after `tile/`, accepting only the canonical form C2SP prescribes.
    ///
    /// ```
    /// use tlog::tiles::{Tile, TilePath};
    /// assert_eq!(
    ///     TilePath::parse("1/x001/x234/067.p/5"),
    ///     Some(TilePath::Hashes { tile: Tile { level: 1, index: 1_234_067 }, width: 5 })
    /// );
    /// assert_eq!(TilePath::parse("entries/000"), Some(TilePath::Entries { index: 0, width: 256 }));
    /// assert_eq!(TilePath::parse("01/000"), None);
    /// ```
    pub fn parse(path: &str) -> Option<Self> {
        let (level, rest) = path.split_once('/')?;
        let (index, width) = match rest.split_once(".p/") {
            Some((index, width)) => (index, parse_width(width)?),
            None => (rest, WIDTH),
        };
        let index = parse_index(index)?;
        if level == "entries" {
            return Some(Self::Entries { index, width });
        }
        let level: u8 = canonical_number(level)?.try_into().ok().filter(|l| *l <= MAX_LEVEL)?;
        Some(Self::Hashes { tile: Tile { level, index }, width })
    }

    /// The path after `tile/`, as [`TilePath::parse`] reads it.
    pub fn path(self) -> String {
        let (head, index, width) = match self {
            Self::Hashes { tile, width } => (tile.level.to_string(), tile.index, width),
            Self::Entries { index, width } => ("entries".to_string(), index, width),
        };
        let partial = if width < WIDTH { format!(".p/{width}") } else { String::new() };
        format!("{head}/{}{partial}", encode_index(index))
    }
}

/// `N` as zero-padded groups of three digits, all but the last prefixed with `x`.
fn encode_index(index: u64) -> String {
    let mut groups = vec![format!("{:03}", index % 1000)];
    let mut rest = index / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn parse_index(text: &str) -> Option<u64> {
    let groups: Vec<&str> = text.split('/').collect();
    let (last, leading) = groups.split_last()?;
    let mut index: u64 = 0;
    for (position, group) in leading.iter().map(|g| g.strip_prefix('x')).chain([Some(*last)]).enumerate() {
        let group = group?;
        if group.len() != 3 || !group.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // A leading group of zeros would be another spelling of the same index.
        if position == 0 && !leading.is_empty() && group == "000" {
            return None;
        }
        index = index.checked_mul(1000)?.checked_add(group.parse::<u64>().ok()?)?;
    }
    Some(index)
}

fn parse_width(text: &str) -> Option<usize> {
    canonical_number(text).map(|w| w as usize).filter(|w| (1..WIDTH).contains(w))
}

/// A decimal number without leading zeros (other than `0` itself).
fn canonical_number(text: &str) -> Option<u64> {
    let canonical =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// The right edge of the tree: at every level, the hashes of its partial tile (fewer than 256).
/// What an append needs of the tree to grow it, and all it needs to know its root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edge {
    size: u64,
    /// `partial[L]`: the hashes of the partial tile at level `L`, in order.
    partial: Vec<Vec<Hash>>,
}

impl Edge {
    /// The edge of the empty tree.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The partial tiles the edge of a tree of `size` leaves is made of, from level 0 up, with
    /// their widths (none of them 0).
    pub fn tiles(size: u64) -> Vec<(Tile, usize)> {
        (0..=MAX_LEVEL)
            .map_while(|level| {
                let hashes = size.checked_shr(u32::from(level) * u32::from(HEIGHT)).filter(|h| *h > 0)?;
                Some((Tile { level, index: hashes / WIDTH as u64 }, (hashes % WIDTH as u64) as usize))
            })
            .filter(|(_, width)| *width > 0)
            .collect()
    }

    /// The edge of a tree of `size` leaves, from the hashes of the tiles [`Edge::tiles`] names,
    /// in that order; `None` when one is not as wide as its tile must be.
    pub fn from_tiles(size: u64, hashes: Vec<Vec<Hash>>) -> Option<Self> {
        let tiles = Self::tiles(size);
        if tiles.len() != hashes.len() || tiles.iter().zip(&hashes).any(|((_, width), h)| h.len() != *width) {
            return None;
        }
        let levels = tiles.last().map_or(0, |(tile, _)| usize::from(tile.level) + 1);
        let mut partial = vec![Vec::new(); levels];
        for ((tile, _), hashes) in tiles.into_iter().zip(hashes) {
            partial[usize::from(tile.level)] = hashes;
        }
        Some(Self { size, partial })
    }

    /// How many leaves the tree has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `leaves`; returns the tiles of level 1 and above that they change, each with all
    /// its hashes so far (a tile that fills is returned full, once).
    pub fn append(&mut self, leaves: &[Hash]) -> Vec<(Tile, Vec<Hash>)> {
        let mut changed: Vec<(Tile, Vec<Hash>)> = Vec::new();
        for leaf in leaves {
            let mut hash = *leaf;
            let mut level = 0usize;
            loop {
                if self.partial.len() <= level {
                    self.partial.push(Vec::new());
                }
                let hashes_before = self.size >> (level * usize::from(HEIGHT));
                let tile = Tile { level: level as u8, index: hashes_before / WIDTH as u64 };
                self.partial[level].push(hash);
                let full = self.partial[level].len() == WIDTH;
                if level > 0 {
                    match changed.last_mut() {
                        Some((last, hashes)) if *last == tile => hashes.clone_from(&self.partial[level]),
                        _ => {
                            changed.retain(|(t, _)| *t != tile);
                            changed.push((tile, self.partial[level].clone()));
                        }
                    }
                }
                if !full {
                    break;
                }
                hash = root_of(&self.partial[level]);
                self.partial[level].clear();
                level += 1;
            }
            self.size += 1;
        }
        changed.sort_unstable_by_key(|(tile, _)| *tile);
        changed
    }

    /// The root of the tree (RFC 9162's MTH of all its leaves).
    pub fn root(&self) -> Hash {
        // The perfect subtrees of the right edge, largest first: each partial tile's hashes
        // split by the bits of its width.
        let mut subtrees = Vec::new();
        for hashes in self.partial.iter().rev() {
            let mut start = 0;
            for bit in (0..HEIGHT).rev() {
                let span = 1usize << bit;
                if hashes.len() & span != 0 {
                    subtrees.push(root_of(&hashes[start..start + span]));
                    start += span;
                }
            }
        }
        let mut right_to_left = subtrees.into_iter().rev();
        match right_to_left.next() {
            None => empty_root(),
            Some(last) => right_to_left.fold(last, |right, left| node_hash(&left, &right)),
        }
    }
}

/// An entry bundle: each entry as a big-endian `u16` length and its bytes.
///
/// # Panics
/// When an entry is longer than 65 535 bytes (an event never is).
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut bundle = Vec::new();
    for entry in entries {
        let length = u16::try_from(entry.len()).expect("an entry fits a bundle");
        bundle.extend_from_slice(&length.to_be_bytes());
        bundle.extend_from_slice(entry);
    }
    bundle
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::{Plan, leaf_hash};

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn paths_are_written_and_read_as_c2sp_spells_them() {
        let cases = [(0, "000"), (5, "005"), (999, "999"), (1000, "x001/000"), (1_234_067, "x001/x234/067")];
        for (index, encoded) in cases {
            let path = TilePath::Hashes { tile: Tile { level: 2, index }, width: WIDTH };
            assert_eq!(path.path(), format!("2/{encoded}"));
            assert_eq!(TilePath::parse(&path.path()), Some(path));
            let partial = TilePath::Entries { index, width: 17 };
            assert_eq!(partial.path(), format!("entries/{encoded}.p/17"));
            assert_eq!(TilePath::parse(&partial.path()), Some(partial));
        }
        for wrong in [
            "01/000",
            "0/00",
            "0/0000",
            "0/x000/005",
            "0/001.p/256",
            "0/001.p/0",
            "0/001.p/05",
            "64/000",
            "0/x1/000",
            "a/000",
            "0/000/",
        ] {
            assert_eq!(TilePath::parse(wrong), None, "{wrong}");
        }
    }

    #[test]
    fn a_tree_of_70000_has_the_partial_tiles_the_spec_names() {
        let tiles = Edge::tiles(70_000);
        assert_eq!(
            tiles,
            [(Tile { level: 0, index: 273 }, 112), (Tile { level: 1, index: 1 }, 17), (Tile { level: 2, index: 0 }, 1)]
        );
        assert_eq!(Edge::tiles(256), [(Tile { level: 1, index: 0 }, 1)]);
        assert_eq!(Tile { level: 1, index: 0 }.width_at(70_000), WIDTH);
        assert_eq!(Tile { level: 1, index: 1 }.width_at(70_000), 17);
        assert_eq!(Tile { level: 1, index: 2 }.width_at(70_000), 0);
    }

    /// Every stored tile of a tree grown by `cuts`, and its edge.
    fn grow(total: u64, cuts: &[u64]) -> (Edge, BTreeMap<Tile, Vec<Hash>>) {
        let all = leaves(total);
        let mut stored: BTreeMap<Tile, Vec<Hash>> = BTreeMap::new();
        let mut edge = Edge::empty();
        let mut cuts: Vec<u64> = cuts.iter().map(|c| (*c).min(total)).chain([total]).collect();
        cuts.sort_unstable();
        for cut in cuts {
            let from = edge.size() as usize;
            for (tile, hashes) in edge.append(&all[from..cut as usize]) {
                if let Some(before) = stored.get(&tile) {
                    assert!(hashes.starts_with(before), "a tile only grows");
                }
                stored.insert(tile, hashes);
            }
            assert_eq!(edge.root(), root_of(&all[..cut as usize]), "the root at {cut}");
        }
        // Level 0 is the leaves themselves.
        for (index, chunk) in all.chunks(WIDTH).enumerate() {
            stored.insert(Tile { level: 0, index: index as u64 }, chunk.to_vec());
        }
        (edge, stored)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// However the tree grows, its tiles give every node, its edge read back from the tiles
        /// is the edge it has, and the edge's root is the tree's.
        #[test]
        fn tiles_hold_every_node_of_the_tree(total in 0u64..70_000, cuts in proptest::collection::vec(0u64..70_000, 0..5)) {
            let (edge, stored) = grow(total, &cuts);
            let all = leaves(total);
            let read = |node: Node| {
                let (tile, _) = Tile::of(node);
                node_in_tile(node, stored.get(&tile).map_or(&[][..], Vec::as_slice))
            };
            if total > 0 {
                let plan = Plan::root(total);
                let nodes = plan.nodes().into_iter().map(|n| (n, read(n).unwrap())).collect();
                prop_assert_eq!(plan.hashes(&nodes).unwrap()[0], root_of(&all));
            }
            let edge_tiles = Edge::tiles(total)
                .into_iter()
                .map(|(tile, width)| stored[&tile][..width].to_vec())
                .collect();
            prop_assert_eq!(Edge::from_tiles(total, edge_tiles), Some(edge));
        }
    }

    #[test]
    fn a_node_is_one_tile_away() {
        let (_, stored) = grow(70_000, &[]);
        let all = leaves(70_000);
        for node in [
            Node { level: 0, index: 300 },
            Node { level: 3, index: 17 },
            Node { level: 8, index: 1 },
            Node { level: 13, index: 1 },
            Node { level: 16, index: 0 },
        ] {
            let (start, end) = node.leaves();
            let (tile, _) = Tile::of(node);
            assert_eq!(
                node_in_tile(node, &stored[&tile]),
                Some(root_of(&all[start as usize..end as usize])),
                "{node:?}"
            );
        }
        // A node the partial tile does not cover yet.
        assert_eq!(node_in_tile(Node { level: 8, index: 273 }, &stored[&Tile { level: 1, index: 1 }]), None);
    }

    #[test]
    fn entries_are_bundled_with_a_big_endian_length() {
        assert_eq!(entry_bundle([&b"ab"[..], &b""[..]]), [0, 2, b'a', b'b', 0, 0]);
    }
}

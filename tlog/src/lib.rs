//! The verifiable log, free of I/O: an RFC 9162 (Certificate Transparency v2) Merkle tree over
//! the events of the log, in the form the stores keep it and the services prove it.
//!
//! - Event at position `p` is leaf `p - 1`; its leaf hash is `SHA-256(0x00 ‖ entry)`, where the
//!   entry ([`entry`]) is built from the exact bytes stored for the event.
//! - The stores keep the hash of every *perfect* subtree, a [`Node`]: `2^level` leaves from
//!   `index · 2^level` on. Appending leaves completes some of them ([`append`]), reading only the
//!   log's current perfect subtrees ([`frontier`]).
//! - Every subtree the RFC's recursion names is a run of perfect nodes of descending size, so a
//!   tree head or a proof at any size is computed from `O(log² n)` stored nodes ([`Plan`]), never
//!   from the whole log.
//! - [`verify_inclusion`] and [`verify_consistency`] are RFC 9162 §2.1.3.2 and §2.1.4.2, for
//!   auditors and for `verify-log`.

use std::collections::{BTreeSet, HashMap};

use sha2::{Digest as _, Sha256};

pub mod note;
pub mod tiles;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: `SHA-256()` (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// `SHA-256(0x00 ‖ entry)`: the hash of a leaf.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The bytes a leaf hashes for the event at `position`: its type, version and position, and its
/// payload exactly as stored (never re-serialised), as one JSON object:
/// `{"position":7,"type":"ScoreAwarded","version":1,"data":<payload>}`.
pub fn entry(position: u64, event_type: &str, version: i32, payload: &str) -> String {
    format!(r#"{{"position":{position},"type":"{event_type}","version":{version},"data":{payload}}}"#)
}

/// A perfect subtree: the `2^level` leaves from `index · 2^level` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node {
    /// Height above the leaves (0: a leaf).
    pub level: u8,
    /// Place among the subtrees of its level, from the left.
    pub index: u64,
}

impl Node {
    /// The first leaf it covers.
    fn start(self) -> u64 {
        self.index << self.level
    }
}

/// The perfect subtrees whose run makes the leaves `[start, end)`, largest first. For every
/// range the RFC's recursion names, `start` is a multiple of the first one's size.
fn run(mut start: u64, end: u64) -> Vec<Node> {
    let mut nodes = Vec::new();
    while start < end {
        let level = (end - start).ilog2() as u8;
        let level = level.min(start.trailing_zeros().min(63) as u8);
        nodes.push(Node { level, index: start >> level });
        start += 1 << level;
    }
    nodes
}

/// The perfect subtrees of a tree of `size` leaves (its "frontier"), left to right: what
/// [`append`] needs of the existing tree.
pub fn frontier(size: u64) -> Vec<Node> {
    run(0, size)
}

/// The nodes that appending `leaves` to a tree of `size` leaves completes, the leaves included,
/// given the hashes of the tree's [`frontier`] in its order.
///
/// # Panics
/// When `frontier_hashes` is not as long as `frontier(size)`.
pub fn append(size: u64, frontier_hashes: &[Hash], leaves: &[Hash]) -> Vec<(Node, Hash)> {
    let frontier = frontier(size);
    assert_eq!(frontier.len(), frontier_hashes.len(), "one hash per frontier node");
    // Pending perfect subtrees of the right edge, as a stack of (level, hash), largest first.
    let mut stack: Vec<(u8, Hash)> = frontier.iter().map(|n| n.level).zip(frontier_hashes.iter().copied()).collect();
    let mut completed = Vec::with_capacity(leaves.len() * 2);
    for (offset, leaf) in leaves.iter().enumerate() {
        let index = size + offset as u64;
        completed.push((Node { level: 0, index }, *leaf));
        let (mut level, mut hash) = (0u8, *leaf);
        while let Some(&(top, left)) = stack.last() {
            if top != level {
                break;
            }
            stack.pop();
            hash = node_hash(&left, &hash);
            level += 1;
            completed.push((Node { level, index: index >> level }, hash));
        }
        stack.push((level, hash));
    }
    completed
}

/// Which stored nodes a set of subtree hashes needs, and how to combine them: build it from
/// the ranges of a tree head or a proof, fetch [`Plan::nodes`] in one read, then [`Plan::hashes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    ranges: Vec<(u64, u64)>,
}

impl Plan {
    /// The root of the tree of `size` leaves (`size > 0`).
    pub fn root(size: u64) -> Self {
        Self { ranges: vec![(0, size)] }
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1);
    /// `None` unless `index < size`.
    pub fn inclusion(index: u64, size: u64) -> Option<Self> {
        (index < size).then(|| {
            let mut ranges = Vec::new();
            path(index, 0, size, &mut ranges);
            Self { ranges }
        })
    }

    /// The consistency proof from the tree of `from` leaves to the tree of `to` (RFC 9162
    /// §2.1.4.1); `None` unless `0 < from <= to`.
    pub fn consistency(from: u64, to: u64) -> Option<Self> {
        (0 < from && from <= to).then(|| {
            let mut ranges = Vec::new();
            subproof(from, 0, to, true, &mut ranges);
            Self { ranges }
        })
    }

    /// Every stored node the hashes are made of, each once.
    pub fn nodes(&self) -> Vec<Node> {
        let nodes: BTreeSet<Node> = self.ranges.iter().flat_map(|&(start, end)| run(start, end)).collect();
        nodes.into_iter().collect()
    }

    /// The hashes, in proof order, from the stored `nodes`; `None` if one is missing.
    pub fn hashes(&self, nodes: &HashMap<Node, Hash>) -> Option<Vec<Hash>> {
        self.ranges
            .iter()
            .map(|&(start, end)| {
                let run = run(start, end);
                let (last, rest) = run.split_last()?;
                let mut hash = *nodes.get(last)?;
                for node in rest.iter().rev() {
                    hash = node_hash(nodes.get(node)?, &hash);
                }
                Some(hash)
            })
            .collect()
    }
}

/// The largest power of two smaller than `n` (`n > 1`).
fn split(n: u64) -> u64 {
    1 << (n - 1).ilog2()
}

/// RFC 9162 `PATH(m, D[start:end])`, as the ranges whose hashes form it.
fn path(m: u64, start: u64, end: u64, out: &mut Vec<(u64, u64)>) {
    let n = end - start;
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m - start < k {
        path(m, start, start + k, out);
        out.push((start + k, end));
    } else {
        path(m, start + k, end, out);
        out.push((start, start + k));
    }
}

/// RFC 9162 `SUBPROOF(m, D[start:end], b)`, as ranges.
fn subproof(m: u64, start: u64, end: u64, whole: bool, out: &mut Vec<(u64, u64)>) {
    let n = end - start;
    if m == n {
        if !whole {
            out.push((start, end));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, start, start + k, whole, out);
        out.push((start + k, end));
    } else {
        subproof(m - k, start + k, end, false, out);
        out.push((start, start + k));
    }
}

/// The root of the tree of `leaves` by RFC 9162's recursive definition (MTH), computed in
/// memory: what `verify-log` recomputes, and the reference the stored nodes are checked against.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            let k = split(leaves.len() as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// Whether `proof` shows that `leaf` is leaf `index` of the tree of `size` with `root`
/// (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s, mut r) = (index, size - 1, *leaf);
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Whether `proof` shows that the tree of `from` leaves with root `from_root` is a prefix of
/// the tree of `to` leaves with root `to_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(from: u64, to: u64, proof: &[Hash], from_root: &Hash, to_root: &Hash) -> bool {
    if from > to {
        return false;
    }
    if from == to {
        return proof.is_empty() && from_root == to_root;
    }
    if from == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*from_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut f, mut s) = (from - 1, to - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *from_root && sr == *to_root && s == 0
}

/// A tree built leaf by leaf in `O(log n)` memory: what an auditor keeps while reading the log
/// from the first event on, to compare the tree head at each checkpoint's size.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    /// The perfect subtrees of the right edge, largest first.
    stack: Vec<(u8, Hash)>,
}

impl Frontier {
    /// How many leaves it holds.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends `leaf`.
    pub fn push(&mut self, leaf: Hash) {
        let (mut level, mut hash) = (0u8, leaf);
        while let Some(&(top, left)) = self.stack.last() {
            if top != level {
                break;
            }
            self.stack.pop();
            hash = node_hash(&left, &hash);
            level += 1;
        }
        self.stack.push((level, hash));
        self.size += 1;
    }

    /// The root of the tree of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.stack.iter().rev().map(|&(_, hash)| hash);
        match subtrees.next() {
            None => empty_root(),
            Some(last) => subtrees.fold(last, |right, left| node_hash(&left, &right)),
        }
    }
}

/// The stored node for a leaf: where a store finds the leaf hash of the event at `position`.
pub fn leaf_node(position: u64) -> Node {
    Node { level: 0, index: position - 1 }
}

impl Node {
    /// The leaves it covers, `[start, end)`.
    pub fn leaves(self) -> (u64, u64) {
        (self.start(), self.start() + (1 << self.level))
    }
}

#[cfg(test)]
mod tests;

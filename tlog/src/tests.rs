//! The tree against the published test vectors of RFC 6962 trees (the eight leaves of
//! Certificate Transparency's reference tests, as transparency-dev/merkle carries them), and
//! every proof of small trees against the RFC's recursive definitions computed in memory.

use std::collections::HashMap;

use super::*;

fn h(hex: &str) -> Hash {
    hex::decode(hex).unwrap().try_into().unwrap()
}

/// The reference tree's leaf inputs.
fn inputs() -> Vec<Vec<u8>> {
    ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
        .iter()
        .map(|x| hex::decode(x).unwrap())
        .collect()
}

/// The reference roots of the trees of 1…8 of those leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// A store of nodes built by appending `leaves` in batches of `batch`.
fn stored(leaves: &[Hash], batch: usize) -> HashMap<Node, Hash> {
    let mut nodes = HashMap::new();
    for (i, chunk) in leaves.chunks(batch.max(1)).enumerate() {
        let size = (i * batch.max(1)) as u64;
        let frontier: Vec<Hash> = frontier(size).iter().map(|n| nodes[n]).collect();
        nodes.extend(append(size, &frontier, chunk));
    }
    nodes
}

fn proof(plan: Plan, nodes: &HashMap<Node, Hash>) -> Vec<Hash> {
    let fetched: HashMap<Node, Hash> = plan.nodes().into_iter().map(|n| (n, nodes[&n])).collect();
    plan.hashes(&fetched).unwrap()
}

#[test]
fn roots_equal_the_reference_vectors_whatever_the_append_batches() {
    let leaves: Vec<Hash> = inputs().iter().map(|i| leaf_hash(i)).collect();
    assert_eq!(empty_root(), h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    for batch in 1..=8 {
        let nodes = stored(&leaves, batch);
        for size in 1..=8u64 {
            let root = proof(Plan::root(size), &nodes)[0];
            assert_eq!(root, h(ROOTS[size as usize - 1]), "size {size}, batches of {batch}");
            assert_eq!(root_of(&leaves[..size as usize]), root);
        }
    }
    assert_eq!(leaves[0], h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"));
}

#[test]
fn inclusion_and_consistency_proofs_equal_the_reference_vectors() {
    let leaves: Vec<Hash> = inputs().iter().map(|i| leaf_hash(i)).collect();
    let nodes = stored(&leaves, 3);
    let inclusion: [(u64, u64, &[&str]); 4] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (index, size, expected) in inclusion {
        let expected: Vec<Hash> = expected.iter().map(|x| h(x)).collect();
        assert_eq!(proof(Plan::inclusion(index, size).unwrap(), &nodes), expected, "leaf {index} of {size}");
        assert!(verify_inclusion(index, size, &leaves[index as usize], &expected, &h(ROOTS[size as usize - 1])));
    }
    let consistency: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];
    for (from, to, expected) in consistency {
        let expected: Vec<Hash> = expected.iter().map(|x| h(x)).collect();
        assert_eq!(proof(Plan::consistency(from, to).unwrap(), &nodes), expected, "{from} to {to}");
        let (old, new) = (h(ROOTS[from as usize - 1]), h(ROOTS[to as usize - 1]));
        assert!(verify_consistency(from, to, &expected, &old, &new), "{from} to {to}");
    }
}

#[test]
fn every_proof_of_trees_up_to_64_leaves_verifies_and_no_altered_one_does() {
    let leaves: Vec<Hash> = (0..64u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let nodes = stored(&leaves, 5);
    for size in 1..=64u64 {
        let root = root_of(&leaves[..size as usize]);
        assert_eq!(proof(Plan::root(size), &nodes), [root]);
        for index in 0..size {
            let path = proof(Plan::inclusion(index, size).unwrap(), &nodes);
            assert!(verify_inclusion(index, size, &leaves[index as usize], &path, &root), "{index} of {size}");
            assert!(!verify_inclusion(index, size, &leaves[(index as usize + 1) % 64], &path, &root));
            if let Some(first) = path.first() {
                let mut bent = path.clone();
                bent[0][0] ^= 1;
                assert!(!verify_inclusion(index, size, &leaves[index as usize], &bent, &root));
                assert_ne!(first, &bent[0]);
            }
            if index + 1 < size {
                assert!(!verify_inclusion(index + 1, size, &leaves[index as usize], &path, &root));
            }
        }
        for from in 1..=size {
            let old = root_of(&leaves[..from as usize]);
            let path = proof(Plan::consistency(from, size).unwrap(), &nodes);
            assert!(verify_consistency(from, size, &path, &old, &root), "{from} to {size}");
            if from < size {
                assert!(!verify_consistency(from, size, &path, &root, &old), "swapped roots {from} to {size}");
                let mut bent = path.clone();
                bent[0][31] ^= 0x80;
                assert!(!verify_consistency(from, size, &bent, &old, &root), "altered {from} to {size}");
            }
        }
    }
}

#[test]
fn a_frontier_has_the_root_of_every_prefix() {
    let leaves: Vec<Hash> = (0..100u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
    let mut frontier = Frontier::default();
    assert_eq!(frontier.root(), empty_root());
    for (i, leaf) in leaves.iter().enumerate() {
        frontier.push(*leaf);
        assert_eq!((frontier.size(), frontier.root()), (i as u64 + 1, root_of(&leaves[..=i])));
    }
}

#[test]
fn proofs_need_few_stored_nodes_even_for_a_large_log() {
    let size = 1_000_003u64;
    let inclusion = Plan::inclusion(777_777, size).unwrap();
    assert!(inclusion.nodes().len() <= 40, "{}", inclusion.nodes().len());
    let consistency = Plan::consistency(999_999, size).unwrap();
    assert!(consistency.nodes().len() <= 60, "{}", consistency.nodes().len());
    assert!(Plan::inclusion(size, size).is_none() && Plan::consistency(0, size).is_none());
    assert!(Plan::consistency(size + 1, size).is_none());
}

#[test]
fn an_entry_holds_the_stored_payload_byte_for_byte() {
    let payload = r#"{"b":1,  "a":"é"}"#;
    assert_eq!(
        entry(7, "ScoreAwarded", 1, payload),
        r#"{"position":7,"type":"ScoreAwarded","version":1,"data":{"b":1,  "a":"é"}}"#
    );
    assert_eq!(leaf_node(7), Node { level: 0, index: 6 });
}

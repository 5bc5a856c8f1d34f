//! `restore-check`: a restored database (a SQLite copy, a PostgreSQL restore) proven against
//! the signed checkpoints an auditor or the operator kept, trusting nothing the copy holds.
//!
//! Every leaf is recomputed from the copy's entries and the tree from the leaves; at each kept
//! checkpoint the copy reaches, its root must be the one signed. A copy that ends before the last
//! kept checkpoint is a prefix of the signed log when a live deployment proves the consistency
//! of the copy's tree with that checkpoint's. Given a live deployment, each entry is also
//! compared with the live log's, so a disagreement is named at its exact position; from kept
//! checkpoints alone, between the last checkpoint that matches and the first that does not.

use anyhow::Context as _;
use tlog::note::NoteVerifier;
use tlog::{Frontier, Hash};

use crate::{Http, KeptCheckpoint, LogReport, LogSource, hash_of};

/// What [`restore_check`] found, as a [`LogReport`] (its problems, first position first) with
/// what the copy was proven to be.
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// Events the copy holds.
    pub head: u64,
    /// The largest kept checkpoint whose tree the copy's first events make.
    pub matches: u64,
    /// A kept checkpoint beyond the copy's end that the copy is proven a prefix of.
    pub prefix_of: Option<u64>,
    /// What disagrees; empty when the copy is the signed log (or a proven prefix of it).
    pub log: LogReport,
}

/// Checks the log `restored` holds against the checkpoints `kept` (their notes verified with
/// `key`), and against the deployment `live` when given.
pub async fn restore_check(
    restored: &impl LogSource,
    kept: &[KeptCheckpoint],
    key: &str,
    live: Option<&Http<'_>>,
) -> anyhow::Result<RestoreReport> {
    let verifier = NoteVerifier::parse(key.trim()).context("the verifier key")?;
    let mut report = RestoreReport::default();
    let mut signed: Vec<(u64, Hash)> = Vec::new();
    for checkpoint in kept {
        let opened = verifier.open(&checkpoint.note).ok().and_then(|text| tlog::note::parse_checkpoint(text).ok());
        match opened {
            Some((_, size, root)) if size == checkpoint.tree_size => signed.push((size, root)),
            _ => report
                .log
                .problem(None, format!("the kept checkpoint of {} events does not verify", checkpoint.tree_size)),
        }
    }
    anyhow::ensure!(!signed.is_empty(), "no kept checkpoint verifies with {}", key.trim());
    signed.sort_unstable_by_key(|(size, _)| *size);
    signed.dedup_by_key(|(size, _)| *size);

    let mut tree = Frontier::default();
    let mut next = signed.iter().peekable();
    let mut live_page: Vec<crate::LoggedEvent> = Vec::new();
    'reading: loop {
        let page = restored.events(tree.size()).await?;
        if page.is_empty() {
            break;
        }
        for event in page {
            let position = tree.size() + 1;
            if event.position != position {
                report.log.problem(Some(position), format!("the copy goes on at position {}", event.position));
                break 'reading;
            }
            let leaf = tlog::leaf_hash(event.entry.as_bytes());
            if let Some(live) = live {
                if live_page.first().is_none_or(|first| first.position > position)
                    || live_page.last().is_none_or(|last| last.position < position)
                {
                    live_page = live.events(position - 1).await?;
                }
                let theirs = live_page.iter().find(|e| e.position == position);
                if theirs.is_some_and(|theirs| theirs.entry != event.entry) {
                    report.log.problem(Some(position), "the copy's event is not the live log's");
                    break 'reading;
                }
            }
            tree.push(leaf);
            while let Some(&&(size, root)) = next.peek().filter(|(size, _)| *size == tree.size()) {
                if tree.root() != root {
                    report.log.problem_among(
                        report.matches + 1,
                        size,
                        format!("these are not the events the checkpoint of {size} signed"),
                    );
                    break 'reading;
                }
                report.matches = size;
                next.next();
            }
        }
    }
    report.head = tree.size();
    report.log.events = tree.size();
    report.log.checkpoints = signed.iter().filter(|(size, _)| *size <= report.matches).count();
    // Beyond the copy's end: proven a prefix by the live deployment's consistency proof.
    if report.log.problems.is_empty()
        && let Some(&(size, root)) = signed.last().filter(|(size, _)| *size > tree.size())
    {
        match live {
            Some(live) if tree.size() > 0 => match live.consistency(tree.size(), size).await? {
                Some(proof) => {
                    let hashes: Option<Vec<Hash>> = proof.iter().map(|h| hash_of(h)).collect();
                    if hashes.is_some_and(|h| tlog::verify_consistency(tree.size(), size, &h, &tree.root(), &root)) {
                        report.prefix_of = Some(size);
                    } else {
                        report.log.problem_among(
                            report.matches + 1,
                            tree.size(),
                            format!("the copy is not a prefix of the log the checkpoint of {size} signed"),
                        );
                    }
                }
                None => report
                    .log
                    .problem(None, format!("the live log proves no consistency of {} and {size}", tree.size())),
            },
            _ => {}
        }
    }
    Ok(report)
}

//! `scoreboard-admin`: what an auditor and an operator run against a deployment.
//!
//! [`verify_log`] checks a deployment from its public HTTP API alone ([`verify_log_from`] does the same
//! from any [`LogSource`], its database included), trusting nothing it
//! serves but the checkpoints' signatures: it reads every event, recomputes every leaf from the
//! entry and the tree from the leaves, checks every checkpoint's signature with the verifier key
//! and its root against the recomputed tree, and that consecutive checkpoints are consistent by
//! the service's own proofs; it names the first position where what it reads disagrees with
//! what was signed. [`results::verify_results`] checks a season's published results against
//! the same signed log.

pub mod restore;
pub mod results;

use std::fmt;

use anyhow::Context as _;
use serde::Deserialize;
use tlog::note::NoteVerifier;
use tlog::{Frontier, Hash};

/// What [`verify_log`] found.
#[derive(Debug, Default)]
pub struct LogReport {
    /// Events read.
    pub events: u64,
    /// Checkpoints whose signature and root verified.
    pub checkpoints: usize,
    /// What disagrees, first position first; empty when the log verifies.
    pub problems: Vec<Problem>,
}

/// One disagreement: at a position, somewhere in a range of positions, or with no position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The position concerned, when it is known exactly.
    pub position: Option<u64>,
    /// Otherwise the positions it lies among, `[first, last]`.
    pub among: Option<(u64, u64)>,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.position, self.among) {
            (Some(position), _) => write!(f, "position {position}: {}", self.what),
            (None, Some((first, last))) => write!(f, "positions {first}–{last}: {}", self.what),
            (None, None) => f.write_str(&self.what),
        }
    }
}

impl LogReport {
    fn problem(&mut self, position: Option<u64>, what: impl Into<String>) {
        self.problems.push(Problem { position, among: None, what: what.into() });
    }

    fn problem_among(&mut self, first: u64, last: u64, what: impl Into<String>) {
        self.problems.push(Problem { position: None, among: Some((first, last)), what: what.into() });
    }

    /// The first position that disagrees with what was signed: the first one known exactly,
    /// else the start of the first range known to hold one.
    pub fn first_position(&self) -> Option<u64> {
        let exact = self.problems.iter().filter_map(|p| p.position).min();
        exact.or_else(|| self.problems.iter().filter_map(|p| p.among.map(|(first, _)| first)).min())
    }
}

/// An event as the log holds it: its entry, and the leaf hash the tree holds for it.
#[derive(Debug, Deserialize)]
pub struct LoggedEvent {
    /// Its position.
    pub position: u64,
    /// The exact bytes hashed into its leaf.
    pub entry: String,
    /// The leaf hash the tree holds for it (hex), if any.
    pub leaf_hash: Option<String>,
}

/// A signed checkpoint as kept.
#[derive(Debug, Deserialize)]
pub struct KeptCheckpoint {
    /// The tree size it signs.
    pub tree_size: u64,
    /// The signed note.
    pub note: String,
}

/// Where [`verify_log_from`] reads a log from: a deployment's public API ([`Http`]) or its database.
#[allow(async_fn_in_trait)]
pub trait LogSource {
    /// The verifier key, in note format.
    async fn verifier_key(&self) -> anyhow::Result<String>;
    /// Up to 1 000 checkpoints of tree sizes after `after_size`, in order.
    async fn checkpoints(&self, after_size: u64) -> anyhow::Result<Vec<KeptCheckpoint>>;
    /// The source's proof, from its own tree, that the tree of `to` events extends that of
    /// `from`; `None` when it has none for these trees (its tree is damaged).
    async fn consistency(&self, from: u64, to: u64) -> anyhow::Result<Option<Vec<String>>>;
    /// A page of the events after position `after`, in order (empty at the end).
    async fn events(&self, after: u64) -> anyhow::Result<Vec<LoggedEvent>>;
}

/// A deployment's read side, over HTTP.
pub struct Http<'a> {
    client: &'a reqwest::Client,
    url: &'a str,
}

impl<'a> Http<'a> {
    /// The read side (query-svc or the all-in-one) at `url`.
    pub fn new(client: &'a reqwest::Client, url: &'a str) -> Self {
        Self { client, url: url.trim_end_matches('/') }
    }

    /// GETs `path`, waiting as asked when the deployment's read limit answers 429 or 503.
    async fn get(&self, path: String) -> anyhow::Result<reqwest::Response> {
        let mut attempts = 0;
        loop {
            let response =
                self.client.get(format!("{}{path}", self.url)).send().await.with_context(|| format!("GET {path}"))?;
            let status = response.status().as_u16();
            if (status == 429 || status == 503) && attempts < 10 {
                attempts += 1;
                let wait = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
                tokio::time::sleep(std::time::Duration::from_secs(wait.unwrap_or(1).min(30))).await;
                continue;
            }
            return response.error_for_status().with_context(|| format!("GET {path}"));
        }
    }
}

#[derive(Deserialize)]
struct EventPage {
    events: Vec<LoggedEvent>,
}

#[derive(Deserialize)]
struct Proof {
    hashes: Vec<String>,
}

impl LogSource for Http<'_> {
    async fn verifier_key(&self) -> anyhow::Result<String> {
        Ok(self.get("/v1/audit/key".into()).await?.text().await?)
    }

    async fn checkpoints(&self, after_size: u64) -> anyhow::Result<Vec<KeptCheckpoint>> {
        Ok(self.get(format!("/v1/audit/checkpoints?after_size={after_size}&limit=1000")).await?.json().await?)
    }

    async fn consistency(&self, from: u64, to: u64) -> anyhow::Result<Option<Vec<String>>> {
        let response = self.get(format!("/v1/audit/proof/consistency?from={from}&to={to}")).await;
        match response {
            Ok(response) => Ok(Some(response.json::<Proof>().await?.hashes)),
            // The service cannot prove it (its tree lacks a node): a finding, not a failure to read.
            Err(error) if error.downcast_ref::<reqwest::Error>().and_then(reqwest::Error::status).is_some() => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn events(&self, after: u64) -> anyhow::Result<Vec<LoggedEvent>> {
        let page: EventPage = self.get(format!("/v1/events?after={after}&limit=1000")).await?.json().await?;
        Ok(page.events)
    }
}

/// A log read straight from its database. While one page is being verified, the next is
/// already being read.
pub struct Database<S> {
    log: S,
    ahead: std::sync::Mutex<Option<(u64, Reading)>>,
}

/// A page being read, after the position it starts from.
type Reading = tokio::task::JoinHandle<anyhow::Result<Vec<LoggedEvent>>>;

/// Events per page read from a database.
const DATABASE_PAGE: u32 = 5000;

impl<S: store::EventStore> Database<S> {
    /// The log `log` holds.
    pub fn new(log: S) -> Self {
        Self { log, ahead: std::sync::Mutex::default() }
    }

    async fn page(log: S, after: u64) -> anyhow::Result<Vec<LoggedEvent>> {
        let stored = log.read_after(after, DATABASE_PAGE).await?;
        let leaves: Vec<tlog::Node> = stored.iter().map(|e| tlog::leaf_node(e.position)).collect();
        let hashes = log.read_nodes(&leaves).await?;
        Ok(stored
            .iter()
            .zip(&leaves)
            .map(|(e, leaf)| LoggedEvent {
                position: e.position,
                entry: e.entry(),
                leaf_hash: hashes.get(leaf).map(hex::encode),
            })
            .collect())
    }
}

impl<S: store::EventStore> LogSource for Database<S> {
    async fn verifier_key(&self) -> anyhow::Result<String> {
        self.log.verifier_key().await?.context("no checkpoint signer is kept in this database")
    }

    async fn checkpoints(&self, after_size: u64) -> anyhow::Result<Vec<KeptCheckpoint>> {
        let kept = self.log.checkpoints(after_size, 1000).await?;
        Ok(kept.into_iter().map(|c| KeptCheckpoint { tree_size: c.tree_size, note: c.note }).collect())
    }

    async fn consistency(&self, from: u64, to: u64) -> anyhow::Result<Option<Vec<String>>> {
        let plan = tlog::Plan::consistency(from, to).context("consecutive checkpoints")?;
        let hashes = plan.hashes(&self.log.read_nodes(&plan.nodes()).await?);
        Ok(hashes.map(|hashes| hashes.iter().map(hex::encode).collect()))
    }

    async fn events(&self, after: u64) -> anyhow::Result<Vec<LoggedEvent>> {
        let ahead = self.ahead.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let page = match ahead {
            Some((from, reading)) if from == after => reading.await??,
            _ => Self::page(self.log.clone(), after).await?,
        };
        if let Some(last) = page.last() {
            let next = tokio::spawn(Self::page(self.log.clone(), last.position));
            *self.ahead.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((last.position, next));
        }
        Ok(page)
    }
}

fn hash_of(hex_text: &str) -> Option<Hash> {
    hex::decode(hex_text).ok()?.try_into().ok()
}

/// Verifies the deployment at `url` (its read side) from its public API alone.
pub async fn verify_log(client: &reqwest::Client, url: &str) -> anyhow::Result<LogReport> {
    verify_log_from(&Http::new(client, url)).await
}

/// Verifies the log `source` serves, trusting nothing of it but the checkpoints' signatures.
pub async fn verify_log_from(source: &impl LogSource) -> anyhow::Result<LogReport> {
    let mut report = LogReport::default();
    let key = source.verifier_key().await?;
    let key = key.trim();
    let verifier = NoteVerifier::parse(key).context("the verifier key served")?;

    // Every checkpoint, its signature checked: the trees the operator vouched for.
    let mut signed: Vec<(u64, Hash)> = Vec::new();
    let mut after = 0;
    loop {
        let page = source.checkpoints(after).await?;
        let Some(last) = page.last() else { break };
        anyhow::ensure!(last.tree_size > after, "the checkpoints' pages do not follow one another");
        after = last.tree_size;
        for checkpoint in page {
            let opened = verifier.open(&checkpoint.note).ok().and_then(|text| tlog::note::parse_checkpoint(text).ok());
            match opened {
                Some((_, size, root)) if size == checkpoint.tree_size => signed.push((size, root)),
                _ => report.problem(
                    None,
                    format!("the checkpoint of tree size {} does not verify with {key}", checkpoint.tree_size),
                ),
            }
        }
    }

    // Consecutive checkpoints are consistent, by the source's own proofs where it serves them.
    for pair in signed.windows(2) {
        let ((from, old), (to, new)) = (pair[0], pair[1]);
        let Some(proof) = source.consistency(from, to).await? else {
            report.problem_among(from + 1, to, format!("the log proves no consistency of {from} and {to} events"));
            continue;
        };
        let hashes: Option<Vec<Hash>> = proof.iter().map(|h| hash_of(h)).collect();
        if !hashes.is_some_and(|hashes| tlog::verify_consistency(from, to, &hashes, &old, &new)) {
            report.problem_among(from + 1, to, format!("the checkpoints of {from} and {to} events are not consistent"));
        }
    }

    // Every event, its leaf recomputed from its entry and the tree from the leaves.
    let mut tree = Frontier::default();
    let mut next_checkpoint = signed.iter().peekable();
    let mut verified_through = 0;
    loop {
        let page = source.events(tree.size()).await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            let expected = tree.size() + 1;
            if event.position != expected {
                report.problem(Some(expected), format!("the log goes on at position {}", event.position));
                return Ok(report);
            }
            let leaf = tlog::leaf_hash(event.entry.as_bytes());
            if event.leaf_hash.as_deref().and_then(hash_of) != Some(leaf) {
                report.problem(Some(expected), "its entry does not hash to the leaf the tree holds for it");
            }
            tree.push(leaf);
            report.events += 1;
            while let Some(&&(size, root)) = next_checkpoint.peek() {
                if size != tree.size() {
                    break;
                }
                if tree.root() == root {
                    report.checkpoints += 1;
                    verified_through = size;
                } else {
                    report.problem_among(
                        verified_through + 1,
                        size,
                        format!("these are not the events the checkpoint of {size} signed"),
                    );
                }
                next_checkpoint.next();
            }
        }
    }
    for &(size, _) in next_checkpoint {
        report.problem(
            Some(tree.size() + 1),
            format!("a checkpoint signed {size} events; the log holds {}", tree.size()),
        );
    }
    report.problems.sort_by_key(|p| p.position.or(p.among.map(|(first, _)| first)).unwrap_or(u64::MAX));
    Ok(report)
}

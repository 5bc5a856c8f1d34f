//! `verify-results`: a season's published results checked against the signed log, from a
//! deployment's public API alone.
//!
//! It reads the results (every page), checks the checkpoint they name with the verifier key
//! (the auditor's own, or the one the deployment serves), reads the log up to that checkpoint's
//! tree size and recomputes its root from the entries (so the events are the ones that were
//! signed), folds them up to the results' final position by the rules of the board's definition
//! they name (`events::boards`) and compares the ranking with the one published.

use anyhow::Context as _;
use events::boards::BoardDef;
use events::results::{Placed, Published, placed};
use events::{Event, RecordedEvent};
use serde::Deserialize;
use tlog::Frontier;
use tlog::note::NoteVerifier;

use crate::{Http, LogSource as _};

/// What [`verify_results`] found.
#[derive(Debug)]
pub struct ResultsReport {
    /// The results read (all their entries).
    pub results: Published,
    /// Events read from the log.
    pub events: u64,
    /// What disagrees; empty when the results are the fold of the signed log.
    pub problems: Vec<String>,
}

/// An entry of the log: the bytes its leaf hashes, read back as an event.
#[derive(Deserialize)]
struct Entry<'a> {
    position: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    version: i32,
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
}

/// Verifies version `version` (the latest when `None`) of the results of `season` of `board`
/// that the deployment at `url` publishes; `key` is the verifier key to trust (the deployment's
/// own when `None`).
pub async fn verify_results(
    client: &reqwest::Client,
    url: &str,
    board: &str,
    season: &str,
    version: Option<u32>,
    key: Option<&str>,
) -> anyhow::Result<ResultsReport> {
    let http = Http::new(client, url);
    let results = read_results(&http, board, season, version).await?;
    let def = BoardDef::from_definition(results.board.clone(), &results.definition)
        .with_context(|| format!("the results name no board definition: {:?}", results.definition))?;
    let key = match key {
        Some(key) => key.to_string(),
        None => http.verifier_key().await?,
    };
    let verifier = NoteVerifier::parse(key.trim()).context("the verifier key")?;
    let mut report = ResultsReport { results, events: 0, problems: Vec::new() };
    let signed = verifier.open(&report.results.checkpoint.note).ok().and_then(|t| tlog::note::parse_checkpoint(t).ok());
    let Some((_, size, root)) = signed.filter(|(_, size, _)| *size == report.results.checkpoint.tree_size) else {
        report.problems.push(format!(
            "the checkpoint of tree size {} the results name does not verify with {}",
            report.results.checkpoint.tree_size,
            key.trim()
        ));
        return Ok(report);
    };
    if report.results.final_position > size {
        report
            .problems
            .push(format!("the checkpoint of {size} events does not cover position {}", report.results.final_position));
        return Ok(report);
    }
    let log = read_signed_log(&http, size, root, &mut report).await?;
    if !report.problems.is_empty() {
        return Ok(report);
    }
    compare(&def, &log, &mut report);
    Ok(report)
}

/// Every entry of the results, page by page.
async fn read_results(http: &Http<'_>, board: &str, season: &str, version: Option<u32>) -> anyhow::Result<Published> {
    let version = version.map(|v| format!("&version={v}")).unwrap_or_default();
    let path =
        |offset: usize| format!("/v1/boards/{board}/seasons/{season}/results?limit=10000&offset={offset}{version}");
    let mut results: Published = http.get(path(0)).await?.json().await?;
    while (results.entries.len() as u64) < results.total_players {
        let page: Published = http.get(path(results.entries.len())).await?.json().await?;
        anyhow::ensure!(page.version == results.version && !page.entries.is_empty(), "the results changed while read");
        results.entries.extend(page.entries);
    }
    Ok(results)
}

/// The events of the log's first `size` positions, their tree checked against the signed `root`.
async fn read_signed_log(
    http: &Http<'_>,
    size: u64,
    root: tlog::Hash,
    report: &mut ResultsReport,
) -> anyhow::Result<Vec<RecordedEvent>> {
    let mut tree = Frontier::default();
    let mut log = Vec::new();
    while tree.size() < size {
        let page = http.events(tree.size()).await?;
        anyhow::ensure!(!page.is_empty(), "the log ends at {} events; the checkpoint signed {size}", tree.size());
        for logged in page.into_iter().take(usize::try_from(size - tree.size()).unwrap_or(usize::MAX)) {
            let entry: Entry = serde_json::from_str(&logged.entry).context("an entry of the log")?;
            anyhow::ensure!(entry.position == tree.size() + 1, "the log goes on at position {}", entry.position);
            tree.push(tlog::leaf_hash(logged.entry.as_bytes()));
            let event = Event::decode(entry.event_type, entry.version, entry.data.get().as_bytes())?;
            log.push(RecordedEvent { position: entry.position, event });
            report.events += 1;
        }
    }
    if tree.root() != root {
        report.problems.push(format!("the log's first {size} events are not the ones the checkpoint signed"));
    }
    Ok(log)
}

/// Compares the published ranking with the fold of `log` up to the final position.
fn compare(def: &BoardDef, log: &[RecordedEvent], report: &mut ResultsReport) {
    let results = &report.results;
    let Ok(season) = events::boards::Season::parse(def.season, &results.season) else {
        report.problems.push(format!("{:?} is not a season of board {}", results.season, def.id));
        return;
    };
    let folded = &log[..usize::try_from(results.final_position).unwrap_or(usize::MAX).min(log.len())];
    let awards = events::boards::awards_of(folded);
    let standings = events::boards::fold_seasons(std::slice::from_ref(def), [], &awards, &[], folded)
        .into_iter()
        .filter(|s| s.season == season)
        .map(|s| s.standing);
    let expected: Vec<Placed> = placed(def, standings);
    for (rank, (published, folded)) in results.entries.iter().zip(&expected).enumerate() {
        if published != folded {
            report.problems.push(format!(
                "rank {}: the results publish {} with {}, the fold of the log ranks {} with {}",
                rank + 1,
                published.player_id,
                published.score,
                folded.player_id,
                folded.score
            ));
            return;
        }
    }
    if results.entries.len() != expected.len() {
        report.problems.push(format!(
            "the results rank {} players, the fold of the log {}",
            results.entries.len(),
            expected.len()
        ));
    }
}

//! The proofs that the log was not altered (SPEC "Audit: a verifiable log"): RFC 9162
//! inclusion and consistency proofs, computed from the Merkle tree the log's appends keep, and
//! the tree and the entries as C2SP tlog-tiles lays them out, for standard tile clients.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use platform::Problem;
use platform::client::ClientIp;
use platform::openapi::PROBLEM_JSON;
use serde::{Deserialize, Serialize};
use store::{EventStore, LeaderboardStore};
use tlog::tiles::TilePath;

use platform::params::NoParameters;

use crate::admission::Cost;
use crate::error::QueryError;
use crate::params::{After, PageSize, Strict, TreeSize};
use crate::state::{Reader, encoded, json};

/// The parameters of `GET /v1/audit/proof/inclusion`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The event's position (its leaf is `position - 1`).
    #[param(inline, required = true)]
    position: Option<TreeSize>,
    /// The tree the proof is for; the whole log when absent.
    #[param(inline)]
    tree_size: Option<TreeSize>,
}

/// An inclusion proof (RFC 9162 §2.1.3).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InclusionProof {
    /// The event's leaf: its position − 1.
    leaf_index: u64,
    /// The tree the proof is for.
    tree_size: u64,
    /// The audit path, hex, from the leaf up.
    hashes: Vec<String>,
}

/// The parameters of `GET /v1/audit/proof/consistency`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The earlier tree's size.
    #[param(inline, required = true)]
    from: Option<TreeSize>,
    /// The later tree's size; the whole log when absent.
    #[param(inline)]
    to: Option<TreeSize>,
}

/// A consistency proof (RFC 9162 §2.1.4).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    /// The earlier tree's size.
    from: u64,
    /// The later tree's size.
    to: u64,
    /// The proof, hex.
    hashes: Vec<String>,
}

/// That the event at `position` is in the tree of `tree_size` leaves.
#[utoipa::path(get, path = "/v1/audit/proof/inclusion", tag = "audit", params(InclusionQuery),
    responses(
        (status = 200, description = "The audit path", body = InclusionProof),
        (status = 404, description = "The log is smaller than `tree_size` (`unknown_tree_size`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn inclusion<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    Strict(query): Strict<InclusionQuery>,
) -> Result<Response, QueryError> {
    let position = required("position", query.position)?;
    let asked = query.tree_size.map(TreeSize::get);
    let _reading = reader.admit(client, Cost::Light)?;
    let tree_size = tree_size(&*reader.log, asked).await?;
    let plan = tlog::Plan::inclusion(position - 1, tree_size).ok_or_else(|| {
        QueryError::InvalidRequest(format!("position {position} is not in the tree of {tree_size} events"))
    })?;
    let body = reader
        .kept
        .answer(format!("inclusion?position={position}&tree_size={tree_size}"), async || {
            let hashes = proven(&*reader.log, &plan).await?;
            Ok((encoded(&InclusionProof { leaf_index: position - 1, tree_size, hashes }), true))
        })
        .await?;
    Ok(json(body))
}

/// That the tree of `from` leaves is a prefix of the tree of `to` leaves: nothing in it was
/// altered, removed or reordered since.
#[utoipa::path(get, path = "/v1/audit/proof/consistency", tag = "audit", params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProof),
        (status = 404, description = "The log is smaller than `to` (`unknown_tree_size`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn consistency<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    Strict(query): Strict<ConsistencyQuery>,
) -> Result<Response, QueryError> {
    let from = required("from", query.from)?;
    let asked = query.to.map(TreeSize::get);
    let _reading = reader.admit(client, Cost::Light)?;
    let to = tree_size(&*reader.log, asked).await?;
    let plan = tlog::Plan::consistency(from, to)
        .ok_or_else(|| QueryError::InvalidRequest(format!("from ({from}) must not be larger than to ({to})")))?;
    let body = reader
        .kept
        .answer(format!("consistency?from={from}&to={to}"), async || {
            let hashes = proven(&*reader.log, &plan).await?;
            Ok((encoded(&ConsistencyProof { from, to, hashes }), true))
        })
        .await?;
    Ok(json(body))
}

/// A required size or position (serde's own "missing field" would not say which).
fn required(name: &str, given: Option<TreeSize>) -> Result<u64, QueryError> {
    given.map(TreeSize::get).ok_or_else(|| QueryError::InvalidRequest(format!("{name} is required")))
}

/// The tree size `asked` for, or the whole tree's; `404` beyond the log.
async fn tree_size<S: EventStore>(log: &S, asked: Option<u64>) -> Result<u64, QueryError> {
    let whole = log.tree_size().await?;
    match asked {
        None if whole == 0 => Err(QueryError::UnknownTreeSize(1, 0)),
        None => Ok(whole),
        Some(size) if size > whole => Err(QueryError::UnknownTreeSize(size, whole)),
        Some(size) => Ok(size),
    }
}

/// The hashes of `plan`, hex, from the stored tree.
async fn proven<S: EventStore>(log: &S, plan: &tlog::Plan) -> Result<Vec<String>, QueryError> {
    let nodes = log.read_nodes(&plan.nodes()).await?;
    let hashes = plan.hashes(&nodes).ok_or_else(|| {
        QueryError::Store(store::StoreError::InvalidRow("a node of the Merkle tree is missing".into()))
    })?;
    Ok(hashes.iter().map(hex::encode).collect())
}

/// The latest checkpoint: the tree head signed as a C2SP signed note.
#[utoipa::path(get, path = "/v1/audit/checkpoint", tag = "audit",
    responses(
        (status = 200, description = "The note as signed", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "Nothing signed yet (`no_checkpoint`)", body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn checkpoint<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    Strict(NoParameters {}): Strict<NoParameters>,
) -> Result<String, QueryError> {
    let _reading = reader.admit(client, Cost::Light)?;
    let latest = reader.log.latest_checkpoint().await?;
    latest.map(|c| c.note).ok_or(QueryError::NotYet("no checkpoint has been signed yet"))
}

/// The parameters of `GET /v1/audit/checkpoints`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckpointsQuery {
    /// Checkpoints of trees larger than this.
    #[param(inline)]
    after_size: Option<After>,
    /// How many at most.
    #[param(inline)]
    limit: Option<PageSize>,
}

/// A kept checkpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckpointEntry {
    /// The tree size it signs.
    tree_size: u64,
    /// The root hash at that size, hex.
    root_hash: String,
    /// The signed note.
    note: String,
}

/// Every checkpoint kept, smallest tree first: consecutive ones must be consistent.
#[utoipa::path(get, path = "/v1/audit/checkpoints", tag = "audit", params(CheckpointsQuery),
    responses((status = 200, description = "A page of checkpoints, as a JSON list", body = Vec<CheckpointEntry>)))]
pub async fn checkpoints<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    Strict(query): Strict<CheckpointsQuery>,
) -> Result<Response, QueryError> {
    let (after, limit) = (After::or_default(query.after_size), PageSize::or_default(query.limit) as u32);
    let body = reader
        .kept
        .answer(format!("checkpoints?after_size={after}&limit={limit}"), async || {
            let _reading = reader.admit(client, Cost::Heavy)?;
            let kept = reader.log.checkpoints(after, limit).await?;
            // A full page can never change: checkpoints only come after it.
            let full = kept.len() == limit as usize;
            let checkpoints: Vec<CheckpointEntry> = kept
                .into_iter()
                .map(|c| CheckpointEntry { tree_size: c.tree_size, root_hash: hex::encode(c.root_hash), note: c.note })
                .collect();
            Ok((encoded(&checkpoints), full))
        })
        .await?;
    Ok(json(body))
}

/// The checkpoint signer's verifier key, in the note format.
#[utoipa::path(get, path = "/v1/audit/key", tag = "audit",
    responses(
        (status = 200, description = "`<name>+<hash>+<base64 key>`", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "No signer yet (`no_checkpoint`)", body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn key<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    Strict(NoParameters {}): Strict<NoParameters>,
) -> Result<String, QueryError> {
    let _reading = reader.admit(client, Cost::Light)?;
    let key = reader.log.verifier_key().await?;
    key.map(|key| format!("{key}\n")).ok_or(QueryError::NotYet("no checkpoint signer has started yet"))
}

/// The path after `/tile/`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TileParams {
    /// `<L>/<N>[.p/<W>]` (hashes of level `8·L` of the tree) or `entries/<N>[.p/<W>]` (entry
    /// bundles), `N` in groups of three digits, all but the last prefixed with `x`, as C2SP
    /// tlog-tiles lays them out.
    #[allow(dead_code)]
    path: String,
}

/// A tile of the Merkle tree, or a bundle of the entries its leaves hash, exactly as C2SP
/// tlog-tiles lays them out: any tile client verifies and mirrors the log from these and the
/// checkpoint alone. Tiles never change once served (a partial tile `.p/<W>` is the first `W`
/// hashes of the full one), so they are cached for good.
#[utoipa::path(get, path = "/tile/{path}", tag = "audit", params(TileParams),
    responses(
        (status = 200, description = "The tile's hashes, or the bundle's entries (each a big-endian u16 length and its bytes)",
            body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 404, description = "The tree has no such tile (yet) (`unknown_tile`)", body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn tile<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    path: Result<Path<String>, PathRejection>,
    Strict(NoParameters {}): Strict<NoParameters>,
) -> Result<Response, QueryError> {
    let Path(path) = path.map_err(|rejection| QueryError::InvalidRequest(rejection.body_text()))?;
    let parsed = TilePath::parse(&path).ok_or_else(|| {
        QueryError::InvalidRequest(format!("{path:?} is not a tile path: <L>/<N>[.p/<W>] or entries/<N>[.p/<W>]"))
    })?;
    // Not kept in memory: a tile is one row, and what the database holds now is what an auditor
    // must see (HTTP caches may keep it: it is marked immutable).
    let _reading = reader.admit(client, Cost::Light)?;
    let size = reader.log.tree_size().await?;
    let bytes = reader.log.read_tile(parsed, size).await?.ok_or(QueryError::UnknownTile(path))?;
    let headers = [(CONTENT_TYPE, "application/octet-stream"), (CACHE_CONTROL, "public, max-age=31536000, immutable")];
    Ok((headers, bytes).into_response())
}

/// The latest checkpoint where C2SP tlog-tiles clients look for it: the note as signed.
#[utoipa::path(get, path = "/checkpoint", tag = "audit",
    responses(
        (status = 200, description = "The note as signed", body = String, content_type = "text/plain; charset=utf-8"),
        (status = 404, description = "Nothing signed yet (`no_checkpoint`)", body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn tiles_checkpoint<S: EventStore, R: LeaderboardStore>(
    reader: State<Reader<S, R>>,
    client: ClientIp,
    strict: Strict<NoParameters>,
) -> Result<Response, QueryError> {
    let note = checkpoint(reader, client, strict).await?;
    Ok(([(CONTENT_TYPE, "text/plain; charset=utf-8"), (CACHE_CONTROL, "max-age=5")], note).into_response())
}

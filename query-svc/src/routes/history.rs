//! The log and a player's history, page by page, each event with its leaf in the Merkle tree.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use platform::client::ClientIp;
use serde::{Deserialize, Serialize};
use store::{EventStore, LeaderboardStore, StoreError};

use crate::admission::Cost;
use crate::error::QueryError;
use crate::params::{After, PageSize, Strict};
use crate::routes::leaderboard::{PlayerPath, player_id};
use crate::state::{Reader, encoded, json};

/// The parameters of the audit log pages.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Events after this position (the previous page's `next_after`).
    #[param(inline)]
    after: Option<After>,
    /// How many events at most.
    #[param(inline)]
    limit: Option<PageSize>,
}

/// A page of the audit log.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventPage {
    events: Vec<AuditedEvent>,
    /// Pass as `after` to read the next page (the last position of this one).
    next_after: u64,
}

/// An event of the log with what its leaf in the Merkle tree is made of.
#[derive(Debug, Serialize)]
pub struct AuditedEvent {
    #[serde(flatten)]
    event: events::RecordedEvent,
    /// The exact bytes its leaf hashes, as stored: `{"position","type","version","data"}` with
    /// the payload byte for byte.
    entry: String,
    /// The leaf hash the tree holds for it (hex): `SHA-256(0x00 ‖ entry)` unless the log was
    /// altered after it was written.
    leaf_hash: Option<String>,
}

impl utoipa::PartialSchema for AuditedEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        events::RecordedEvent::schema_with(|variant| {
            let entry = "The exact bytes its leaf hashes, as stored: `{\"position\",\"type\",\"version\",\"data\"}` \
                 with the payload byte for byte.";
            let leaf_hash = "The leaf hash the tree holds for it (hex): `SHA-256(0x00 ‖ entry)` unless the log \
                 was altered after it was written.";
            variant
                .property("entry", ObjectBuilder::new().schema_type(Type::String).description(Some(entry)))
                .required("entry")
                .property(
                    "leaf_hash",
                    ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
                        .description(Some(leaf_hash)),
                )
                .description(Some("An event of the log with what its leaf in the Merkle tree is made of"))
        })
    }
}

impl utoipa::ToSchema for AuditedEvent {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>) {
        <events::RecordedEvent as utoipa::ToSchema>::schemas(schemas);
    }
}

/// A page of the log (`of`: the whole log, or one player's history), read by `read`. A full
/// page can never change (events only come after it), so it is kept.
async fn event_page<S: EventStore, R>(
    reader: &Reader<S, R>,
    client: std::net::IpAddr,
    of: &str,
    query: &LogQuery,
    read: impl AsyncFnOnce(u64, u32) -> Result<Vec<store::StoredEvent>, StoreError>,
) -> Result<Response, QueryError> {
    let (after, limit) = (After::or_default(query.after), PageSize::or_default(query.limit) as u32);
    let body = reader
        .kept
        .answer(format!("{of}?after={after}&limit={limit}"), async || {
            let _reading = reader.admit(client, Cost::Heavy)?;
            let stored = read(after, limit).await?;
            let leaves: Vec<tlog::Node> = stored.iter().map(|e| tlog::leaf_node(e.position)).collect();
            let hashes = reader.log.read_nodes(&leaves).await?;
            let events = stored
                .iter()
                .zip(&leaves)
                .map(|(e, leaf)| {
                    let leaf_hash = hashes.get(leaf).map(hex::encode);
                    Ok(AuditedEvent { event: e.decoded()?, entry: e.entry(), leaf_hash })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let next_after = stored.last().map_or(after, |e| e.position);
            let full = stored.len() == limit as usize;
            Ok((encoded(&EventPage { events, next_after }), full))
        })
        .await?;
    Ok(json(body))
}

/// The global log, in order: the events after position `after`.
#[utoipa::path(get, path = "/v1/events", tag = "audit", params(LogQuery),
    responses((status = 200, description = "A page of the log", body = EventPage)))]
pub async fn log<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    Strict(query): Strict<LogQuery>,
) -> Result<Response, QueryError> {
    event_page(&reader, client, "events", &query, async |after, limit| reader.log.read_after(after, limit).await).await
}

/// One player's history: the events about them after position `after`, in order.
#[utoipa::path(get, path = "/v1/players/{player_id}/events", tag = "audit", params(PlayerPath, LogQuery),
    responses((status = 200, description = "A page of the player's history (empty for an unknown player)",
        body = EventPage)))]
pub async fn player_log<S: EventStore, R: LeaderboardStore>(
    State(reader): State<Reader<S, R>>,
    ClientIp(client): ClientIp,
    path: Result<Path<String>, PathRejection>,
    Strict(query): Strict<LogQuery>,
) -> Result<Response, QueryError> {
    let (_, player) = player_id(path)?;
    let of = format!("players/{player}/events");
    event_page(&reader, client, &of, &query, async |after, limit| {
        reader.log.read_player(player.as_str(), after, limit).await
    })
    .await
}

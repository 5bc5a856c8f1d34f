//! Live boards over Server-Sent Events and WebSocket.
//!
//! Each client gets a `snapshot` first, then an `update` whenever the top `limit` it shows
//! changes, each tagged with the board's position (`id`). Positions never decrease, and a
//! client that resumes with the last id it saw is never shown an older board: if this replica
//! is behind that id, the client waits until it catches up. Bursts are conflated: a client
//! always gets the newest board, never a backlog, because the feed reads the latest snapshot
//! when the client is ready for the next message. A client that stops reading is disconnected
//! by the socket's write timeout (see `listener`) rather than allowed to hold memory.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::PathRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use platform::Problem;
use platform::client::ClientIp;
use platform::openapi::PROBLEM_JSON;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::admission::Admission;
use crate::error::QueryError;
use crate::live::{Body, LiveBoard, LiveBoards, Snapshot};
use crate::params::{Limit, Position, Strict};
use platform::limits::Slot;

/// The largest WebSocket message a client may send (it has nothing to say but ping and close).
const MAX_CLIENT_MESSAGE: usize = 4096;

/// A WebSocket connection's read buffer. tungstenite's default (128 KiB) is filled with zeros
/// before every read, so each client would hold 128 KiB of resident memory to receive pings.
const WEBSOCKET_READ_BUFFER: usize = 4096;

/// What the stream endpoints share.
#[derive(Clone)]
pub struct Streams {
    /// The in-memory boards.
    pub boards: Arc<LiveBoards>,
    /// How often an idle stream sends a heartbeat.
    pub heartbeat: Duration,
    /// Caps on open streams.
    pub admission: Admission,
    /// Fires when the service stops: streams end so that shutdown does not wait for them.
    pub shutdown: CancellationToken,
}

/// Whether a frame is the first board a connection shows or a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// The board as the connection starts.
    Snapshot,
    /// The board after a change of the shown entries.
    Update,
}

impl FrameKind {
    fn name(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Update => "update",
        }
    }
}

/// One message of a live stream.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Snapshot or update.
    pub kind: FrameKind,
    /// The board's position (the SSE `id`).
    pub position: u64,
    /// The `GET /v1/leaderboard` body of the shown entries.
    pub body: Body,
}

impl Frame {
    /// The body as text.
    pub fn text(&self) -> &str {
        self.body.text()
    }
}

/// The sequence of frames one client sees.
pub struct Feed {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    /// The sequence of the last snapshot this feed looked at.
    seen: Option<u64>,
    limit: usize,
    labelled: bool,
    resume_from: Option<u64>,
    shown: Option<Arc<Snapshot>>,
    shutdown: CancellationToken,
}

impl Feed {
    /// A feed of the top `limit`; `resume_from` is the last position the client already showed;
    /// `labelled`: each body names the board and season.
    pub fn new(
        live: &LiveBoard,
        limit: usize,
        labelled: bool,
        resume_from: Option<u64>,
        shutdown: CancellationToken,
    ) -> Self {
        Self { snapshots: live.subscribe(), seen: None, limit, labelled, resume_from, shown: None, shutdown }
    }

    /// The next frame, waiting as long as needed; `None` when the service stops.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            let snapshot = self.snapshots.borrow_and_update().clone();
            if let Some(seen) = self.seen.replace(snapshot.sequence) {
                // Boards published while this client was not ready for them: conflated away.
                metrics::counter!("live_boards_conflated_total").increment(snapshot.sequence.saturating_sub(seen + 1));
            }
            if let Some(frame) = self.frame_for(snapshot) {
                return Some(frame);
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                changed = self.snapshots.changed() => changed.ok()?,
            }
        }
    }

    fn frame_for(&mut self, snapshot: Arc<Snapshot>) -> Option<Frame> {
        let kind = match &self.shown {
            None => match self.resume_from {
                // Behind what the client already showed: wait for this replica to catch up.
                Some(seen) if snapshot.position < seen => return None,
                // The client shows exactly this board already (a position names one board).
                Some(seen) if snapshot.position == seen => {
                    self.shown = Some(snapshot);
                    return None;
                }
                _ => FrameKind::Snapshot,
            },
            // A new season is news even at the same position: it starts empty.
            Some(shown) if shown.season != snapshot.season => FrameKind::Update,
            Some(shown) if shown.position >= snapshot.position => return None,
            Some(shown) if shown.entries(self.limit) == snapshot.entries(self.limit) => return None,
            Some(_) => FrameKind::Update,
        };
        let frame = Frame { kind, position: snapshot.position, body: snapshot.body(self.limit, self.labelled) };
        self.shown = Some(snapshot);
        Some(frame)
    }
}

/// An open live connection: it holds its slot under the caps and is counted for `/metrics`.
struct Connected {
    kind: &'static str,
    _slot: Slot,
}

impl Connected {
    fn new(kind: &'static str, slot: Slot) -> Self {
        metrics::gauge!("live_connections", "kind" => kind).increment(1.0);
        Self { kind, _slot: slot }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        metrics::gauge!("live_connections", "kind" => self.kind).decrement(1.0);
    }
}

/// The parameters of the live streams.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// How many entries each board shows.
    #[param(inline)]
    limit: Option<Limit>,
    /// Resume after this position, for clients that cannot send `Last-Event-ID`.
    #[param(inline)]
    last_event_id: Option<Position>,
}

fn resume_from(headers: &HeaderMap, query: &StreamQuery) -> Result<Option<u64>, QueryError> {
    match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| QueryError::InvalidRequest("Last-Event-ID must be a position".into())),
        None => Ok(query.last_event_id.map(Position::get)),
    }
}

/// The board, live, as Server-Sent Events: a `snapshot` event, then an `update` event whenever
/// the top changes (conflated for slow clients), each with the body of `GET /v1/leaderboard`
/// and `id: <position>`. Resumes from `Last-Event-ID` (or `?last_event_id=`).
#[utoipa::path(get, path = "/v1/leaderboard/stream", tag = "leaderboard", params(StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "The `id` of the last event received")),
    responses((status = 200, description = "An endless event stream", body = String,
        content_type = "text/event-stream")))]
pub async fn sse(
    State(streams): State<Streams>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Strict(query): Strict<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, QueryError> {
    let live = streams.boards.global().clone();
    open_sse(streams, &live, false, client, &headers, &query)
}

/// One board, live, as Server-Sent Events: as `/v1/leaderboard/stream`, each body naming the
/// board and its season. When the board's season ends, an `update` shows the new season's board.
#[utoipa::path(get, path = "/v1/boards/{board}/stream", tag = "boards", params(crate::routes::boards::BoardPath, StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "The `id` of the last event received")),
    responses(
        (status = 200, description = "An endless event stream", body = String, content_type = "text/event-stream"),
        (status = 404, description = "No such board (`unknown_board`)", body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn board_sse(
    State(streams): State<Streams>,
    path: Result<Path<String>, PathRejection>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Strict(query): Strict<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, QueryError> {
    let live = board(&streams, path)?;
    open_sse(streams, &live, true, client, &headers, &query)
}

/// The live board of a stream path, once loaded.
fn board(streams: &Streams, path: Result<Path<String>, PathRejection>) -> Result<Arc<LiveBoard>, QueryError> {
    let Path(id) = path.map_err(|rejection| QueryError::InvalidRequest(rejection.body_text()))?;
    let (_, live) = streams.boards.get(&id).ok_or_else(|| QueryError::UnknownBoard(id.clone()))?;
    if !live.is_loaded() {
        let loading = !streams.boards.global().is_loaded();
        return Err(if loading { QueryError::Loading } else { QueryError::BoardNotReady(id) });
    }
    Ok(live.clone())
}

fn open_sse(
    streams: Streams,
    live: &LiveBoard,
    labelled: bool,
    client: std::net::IpAddr,
    headers: &HeaderMap,
    query: &StreamQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, QueryError> {
    let limit = Limit::or_default(query.limit) as usize;
    let feed = Feed::new(live, limit, labelled, resume_from(headers, query)?, streams.shutdown.clone());
    let connected = Connected::new("sse", streams.admission.open_stream(client)?);
    let events = futures::stream::unfold((feed, connected, true), |(mut feed, connected, first)| async move {
        let frame = feed.next().await?;
        let mut event = Event::default().event(frame.kind.name()).id(frame.position.to_string()).data(frame.text());
        if first {
            event = event.retry(Duration::from_secs(1));
        }
        Some((Ok(event), (feed, connected, false)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(streams.heartbeat).text("heartbeat")))
}

/// The board, live, over WebSocket: the frames of the event stream as
/// `{"type":"snapshot"|"update","position",...}`. Resumes from `?last_event_id=`.
#[utoipa::path(get, path = "/v1/leaderboard/ws", tag = "leaderboard", params(StreamQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake, or bad parameters (`invalid_request`)",
            body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn websocket(
    State(streams): State<Streams>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Strict(query): Strict<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, QueryError> {
    let live = streams.boards.global().clone();
    open_websocket(streams, &live, false, client, &headers, &query, upgrade)
}

/// One board, live, over WebSocket: the frames of `/v1/boards/{board}/stream`.
#[utoipa::path(get, path = "/v1/boards/{board}/ws", tag = "boards", params(crate::routes::boards::BoardPath, StreamQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket handshake, or bad parameters (`invalid_request`)",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such board (`unknown_board`)", body = Problem, content_type = PROBLEM_JSON),
    ))]
pub async fn board_websocket(
    State(streams): State<Streams>,
    path: Result<Path<String>, PathRejection>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Strict(query): Strict<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, QueryError> {
    let live = board(&streams, path)?;
    open_websocket(streams, &live, true, client, &headers, &query, upgrade)
}

fn open_websocket(
    streams: Streams,
    live: &LiveBoard,
    labelled: bool,
    client: std::net::IpAddr,
    headers: &HeaderMap,
    query: &StreamQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, QueryError> {
    let limit = Limit::or_default(query.limit) as usize;
    let upgrade = upgrade.map_err(|rejection| QueryError::InvalidRequest(rejection.body_text()))?;
    let feed = Feed::new(live, limit, labelled, resume_from(headers, query)?, streams.shutdown.clone());
    // Clients send nothing but pings and closes: a large message is refused before it is read.
    let upgrade = upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(WEBSOCKET_READ_BUFFER);
    let connected = Connected::new("ws", streams.admission.open_stream(client)?);
    Ok(upgrade.on_upgrade(move |socket| serve_websocket(socket, feed, streams.heartbeat, connected)).into_response())
}

async fn serve_websocket(mut socket: WebSocket, mut feed: Feed, heartbeat: Duration, _connected: Connected) {
    let mut ping = tokio::time::interval(heartbeat);
    ping.tick().await;
    loop {
        let outgoing = tokio::select! {
            frame = feed.next() => match frame {
                Some(frame) => Message::Text(format!("{{\"type\":\"{}\",{}", frame.kind.name(), &frame.text()[1..]).into()),
                None => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            _ = ping.tick() => Message::Ping(Default::default()),
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
        };
        if socket.send(outgoing).await.is_err() {
            return;
        }
    }
}

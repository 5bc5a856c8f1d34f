//! NATS: connecting to it, and the JetStream stream that holds an exact, ordered copy of the
//! event log (stream sequence `n` is the event at log position `n`).

use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, HeaderMap};

use crate::config::{NatsConfig, SubjectConfig};
use store::{Claim, StoredEvent};

/// Header carrying the event's log position (equal to its stream sequence).
pub const POSITION_HEADER: &str = "Scoreboard-Position";
/// Header carrying the event's type, e.g. `ScoreAwarded`.
pub const EVENT_TYPE_HEADER: &str = "Scoreboard-Event-Type";
/// Header carrying the event's schema version.
pub const EVENT_VERSION_HEADER: &str = "Scoreboard-Event-Version";

/// Connects to NATS without waiting: the client keeps retrying in the background, so a
/// service starts (and accepts work) while NATS is down. Authenticates and trusts servers as
/// `config.auth` says.
pub async fn connect(config: &NatsConfig, name: &str) -> Result<Client, async_nats::ConnectError> {
    let mut options =
        ConnectOptions::new().name(name).retry_on_initial_connect().max_reconnects(None).reconnect_delay_callback(
            |attempt| Duration::from_millis((100 * 2u64.pow(attempt.min(5) as u32)).min(2_000)),
        );
    let auth = &config.auth;
    if let Some(path) = &auth.nats_creds {
        options = options.credentials_file(path).await.map_err(|error| {
            async_nats::ConnectError::with_source(async_nats::ConnectErrorKind::Authentication, error)
        })?;
    }
    if let (Some(user), Some(password)) = (&auth.nats_user, &auth.nats_password) {
        options = options.user_and_password(user.clone(), password.expose().to_string());
    }
    if let Some(token) = &auth.nats_token {
        options = options.token(token.expose().to_string());
    }
    if let Some(ca) = &auth.nats_tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    // Several servers of a cluster may be named, comma separated; more are learnt from them.
    options.connect(config.nats_url.split(',').map(str::trim).collect::<Vec<_>>()).await
}

/// Whether the client is connected now.
pub fn is_connected(client: &Client) -> Result<(), String> {
    match client.connection_state() {
        async_nats::connection::State::Connected => Ok(()),
        state => Err(format!("NATS {state}")),
    }
}

/// The stream that copies the log, and the subjects its events are published on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStream {
    name: String,
    subject_prefix: String,
    replicas: usize,
}

impl LogStream {
    /// A stream called `name` holding subjects `<subject_prefix>.>`.
    pub fn new(name: &str, subject_prefix: &str) -> Self {
        Self { name: name.to_string(), subject_prefix: subject_prefix.trim_end_matches('.').to_string(), replicas: 1 }
    }

    /// The same stream, created with `replicas` copies (in a JetStream cluster).
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas.max(1);
        self
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The subject an event of `event_type` is published on.
    pub fn subject(&self, event_type: &str) -> String {
        format!("{}.{event_type}", self.subject_prefix)
    }

    /// The subject that matches every event of the stream.
    pub fn all_subjects(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }

    /// File storage, nothing expires, and nothing can be deleted or purged: the stream is a
    /// copy of an append-only log.
    pub fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: vec![self.all_subjects()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            deny_delete: true,
            deny_purge: true,
            duplicate_window: Duration::from_secs(120),
            num_replicas: self.replicas,
            ..Default::default()
        }
    }

    /// Creates the stream, or, if it exists, updates the settings Scoreboard relies on
    /// (subjects, no deletes or purges, the duplicate window) and keeps the operator's others
    /// (replicas, placement, limits).
    pub async fn ensure(&self, js: &jetstream::Context) -> Result<stream::Stream, async_nats::Error> {
        let wanted = self.config();
        let mut stream = js.get_or_create_stream(wanted.clone()).await?;
        let mut current = stream.info().await?.config.clone();
        let owned = |c: &stream::Config| (c.subjects.clone(), c.deny_delete, c.deny_purge, c.duplicate_window);
        if owned(&current) != owned(&wanted) {
            tracing::info!(stream = %self.name, "updating stream settings");
            current.subjects = wanted.subjects;
            current.deny_delete = wanted.deny_delete;
            current.deny_purge = wanted.deny_purge;
            current.duplicate_window = wanted.duplicate_window;
            js.update_stream(current).await?;
            stream = js.get_stream(&self.name).await?;
        }
        Ok(stream)
    }
}

/// The message that carries `event` in the stream: its exact payload bytes, `Nats-Msg-Id` =
/// event id, and the position, type and version headers. The caller adds the expected last
/// sequence.
pub fn publication(event: &StoredEvent) -> PublishMessage {
    PublishMessage::build()
        .payload(event.payload.clone().into())
        .message_id(event.event_id.to_string())
        .header(POSITION_HEADER, event.position.to_string().as_str())
        .header(EVENT_TYPE_HEADER, event.event_type.as_str())
        .header(EVENT_VERSION_HEADER, event.event_version.to_string().as_str())
}

/// The message that carries a signed checkpoint of `tree_size` events in the checkpoint
/// stream: the note as signed, `Nats-Msg-Id` = `checkpoint-<tree size>` (replicas signing the
/// same tree publish it once).
pub fn checkpoint_publication(tree_size: u64, note: &str) -> PublishMessage {
    PublishMessage::build().payload(note.to_string().into()).message_id(format!("checkpoint-{tree_size}"))
}

/// The message that carries part `part` (from 1) of `parts` of a version of a season's
/// results in the results stream: those results as JSON (`events::results::Published`, its
/// entries a run of ranks), `Nats-Msg-Id` = `<board>/<season>/<version>/<part>` (a part sent
/// again after a crash, within the stream's duplicate window, is stored once) and the header
/// `Scoreboard-Results-Part: <part>/<parts>`.
pub fn results_publication(results: &events::results::Published, part: usize, parts: usize) -> PublishMessage {
    let body = serde_json::to_vec(results).expect("results serialise");
    PublishMessage::build()
        .payload(body.into())
        .message_id(format!("{}/{}/{}/{part}", results.board, results.season, results.version))
        .header(RESULTS_PART_HEADER, format!("{part}/{parts}").as_str())
}

/// The header that says which part of a version of season results a message is.
pub const RESULTS_PART_HEADER: &str = "Scoreboard-Results-Part";

/// A message of the stream that is not an event of the log as [`publication`] writes it.
#[derive(Debug, thiserror::Error)]
#[error("not an event of the log: {0}")]
pub struct ForeignMessage(String);

/// What a message of the stream claims: the event at the position its `Scoreboard-Position`
/// header names, as [`publication`] writes it. Only the log can confirm it
/// (`LeaderboardStore::fold_claimed`); missing or malformed identity headers make a claim the
/// log never confirms. A message with no position is not a claim at all.
pub fn claim(headers: Option<&HeaderMap>, payload: &[u8]) -> Result<Claim, ForeignMessage> {
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
    let position = header(POSITION_HEADER)
        .ok_or_else(|| ForeignMessage(format!("no {POSITION_HEADER} header")))?
        .parse()
        .map_err(|_| ForeignMessage(format!("malformed {POSITION_HEADER} header")))?;
    Ok(Claim {
        position,
        event_id: header(async_nats::header::NATS_MESSAGE_ID.as_ref())
            .and_then(|id| id.parse().ok())
            .unwrap_or_default(),
        event_type: header(EVENT_TYPE_HEADER).unwrap_or_default().to_string(),
        event_version: header(EVENT_VERSION_HEADER).and_then(|v| v.parse().ok()).unwrap_or_default(),
        payload: payload.to_vec(),
    })
}

/// The streams the subject settings describe (here, beside the streams: `config` knows no
/// stream).
impl SubjectConfig {
    /// The stream definition these settings describe.
    pub fn log_stream(&self) -> LogStream {
        LogStream::new(&self.nats_stream, &self.nats_subject_prefix).with_replicas(self.nats_stream_replicas)
    }

    /// The stream of signed checkpoints: `<NATS_STREAM>_CHECKPOINTS`, subjects
    /// `<NATS_CHECKPOINT_SUBJECT>.<tree size>`, as append-only as the log's.
    pub fn checkpoint_stream(&self) -> LogStream {
        LogStream::new(&format!("{}_CHECKPOINTS", self.nats_stream), &self.nats_checkpoint_subject)
            .with_replicas(self.nats_stream_replicas)
    }

    /// The stream of season results: `<NATS_STREAM>_RESULTS`, subjects
    /// `<NATS_RESULTS_SUBJECT>.<board>`.
    pub fn results_stream(&self) -> LogStream {
        LogStream::new(&format!("{}_RESULTS", self.nats_stream), &self.nats_results_subject)
            .with_replicas(self.nats_stream_replicas)
    }
}

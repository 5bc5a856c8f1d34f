//! Configuration shared by the services, flattened into each service's own `Config`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// Where the event log and read model live. Its `Debug` never shows the URL's password.
#[derive(Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL URL, e.g. `postgres://postgres@127.0.0.1:5432/scoreboard`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Connections.
    #[command(flatten)]
    pub pool: PoolConfig,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("database_url", &redacted(&self.database_url))
            .field("pool", &self.pool)
            .finish()
    }
}

/// `url` as it may be shown: the password of its user and its query (which may hold one)
/// replaced by `***`.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "***".into() };
    let (rest, query) = rest.split_once('?').map_or((rest, ""), |(rest, _)| (rest, "?***"));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{path}{query}")
}

/// The boards other than `global` (see `config/boards.example.toml`). The projector folds
/// them and the query side serves them: give both the same file.
#[derive(Debug, Clone, Default, Args)]
pub struct BoardsConfig {
    /// TOML file of `[boards.<id>]` tables (`actions`, `season`, `aggregate`); unset: only
    /// `global`.
    #[arg(long, env = "BOARDS")]
    pub boards: Option<PathBuf>,
    /// How long after a season's end its results wait for appends still in flight before they
    /// are published.
    #[arg(long, env = "SEASON_GRACE", default_value = "60s", value_parser = parse_duration)]
    pub season_grace: Duration,
}

impl BoardsConfig {
    /// The boards defined, `global` first.
    pub fn load(&self) -> Result<events::boards::BoardDefs, events::boards::BoardsError> {
        match &self.boards {
            Some(path) => events::boards::BoardDefs::from_file(path),
            None => Ok(events::boards::BoardDefs::default()),
        }
    }
}

/// How this process uses its PostgreSQL connections.
#[derive(Debug, Clone, Args)]
pub struct PoolConfig {
    /// Largest number of connections this process opens.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
    /// How long a transaction waits for a lock, and how long one may sit idle while holding
    /// locks, before PostgreSQL ends it: a process that loses its network in the middle of an
    /// append cannot hold the log's append lock for longer.
    #[arg(long, env = "DATABASE_LOCK_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub database_lock_timeout: Duration,
}

impl PoolConfig {
    /// A pool on `url` with these settings, connecting on first use.
    pub fn connect_lazy(&self, url: &str) -> Result<sqlx::PgPool, sqlx::Error> {
        store::postgres::connect_lazy(url, self.database_max_connections, self.database_lock_timeout)
    }
}

/// The NATS server, and the names used on it.
#[derive(Debug, Clone, Args)]
pub struct NatsConfig {
    /// NATS server URL; several servers of one cluster may be listed, comma separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222", hide_env_values = true)]
    pub nats_url: String,
    /// How to authenticate.
    #[command(flatten)]
    pub auth: NatsAuth,
    /// Stream and subjects.
    #[command(flatten)]
    pub subjects: SubjectConfig,
}

/// How a process proves to NATS who it is, and which servers it trusts. At most one of
/// credentials file, user and password, or token.
#[derive(Debug, Clone, Default, Args)]
pub struct NatsAuth {
    /// NATS credentials file (user JWT and NKey seed, as `nsc` writes it).
    #[arg(long, env = "NATS_CREDS", conflicts_with_all = ["nats_user", "nats_token"])]
    pub nats_creds: Option<PathBuf>,
    /// NATS user name (with `NATS_PASSWORD`).
    #[arg(long, env = "NATS_USER", requires = "nats_password", conflicts_with = "nats_token")]
    pub nats_user: Option<String>,
    /// NATS password of `NATS_USER`.
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true, requires = "nats_user")]
    pub nats_password: Option<Secret>,
    /// NATS authentication token.
    #[arg(long, env = "NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<Secret>,
    /// PEM file of the certificate authorities that sign the NATS servers' certificates: with it,
    /// TLS is required.
    #[arg(long, env = "NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
}

/// A secret setting: its value never appears in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        Ok(Self(value.to_string()))
    }
}

/// Reads the setting it names (`ACTION_KEYS`, `ADMIN_TOKENS`) for clap. A refusal names the
/// setting and what is wrong (which entry, how long a secret), never the value: clap's own
/// message would print the whole value, every valid secret beside the bad one.
#[derive(Debug, Clone, Copy)]
pub struct Keys(pub &'static str);

impl clap::builder::TypedValueParser for Keys {
    type Value = events::KeySet;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<events::KeySet, clap::Error> {
        let refuse = |why: &dyn std::fmt::Display| {
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{}: {why}\n", self.0)).with_cmd(cmd)
        };
        let text = value.to_str().ok_or_else(|| refuse(&"not UTF-8"))?;
        events::KeySet::parse(text).map_err(|error| refuse(&error))
    }
}

/// The JetStream stream that copies the log, and the subjects Scoreboard uses.
#[derive(Debug, Clone, Args)]
pub struct SubjectConfig {
    /// Name of the JetStream stream that holds the copy of the event log.
    #[arg(long, env = "NATS_STREAM", default_value = "SCOREBOARD_EVENTS")]
    pub nats_stream: String,
    /// Subject prefix of the events in that stream (`<prefix>.<EventType>`).
    #[arg(long, env = "NATS_SUBJECT_PREFIX", default_value = "scoreboard.events")]
    pub nats_subject_prefix: String,
    /// Replicas of the stream when a service creates it (a JetStream cluster keeps that many
    /// copies; an existing stream keeps the replicas it has).
    #[arg(long, env = "NATS_STREAM_REPLICAS", default_value_t = 1)]
    pub nats_stream_replicas: usize,
    /// Core NATS subject on which the projector announces each change of the read model.
    #[arg(long, env = "NATS_CHANGES_SUBJECT", default_value = "scoreboard.leaderboard.changes")]
    pub nats_changes_subject: String,
    /// Subject prefix of the signed checkpoints, kept in the stream `<NATS_STREAM>_CHECKPOINTS`
    /// (`<prefix>.<tree size>`).
    #[arg(long, env = "NATS_CHECKPOINT_SUBJECT", default_value = "scoreboard.checkpoints")]
    pub nats_checkpoint_subject: String,
    /// Subject prefix of season results, kept in the stream `<NATS_STREAM>_RESULTS`
    /// (`<prefix>.<board>`, one message per board, season and version).
    #[arg(long, env = "NATS_RESULTS_SUBJECT", default_value = "scoreboard.results")]
    pub nats_results_subject: String,
}

/// How every HTTP server of Scoreboard treats its clients.
#[derive(Debug, Clone, Args)]
pub struct HttpConfig {
    /// A client must send each request's whole header within this time, or it is disconnected.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// A new connection must send its first byte within this time, or it is closed.
    #[arg(long, env = "FIRST_BYTE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub first_byte_timeout: Duration,
    /// A request's body must arrive whole within this time of the handler asking for it, or the
    /// request is answered `408 request_timeout`.
    #[arg(long, env = "BODY_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_timeout: Duration,
    /// Connections open at once; beyond, a new one is answered `503` and closed. Unset: the
    /// process's descriptor limit less 64 kept for its database, NATS and files (the soft limit
    /// is raised to the hard one at start). Never more than that.
    #[arg(long, env = "CONNECTIONS_MAX")]
    pub connections_max: Option<usize>,
    /// Connections open at once from one client address (an IPv6 /64); a trusted proxy's
    /// connections count against `CONNECTIONS_MAX` only.
    #[arg(long, env = "CONNECTIONS_PER_ADDRESS_MAX", default_value_t = 1024)]
    pub connections_per_address_max: usize,
    /// Proxies (CIDRs or addresses, comma separated) whose `X-Forwarded-For` names the client;
    /// from anyone else the header is ignored.
    #[arg(long, env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: crate::client::TrustedProxies,
}

/// Parses durations written as `250ms`, `2s`, `5m` or `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 500ms, 2s, 5m or 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        "h" => Ok(Duration::from_secs(number * 3600)),
        _ => Err(format!("{text:?} is not a duration like 500ms, 2s, 5m or 1h")),
    }
}

/// Inserts `subcommand` after the program name when the command line starts with none, so
/// `command-svc` and `command-svc --flag` mean `command-svc serve …`.
pub fn default_subcommand(
    args: impl IntoIterator<Item = std::ffi::OsString>,
    subcommand: &str,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<_> = args.into_iter().collect();
    let first = args.get(1).and_then(|a| a.to_str());
    let names_none = match first {
        None => true,
        Some("-h" | "--help" | "-V" | "--version") => false,
        Some(arg) => arg.starts_with('-'),
    };
    if names_none {
        args.insert(1.min(args.len()), subcommand.into());
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        let config = DatabaseConfig {
            database_url:
                "postgres://scoreboard:hunter2-secret@db.internal:5432/scoreboard?sslmode=require&password=also-secret"
                    .into(),
            pool: PoolConfig { database_max_connections: 4, database_lock_timeout: Duration::from_secs(5) },
        };
        let shown = format!("{config:?} {config:#?}");
        assert!(!shown.contains("hunter2") && !shown.contains("also-secret"), "{shown}");
        assert!(shown.contains("postgres://scoreboard:***@db.internal:5432/scoreboard?***"), "{shown}");
        assert_eq!(redacted("postgres://localhost/db"), "postgres://localhost/db");
    }

    #[test]
    fn a_missing_subcommand_defaults() {
        let run = |args: &[&str]| -> Vec<String> {
            default_subcommand(args.iter().map(Into::into), "serve")
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        assert_eq!(run(&["svc"]), ["svc", "serve"]);
        assert_eq!(run(&["svc", "--addr", "x"]), ["svc", "serve", "--addr", "x"]);
        assert_eq!(run(&["svc", "mint-token"]), ["svc", "mint-token"]);
        assert_eq!(run(&["svc", "--help"]), ["svc", "--help"]);
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "2", "s", "2 days", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}

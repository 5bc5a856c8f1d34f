//! command-svc's configuration, read from the environment (flags mirror every variable).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use events::{ActionCatalog, CatalogError, KeySet, TokenPolicy};
use platform::config::{DatabaseConfig, HttpConfig, Keys, NatsConfig, parse_duration};

use crate::desk::{Operators, Trust};
use crate::limits::RateLimit;

/// Everything `command-svc serve` needs.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "COMMAND_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// The event log.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// The JetStream copy of the log.
    #[command(flatten)]
    pub nats: NatsConfig,
    /// Trusted signing keys.
    #[command(flatten)]
    pub keys: KeyConfig,
    /// Catalog and time rules.
    #[command(flatten)]
    pub tokens: TokenRules,
    /// Admission limits.
    #[command(flatten)]
    pub limits: LimitConfig,
    /// Group commit.
    #[command(flatten)]
    pub append: AppendConfig,
    /// Signed checkpoints.
    #[command(flatten)]
    pub audit: AuditConfig,
    /// HTTP clients.
    #[command(flatten)]
    pub http: HttpConfig,
}

/// Where the trusted signing keys come from: inline, a file re-read on `SIGHUP`, or both.
#[derive(Debug, Clone, Args)]
pub struct KeyConfig {
    /// Trusted signing keys: `kid=secret,kid2=secret2` (each secret at least 32 bytes).
    #[arg(long, env = "ACTION_KEYS", hide_env_values = true, value_parser = Keys("ACTION_KEYS"))]
    pub action_keys: Option<KeySet>,
    /// File of trusted signing keys, one `kid=secret` a line; `verify-only` after a key accepts
    /// its tokens but mints none. Re-read on SIGHUP.
    #[arg(long, env = "ACTION_KEYS_FILE")]
    pub action_keys_file: Option<PathBuf>,
    /// Operators' credentials for moderation: `name=secret,name2=secret2` (each secret at least
    /// 32 bytes), sent as `Authorization: Bearer <secret>`. None: moderation is off.
    #[arg(long, env = "ADMIN_TOKENS", hide_env_values = true, value_parser = Keys("ADMIN_TOKENS"))]
    pub admin_tokens: Option<KeySet>,
    /// File of operators' credentials, one `name=secret` a line. Re-read on SIGHUP.
    #[arg(long, env = "ADMIN_TOKENS_FILE")]
    pub admin_tokens_file: Option<PathBuf>,
}

impl KeyConfig {
    /// The keys configured now, the file read afresh; `None` when neither source is set.
    pub fn load(&self) -> Result<Option<KeySet>, String> {
        load_pairs(self.action_keys.clone(), self.action_keys_file.as_deref(), "ACTION_KEYS_FILE")
    }

    /// The operators' credentials configured now, the file read afresh; `None` when neither
    /// source is set (moderation is off).
    pub fn load_admins(&self) -> Result<Option<KeySet>, String> {
        load_pairs(self.admin_tokens.clone(), self.admin_tokens_file.as_deref(), "ADMIN_TOKENS_FILE")
    }
}

/// `inline` pairs and those of the file at `path` (named `variable` in errors), together.
fn load_pairs(
    inline: Option<KeySet>,
    path: Option<&std::path::Path>,
    variable: &str,
) -> Result<Option<KeySet>, String> {
    let from_file = match path {
        Some(path) => {
            let refused = |reason: &dyn std::fmt::Display| format!("{variable} {}: {reason}", path.display());
            let text = std::fs::read_to_string(path).map_err(|e| refused(&e))?;
            Some(KeySet::parse_file(&text).map_err(|e| refused(&e))?)
        }
        None => None,
    };
    match (inline, from_file) {
        (Some(inline), Some(file)) => inline.merge(file).map(Some).map_err(|e| format!("{variable}: {e}")),
        (inline, file) => Ok(inline.or(file)),
    }
}

/// How the Merkle tree's checkpoints are signed.
#[derive(Debug, Clone, Args)]
pub struct AuditConfig {
    /// The checkpoint signer, in the note format `PRIVATE+KEY+<name>+<hash>+<base64>`; unset, a
    /// key named `scoreboard` is generated once and kept in the database.
    #[arg(long, env = "AUDIT_SIGNING_KEY", hide_env_values = true)]
    pub audit_signing_key: Option<platform::config::Secret>,
    /// How often a checkpoint is signed while the log grows.
    #[arg(long, env = "CHECKPOINT_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub checkpoint_interval: Duration,
}

/// Group commit settings.
#[derive(Debug, Clone, Args)]
pub struct AppendConfig {
    /// The most events appended in one transaction.
    #[arg(long, env = "APPEND_BATCH_MAX", default_value_t = 1000)]
    pub append_batch_max: usize,
    /// The most requests waiting for the group commit; beyond them a request is answered 503.
    #[arg(long, env = "APPEND_QUEUE_MAX", default_value_t = 4096)]
    pub append_queue_max: usize,
    /// How long one append transaction may take before its requests are answered 503.
    #[arg(long, env = "APPEND_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub append_timeout: Duration,
}

/// What action tokens are worth and when they are valid.
#[derive(Debug, Clone, Args)]
pub struct TokenRules {
    /// TOML file with an `[actions]` table of `name = points`; the shipped example when unset.
    #[arg(long, env = "ACTION_CATALOG")]
    pub action_catalog: Option<PathBuf>,
    /// Clock skew allowed on `exp` and `iat`.
    #[arg(long, env = "TOKEN_LEEWAY", default_value = "30s", value_parser = parse_duration)]
    pub token_leeway: Duration,
    /// The longest lifetime (`exp - iat`) a token may have.
    #[arg(long, env = "TOKEN_MAX_LIFETIME", default_value = "900s", value_parser = parse_duration)]
    pub token_max_lifetime: Duration,
    /// When set, a token's `iss` must be exactly this.
    #[arg(long, env = "TOKEN_ISSUER")]
    pub token_issuer: Option<String>,
    /// When set, a token's `aud` must be or contain exactly this (recommended in production:
    /// a token minted with the same key for another purpose must not count here).
    #[arg(long, env = "TOKEN_AUDIENCE")]
    pub token_audience: Option<String>,
}

impl TokenRules {
    /// The configured catalog, or the shipped example.
    pub fn catalog(&self) -> Result<ActionCatalog, CatalogError> {
        match &self.action_catalog {
            Some(path) => ActionCatalog::from_file(path),
            None => Ok(ActionCatalog::example()),
        }
    }

    /// The configured time rules.
    pub fn policy(&self) -> TokenPolicy {
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        TokenPolicy {
            leeway_secs: secs(self.token_leeway),
            max_lifetime_secs: secs(self.token_max_lifetime),
            issuer: self.token_issuer.clone(),
            audience: self.token_audience.clone(),
        }
    }
}

/// Loads what tokens are checked against: the configured keys (required) and the action catalog.
pub fn load_trust(config: &KeyConfig, tokens: &TokenRules) -> anyhow::Result<Trust> {
    let keys = config.load().map_err(anyhow::Error::msg)?;
    trust_in(keys.ok_or_else(|| anyhow::anyhow!("ACTION_KEYS or ACTION_KEYS_FILE is required"))?, config, tokens)
}

/// `keys`, with the operators' credentials of `config` and the action catalog loaded afresh.
/// An operator's secret that is also a signing key's is refused: an action key must never
/// moderate.
pub fn trust_in(keys: KeySet, config: &KeyConfig, tokens: &TokenRules) -> anyhow::Result<Trust> {
    let catalog = tokens.catalog().map_err(|e| anyhow::anyhow!("ACTION_CATALOG: {e}"))?;
    let admins = config.load_admins().map_err(anyhow::Error::msg)?;
    for (name, secret) in admins.iter().flat_map(KeySet::iter) {
        if keys.iter().any(|(_, key)| key.expose() == secret.expose()) {
            anyhow::bail!("ADMIN_TOKENS: the secret of operator {name} is also an action key's; give it its own");
        }
    }
    Ok(Trust { keys, catalog, operators: admins.map(Operators::new) })
}

/// Request admission limits.
#[derive(Debug, Clone, Args)]
pub struct LimitConfig {
    /// Token bucket per player: `<count>/<s|m|h>` (burst = count) or `off`.
    #[arg(long, env = "RATE_LIMIT_PER_PLAYER", default_value = "10/s")]
    pub rate_limit_per_player: RateLimit,
    /// Token bucket per client address: `<count>/<s|m|h>` (burst = count) or `off`.
    #[arg(long, env = "RATE_LIMIT_PER_ADDRESS", default_value = "1000/s")]
    pub rate_limit_per_address: RateLimit,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 8 * 1024)]
    pub body_limit_bytes: usize,
}

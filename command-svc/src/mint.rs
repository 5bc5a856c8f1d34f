//! `command-svc mint-token`: what an issuer does, from the command line.

use std::time::Duration;

use clap::Args;
use events::{ActionClaims, ActionName, DisplayName, KeyId, PlayerId};
use platform::config::parse_duration;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::{KeyConfig, TokenRules};

/// Mints an action token with a configured key.
#[derive(Debug, Clone, Args)]
pub struct MintArgs {
    /// The key to sign with (one of `ACTION_KEYS`); may be left out when there is only one key.
    #[arg(long)]
    pub kid: Option<KeyId>,
    /// The player who completed the action.
    #[arg(long)]
    pub player: PlayerId,
    /// The action completed (must be in the catalog).
    #[arg(long)]
    pub action: ActionName,
    /// The player's display name.
    #[arg(long)]
    pub name: Option<DisplayName>,
    /// The score to report, for an action the catalog says is worth a reported score.
    #[arg(long, allow_hyphen_values = true)]
    pub score: Option<i64>,
    /// How long the token stays valid.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    pub ttl: Duration,
    /// The action id (`jti`); a fresh UUIDv7 when left out.
    #[arg(long)]
    pub jti: Option<Uuid>,
    /// The keys to sign with, as the service reads them (verify-only keys are never used).
    #[command(flatten)]
    pub keys: KeyConfig,
    /// Catalog and lifetime rules, as the service reads them.
    #[command(flatten)]
    pub tokens: TokenRules,
}

/// Why no token was minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// `--kid` names no configured key, or is needed to choose between several.
    #[error("{0}")]
    Key(String),
    /// The action is not in the catalog, or its score is missing, not asked for or out of the
    /// catalog's range: the service would refuse the token.
    #[error(transparent)]
    Worth(#[from] events::AwardError),
    /// The catalog could not be read.
    #[error(transparent)]
    Catalog(#[from] events::CatalogError),
    /// The lifetime is beyond what the service accepts.
    #[error("--ttl {0:?} exceeds TOKEN_MAX_LIFETIME")]
    TooLong(Duration),
}

/// Mints the token `args` describe, issued now.
pub fn mint_token(args: &MintArgs) -> Result<String, MintError> {
    let keys = args.keys.load().map_err(MintError::Key)?;
    let keys = keys.ok_or_else(|| MintError::Key("ACTION_KEYS or ACTION_KEYS_FILE is required".into()))?;
    let kid = match &args.kid {
        Some(kid) => kid.clone(),
        None => {
            let mut ids = keys.signing_ids();
            match (ids.next(), ids.next()) {
                (Some(only), None) => only.clone(),
                _ => return Err(MintError::Key("several keys are configured; choose one with --kid".into())),
            }
        }
    };
    let (kid, secret) = keys
        .signing(kid.as_str())
        .ok_or_else(|| MintError::Key(format!("key {kid} is not a signing key (absent, or marked verify-only)")))?;
    events::award::points(&args.tokens.catalog()?, &args.action, args.score)?;
    if args.ttl > args.tokens.token_max_lifetime {
        return Err(MintError::TooLong(args.ttl));
    }
    let iat = OffsetDateTime::now_utc().unix_timestamp();
    let claims = ActionClaims {
        jti: args.jti.unwrap_or_else(Uuid::now_v7),
        sub: args.player.clone(),
        act: args.action.clone(),
        name: args.name.clone(),
        score: args.score,
        iat,
        exp: iat + i64::try_from(args.ttl.as_secs()).unwrap_or(i64::MAX),
    };
    Ok(events::mint_for(kid, secret, &claims, &args.tokens.policy()))
}

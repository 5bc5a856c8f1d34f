//! The command side's state: what a token is checked against (the keys, the catalog, the
//! operators, replaced together on `SIGHUP`), and the desk every request is served from.

use std::fmt;
use std::sync::{Arc, RwLock};

use axum::http::{HeaderMap, header};
use events::usage::Window;
use events::{ActionCatalog, KeySet, Operator, PlayerId, TokenPolicy};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use store::{EventStore, StoreError, UsageStats};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use crate::append::Appender;
use crate::error::ActionError;
use crate::limits::RateLimits;

/// What a token is checked against: the trusted keys and the action catalog, replaced together
/// when they are re-read (on `SIGHUP`).
#[derive(Debug)]
pub struct Trust {
    /// Trusted keys.
    pub keys: KeySet,
    /// Points per action.
    pub catalog: ActionCatalog,
    /// Who may moderate; `None`: moderation is off.
    pub operators: Option<Operators>,
}

/// The [`Trust`] in force, shared by every request and replaced as a whole on reload.
#[derive(Clone, Debug)]
pub struct TrustInForce(Arc<RwLock<Arc<Trust>>>);

impl TrustInForce {
    /// `trust`, in force from now on.
    pub fn new(trust: Trust) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(trust))))
    }

    /// The keys and catalog in force.
    pub fn current(&self) -> Arc<Trust> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Puts `trust` in force for every request from now on.
    pub fn replace(&self, trust: Trust) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(trust);
    }
}

/// What the action endpoint needs.
#[derive(Clone)]
pub struct ActionDesk {
    /// Keys and catalog; requests in flight finish with the ones they started with.
    pub trust: TrustInForce,
    /// Time rules.
    pub policy: TokenPolicy,
    /// Admission limits.
    pub limits: RateLimits,
    /// The group-commit appender.
    pub appender: Appender,
    /// What the operators' endpoints read.
    pub history: History,
}

impl ActionDesk {
    /// The operator named by `headers`, once the client's address has budget left.
    pub fn operator(&self, client: std::net::IpAddr, headers: &HeaderMap) -> Result<Operator, ActionError> {
        self.limits.check_address(client).map_err(ActionError::RateLimited)?;
        match &self.trust.current().operators {
            None => Err(ActionError::Unauthorized("moderation is off: no ADMIN_TOKENS are configured")),
            Some(operators) => operators
                .authenticate(headers)
                .ok_or(ActionError::Unauthorized("send an operator's secret as Authorization: Bearer <secret>")),
        }
    }
}

/// The operators' credentials (`ADMIN_TOKENS`, `ADMIN_TOKENS_FILE`).
#[derive(Clone)]
pub struct Operators(KeySet);

impl fmt::Debug for Operators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

impl Operators {
    /// The operators of `credentials`: each name with its secret.
    pub fn new(credentials: KeySet) -> Self {
        Self(credentials)
    }

    /// The operator whose secret `headers` carry as `Authorization: Bearer <secret>` (the scheme
    /// in any case, RFC 9110 §11.1). Every secret is compared, each in constant time, so the
    /// answer's timing tells nothing.
    pub fn authenticate(&self, headers: &HeaderMap) -> Option<Operator> {
        let presented = bearer(headers.get(header::AUTHORIZATION)?.as_bytes())?;
        let mut found = None;
        for (name, secret) in self.0.iter() {
            if bool::from(secret.expose().ct_eq(presented)) {
                found = Operator::parse(name.as_str()).ok();
            }
        }
        found
    }
}

/// The credentials of an `Authorization` value of the `Bearer` scheme, whatever its case.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, credentials) = value.split_at(value.iter().position(|&b| b == b' ')?);
    scheme.eq_ignore_ascii_case(b"Bearer").then(|| credentials.trim_ascii_start()).filter(|c| !c.is_empty())
}

/// What the operators' endpoints read: the award a revocation names, whether a player has any
/// event, the flags and the usage analytics.
#[derive(Clone)]
pub struct History(Arc<dyn HistorySource>);

/// What [`History`] reads through: any event store.
trait HistorySource: Send + Sync {
    fn event(&self, event_id: Uuid) -> BoxFuture<'_, Result<Option<events::RecordedEvent>, StoreError>>;
    fn knows(&self, player: PlayerId) -> BoxFuture<'_, Result<bool, StoreError>>;
    fn flags(&self, limit: u32) -> BoxFuture<'_, Result<Vec<events::anomaly::Flag>, StoreError>>;
    fn usage<'a>(&'a self, window: &'a Window) -> BoxFuture<'a, Result<UsageStats, StoreError>>;
}

impl<S: EventStore> HistorySource for S {
    fn event(&self, event_id: Uuid) -> BoxFuture<'_, Result<Option<events::RecordedEvent>, StoreError>> {
        async move { self.read_event(event_id).await?.map(|stored| stored.decoded()).transpose() }.boxed()
    }

    fn knows(&self, player: PlayerId) -> BoxFuture<'_, Result<bool, StoreError>> {
        async move { Ok(!self.read_player(player.as_str(), 0, 1).await?.is_empty()) }.boxed()
    }

    fn flags(&self, limit: u32) -> BoxFuture<'_, Result<Vec<events::anomaly::Flag>, StoreError>> {
        EventStore::flags(self, limit).boxed()
    }

    fn usage<'a>(&'a self, window: &'a Window) -> BoxFuture<'a, Result<UsageStats, StoreError>> {
        EventStore::usage(self, window).boxed()
    }
}

impl History {
    /// Reads from `log`.
    pub fn of<S: EventStore>(log: S) -> Self {
        Self(Arc::new(log))
    }

    /// The event `event_id`, if the log holds it.
    pub async fn event(&self, event_id: Uuid) -> Result<Option<events::RecordedEvent>, StoreError> {
        self.0.event(event_id).await
    }

    /// `true` when the log holds an event of `player`.
    pub async fn knows(&self, player: PlayerId) -> Result<bool, StoreError> {
        self.0.knows(player).await
    }

    /// The latest `limit` anomaly flags, newest first.
    pub async fn flags(&self, limit: u32) -> Result<Vec<events::anomaly::Flag>, StoreError> {
        self.0.flags(limit).await
    }

    /// Usage analytics over `window`, as the read model holds them.
    pub async fn usage(&self, window: &Window) -> Result<UsageStats, StoreError> {
        self.0.usage(window).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        for value in ["Bearer s3cret", "bearer s3cret", "BEARER  s3cret"] {
            assert_eq!(bearer(value.as_bytes()), Some(&b"s3cret"[..]), "{value}");
        }
        for value in ["Basic s3cret", "Bearers3cret", "Bearer ", "Bearer", "s3cret"] {
            assert_eq!(bearer(value.as_bytes()), None, "{value}");
        }
    }
}

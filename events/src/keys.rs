//! The HMAC keys that sign action tokens, by key id, so keys can be rotated without downtime.

use std::collections::BTreeMap;
use std::fmt;

use crate::ids::KeyId;

/// A signing secret: at least 32 bytes, used as raw bytes. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySecret(Vec<u8>);

impl KeySecret {
    /// The shortest secret accepted, in bytes (the HMAC-SHA-256 output size).
    pub const MIN_LEN: usize = 32;

    /// Wraps `bytes` if it is long enough to be a secret.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, KeyError> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_LEN {
            return Err(KeyError::ShortSecret(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The secret's bytes, for computing a MAC.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret(<redacted>)")
    }
}

/// Why `ACTION_KEYS` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No key at all.
    #[error("ACTION_KEYS holds no key; expected kid=secret[,kid2=secret2]")]
    Empty,
    /// An entry without `=`.
    #[error("ACTION_KEYS entry {0} is not of the form kid=secret")]
    NotAPair(usize),
    /// A key id outside the allowed alphabet.
    #[error("ACTION_KEYS entry {0}: key id must be 1-64 characters of A-Z a-z 0-9 _ . -")]
    BadKeyId(usize),
    /// The same key id twice.
    #[error("ACTION_KEYS names key id {0:?} twice")]
    DuplicateKeyId(String),
    /// A secret shorter than [`KeySecret::MIN_LEN`].
    #[error("a secret of {0} bytes is too short; secrets need at least 32 bytes")]
    ShortSecret(usize),
}

/// The keys currently trusted to sign action tokens.
///
/// ```
/// let keys = events::KeySet::parse("k1=0123456789abcdef0123456789abcdef").unwrap();
/// assert!(keys.get("k1").is_some());
/// assert!(keys.get("k2").is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySet(BTreeMap<KeyId, KeySecret>);

impl KeySet {
    /// Reads the `ACTION_KEYS` format: `kid=secret,kid2=secret2`. Whitespace around entries is
    /// ignored; a secret is everything after the first `=` and cannot contain a comma.
    pub fn parse(spec: &str) -> Result<Self, KeyError> {
        let mut keys = BTreeMap::new();
        for (index, entry) in spec.split(',').map(str::trim).enumerate().filter(|(_, e)| !e.is_empty()) {
            let position = index + 1;
            let (kid, secret) = entry.split_once('=').ok_or(KeyError::NotAPair(position))?;
            let kid = KeyId::parse(kid.trim()).map_err(|_| KeyError::BadKeyId(position))?;
            let secret = KeySecret::new(secret.as_bytes())?;
            if keys.insert(kid.clone(), secret).is_some() {
                return Err(KeyError::DuplicateKeyId(kid.to_string()));
            }
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self(keys))
    }

    /// A set of exactly one key.
    pub fn single(kid: KeyId, secret: KeySecret) -> Self {
        Self(BTreeMap::from([(kid, secret)]))
    }

    /// This set with one more key; refused if `kid` is already trusted.
    pub fn with(mut self, kid: KeyId, secret: KeySecret) -> Result<Self, KeyError> {
        if self.0.contains_key(&kid) {
            return Err(KeyError::DuplicateKeyId(kid.to_string()));
        }
        self.0.insert(kid, secret);
        Ok(self)
    }

    /// The secret for `kid`, if that key is trusted.
    pub fn get(&self, kid: &str) -> Option<(&KeyId, &KeySecret)> {
        self.0.iter().find(|(id, _)| id.as_str() == kid)
    }

    /// The trusted key ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.0.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn several_keys_are_read_by_id() {
        let keys = KeySet::parse(&format!(" k1={SECRET}x , k2={SECRET}y,")).unwrap();
        assert_eq!(keys.ids().map(KeyId::as_str).collect::<Vec<_>>(), ["k1", "k2"]);
        assert_eq!(keys.get("k2").unwrap().1.expose(), format!("{SECRET}y").as_bytes());
    }

    #[test]
    fn secret_may_contain_equals_signs() {
        let keys = KeySet::parse(&format!("k1={SECRET}==")).unwrap();
        assert_eq!(keys.get("k1").unwrap().1.expose().len(), 34);
    }

    #[test]
    fn malformed_key_sets_are_refused_with_a_reason() {
        assert_eq!(KeySet::parse(""), Err(KeyError::Empty));
        assert_eq!(KeySet::parse(" , "), Err(KeyError::Empty));
        assert_eq!(KeySet::parse(SECRET), Err(KeyError::NotAPair(1)));
        assert_eq!(KeySet::parse(&format!("bad kid={SECRET}")), Err(KeyError::BadKeyId(1)));
        assert_eq!(KeySet::parse("k1=short"), Err(KeyError::ShortSecret(5)));
        assert_eq!(KeySet::parse(&format!("k1={SECRET},k1={SECRET}")), Err(KeyError::DuplicateKeyId("k1".into())));
    }

    #[test]
    fn a_key_is_added_unless_its_id_is_taken() {
        let keys = KeySet::parse(&format!("k1={SECRET}")).unwrap();
        let secret = KeySecret::new(SECRET.as_bytes()).unwrap();
        let keys = keys.with("k2".parse().unwrap(), secret.clone()).unwrap();
        assert!(keys.get("k2").is_some());
        assert_eq!(keys.with("k1".parse().unwrap(), secret), Err(KeyError::DuplicateKeyId("k1".into())));
    }

    #[test]
    fn secrets_are_not_printed() {
        let keys = KeySet::parse(&format!("k1={SECRET}")).unwrap();
        assert!(!format!("{keys:?}").contains(SECRET));
    }
}

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
            return Err(KeyError::ShortSecret { entry: None, length: bytes.len() });
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

/// Why a set of keys (`ACTION_KEYS` or `ACTION_KEYS_FILE`) could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No key at all.
    #[error("no key; expected kid=secret[,kid2=secret2] (a file: one kid=secret [verify-only] a line)")]
    Empty,
    /// An entry without `=`.
    #[error("entry {0} is not of the form kid=secret")]
    NotAPair(usize),
    /// A key id outside the allowed alphabet.
    #[error("entry {0}: key id must be 1-64 characters of A-Z a-z 0-9 _ . -")]
    BadKeyId(usize),
    /// The same key id twice.
    #[error("key id {0:?} is named twice")]
    DuplicateKeyId(String),
    /// A secret shorter than [`KeySecret::MIN_LEN`]: its length, and its entry when it is one of
    /// a list (never the secret).
    #[error("{}a secret of {length} bytes is too short; secrets need at least 32 bytes", entry.map(|entry| format!("entry {entry}: ")).unwrap_or_default())]
    ShortSecret {
        /// The entry (from 1) of the list it was in.
        entry: Option<usize>,
        /// Its length in bytes.
        length: usize,
    },
}

/// The marker that makes a key of a keys file verify-only.
const VERIFY_ONLY: &str = "verify-only";

#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    secret: KeySecret,
    /// Accepted on tokens, never used to mint one: a key being retired.
    verify_only: bool,
}

/// The keys currently trusted to sign action tokens. A key may be verify-only: tokens it
/// signed are accepted, but nothing of ours mints with it (the first step of retiring it).
///
/// ```
/// let keys = events::KeySet::parse("k1=0123456789abcdef0123456789abcdef").unwrap();
/// assert!(keys.get("k1").is_some());
/// assert!(keys.get("k2").is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySet(BTreeMap<KeyId, Key>);

impl KeySet {
    /// Reads the `ACTION_KEYS` format: `kid=secret,kid2=secret2`. Whitespace around entries is
    /// ignored; a secret is everything after the first `=` and cannot contain a comma.
    pub fn parse(spec: &str) -> Result<Self, KeyError> {
        Self::from_entries(spec.split(',').map(|entry| (entry, false)))
    }

    /// Reads the `ACTION_KEYS_FILE` format: one `kid=secret` a line, optionally followed by
    /// whitespace and `verify-only`; blank lines and lines starting with `#` are skipped.
    ///
    /// ```
    /// let file = "# rotated 2026-11-23\nk1=0123456789abcdef0123456789abcdef verify-only\nk2=abcdef0123456789abcdef0123456789\n";
    /// let keys = events::KeySet::parse_file(file).unwrap();
    /// assert!(keys.get("k1").is_some());
    /// assert!(keys.signing("k1").is_none());
    /// assert!(keys.signing("k2").is_some());
    /// ```
    pub fn parse_file(text: &str) -> Result<Self, KeyError> {
        Self::from_entries(text.lines().map(|line| match line.trim().strip_suffix(VERIFY_ONLY) {
            Some(rest) if rest.ends_with(char::is_whitespace) => (rest, true),
            _ => (line, false),
        }))
    }

    fn from_entries<'a>(entries: impl Iterator<Item = (&'a str, bool)>) -> Result<Self, KeyError> {
        let mut keys = BTreeMap::new();
        for (index, (entry, verify_only)) in entries.enumerate() {
            let entry = entry.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let position = index + 1;
            let (kid, secret) = entry.split_once('=').ok_or(KeyError::NotAPair(position))?;
            let kid = KeyId::parse(kid.trim()).map_err(|_| KeyError::BadKeyId(position))?;
            let secret = KeySecret::new(secret.as_bytes()).map_err(|error| match error {
                KeyError::ShortSecret { length, .. } => KeyError::ShortSecret { entry: Some(position), length },
                other => other,
            })?;
            if keys.insert(kid.clone(), Key { secret, verify_only }).is_some() {
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
        Self(BTreeMap::from([(kid, Key { secret, verify_only: false })]))
    }

    /// The keys of both sets; refused if they share a key id.
    pub fn merge(mut self, other: Self) -> Result<Self, KeyError> {
        for (kid, key) in other.0 {
            if self.0.contains_key(&kid) {
                return Err(KeyError::DuplicateKeyId(kid.to_string()));
            }
            self.0.insert(kid, key);
        }
        Ok(self)
    }

    /// The secret for `kid`, if tokens it signed are accepted (verify-only keys included).
    pub fn get(&self, kid: &str) -> Option<(&KeyId, &KeySecret)> {
        self.0.iter().find(|(id, _)| id.as_str() == kid).map(|(id, key)| (id, &key.secret))
    }

    /// The secret for `kid`, if it may be used to mint tokens (not verify-only).
    pub fn signing(&self, kid: &str) -> Option<(&KeyId, &KeySecret)> {
        self.0.iter().find(|(id, key)| id.as_str() == kid && !key.verify_only).map(|(id, key)| (id, &key.secret))
    }

    /// Every key, verify-only ones included, in key id order.
    pub fn iter(&self) -> impl Iterator<Item = (&KeyId, &KeySecret)> {
        self.0.iter().map(|(id, key)| (id, &key.secret))
    }

    /// The ids of the keys that may mint tokens, in order.
    pub fn signing_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.0.iter().filter(|(_, key)| !key.verify_only).map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn several_keys_are_read_by_id() {
        let keys = KeySet::parse(&format!(" k1={SECRET}x , k2={SECRET}y,")).unwrap();
        assert_eq!(keys.signing_ids().map(KeyId::as_str).collect::<Vec<_>>(), ["k1", "k2"]);
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
        assert_eq!(KeySet::parse("k1=short"), Err(KeyError::ShortSecret { entry: Some(1), length: 5 }));
        let refused = KeySet::parse(&format!("k1={SECRET},k2=short")).unwrap_err();
        assert_eq!(refused.to_string(), "entry 2: a secret of 5 bytes is too short; secrets need at least 32 bytes");
        assert_eq!(KeySet::parse(&format!("k1={SECRET},k1={SECRET}")), Err(KeyError::DuplicateKeyId("k1".into())));
    }

    #[test]
    fn sets_merge_unless_they_share_a_key_id() {
        let keys = KeySet::parse(&format!("k1={SECRET}")).unwrap();
        let merged = keys.clone().merge(KeySet::parse(&format!("k2={SECRET}")).unwrap()).unwrap();
        assert!(merged.get("k2").is_some());
        assert_eq!(keys.clone().merge(keys), Err(KeyError::DuplicateKeyId("k1".into())));
    }

    #[test]
    fn a_keys_file_marks_keys_verify_only() {
        let file = format!("# keys\n\nk1={SECRET} verify-only\n  k2={SECRET}x  \nk3={SECRET}verify-only\n");
        let keys = KeySet::parse_file(&file).unwrap();
        assert!(keys.get("k1").is_some() && keys.signing("k1").is_none(), "verify-only");
        assert!(keys.signing("k2").is_some());
        assert_eq!(
            keys.signing("k3").unwrap().1.expose(),
            format!("{SECRET}verify-only").as_bytes(),
            "no space: part of the secret"
        );
        assert_eq!(keys.signing_ids().map(KeyId::as_str).collect::<Vec<_>>(), ["k2", "k3"]);
        assert_eq!(KeySet::parse_file("# nothing\n"), Err(KeyError::Empty));
        assert_eq!(KeySet::parse_file(&format!("k1={SECRET}\nnonsense\n")), Err(KeyError::NotAPair(2)));
    }

    #[test]
    fn secrets_are_not_printed() {
        let keys = KeySet::parse(&format!("k1={SECRET}")).unwrap();
        assert!(!format!("{keys:?}").contains(SECRET));
    }
}

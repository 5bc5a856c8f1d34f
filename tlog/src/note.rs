//! Signed checkpoints: the tree head in the C2SP `tlog-checkpoint` format, signed with Ed25519
//! as a C2SP `signed-note`, so Go's `golang.org/x/mod/sumdb/note` and the other tlog tools
//! verify it unchanged.
//!
//! - A key is named; its hash is the first four bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public
//!   key)`. The verifier key is `<name>+<hex hash>+<base64(0x01 ‖ public key)>`, the signer key
//!   `PRIVATE+KEY+<name>+<hex hash>+<base64(0x01 ‖ seed)>`.
//! - A note is its text (ending in a newline), a blank line, and one line per signature:
//!   `— <name> <base64(key hash ‖ signature of the text)>`.
//! - A checkpoint's text is `<origin>\n<tree size>\n<base64 root hash>\n`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::Hash;

/// The algorithm byte of Ed25519 keys in the note format.
const ED25519: u8 = 0x01;

/// Why a key, a note or a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// Not a key of the note format.
    #[error("not a note key: {0}")]
    Key(&'static str),
    /// A text that cannot be signed.
    #[error("a note's text must be non-empty UTF-8 ending in a newline, without blank lines")]
    Text,
    /// No signature by this verifier's key verifies.
    #[error("no valid signature by {0}")]
    Unverified(String),
    /// Not a checkpoint.
    #[error("not a checkpoint: {0}")]
    Checkpoint(&'static str),
}

fn key_hash(name: &str, public: &VerifyingKey) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ED25519]);
    hasher.update(public.as_bytes());
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('+') && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// `<name>+<hex hash>+<base64 key>`, split and checked: the name, the hash and the key bytes
/// after the algorithm byte.
fn split_key(text: &str) -> Result<(&str, u32, Vec<u8>), NoteError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(hash), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(NoteError::Key("expected <name>+<hash>+<key>"));
    };
    if !valid_name(name) {
        return Err(NoteError::Key("invalid name"));
    }
    if hash.len() != 8 || !hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return Err(NoteError::Key("the hash is not 8 lowercase hex digits"));
    }
    let hash = u32::from_str_radix(hash, 16).map_err(|_| NoteError::Key("the hash is not hex"))?;
    let bytes = B64.decode(key).map_err(|_| NoteError::Key("the key is not base64"))?;
    match bytes.split_first() {
        Some((&ED25519, key)) if key.len() == 32 => Ok((name, hash, key.to_vec())),
        _ => Err(NoteError::Key("not an Ed25519 key")),
    }
}

/// A checkpoint signer: a named Ed25519 key.
#[derive(Clone)]
pub struct Signer {
    name: String,
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").field("verifier", &self.verifier().to_string()).finish_non_exhaustive()
    }
}

impl Signer {
    /// The signer named `name` with the Ed25519 key of `seed` (32 random bytes for a new key).
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::Key("invalid name"));
        }
        Ok(Self { name: name.to_string(), key: SigningKey::from_bytes(&seed) })
    }

    /// Reads a signer key: `PRIVATE+KEY+<name>+<hex hash>+<base64(0x01 ‖ seed)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or(NoteError::Key("no PRIVATE+KEY+ prefix"))?;
        let (name, hash, seed) = split_key(rest)?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| NoteError::Key("not an Ed25519 key"))?;
        let signer = Self::from_seed(name, seed)?;
        if key_hash(name, &signer.key.verifying_key()) != hash {
            return Err(NoteError::Key("the hash does not match the name and key"));
        }
        Ok(signer)
    }

    /// The signer key in the note format (a secret: keep it so).
    pub fn to_private(&self) -> String {
        let public = self.key.verifying_key();
        let mut seed = vec![ED25519];
        seed.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, key_hash(&self.name, &public), B64.encode(seed))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), key: self.key.verifying_key() }
    }

    /// `text` signed: the note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if text.is_empty() || !text.ends_with('\n') || text.contains("\n\n") || text.starts_with('\n') {
            return Err(NoteError::Text);
        }
        let mut signature = key_hash(&self.name, &self.key.verifying_key()).to_be_bytes().to_vec();
        signature.extend_from_slice(&self.key.sign(text.as_bytes()).to_bytes());
        Ok(format!("{text}\n\u{2014} {} {}\n", self.name, B64.encode(signature)))
    }
}

/// A checkpoint verifier: a named Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
}

impl fmt::Display for NoteVerifier {
    /// The verifier key in the note format: `<name>+<hex hash>+<base64(0x01 ‖ key)>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = vec![ED25519];
        key.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, key_hash(&self.name, &self.key), B64.encode(key))
    }
}

impl NoteVerifier {
    /// Reads a verifier key: `<name>+<hex hash>+<base64(0x01 ‖ public key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let (name, hash, key) = split_key(text.trim())?;
        let key: [u8; 32] = key.try_into().map_err(|_| NoteError::Key("not an Ed25519 key"))?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| NoteError::Key("not an Ed25519 point"))?;
        if key_hash(name, &key) != hash {
            return Err(NoteError::Key("the hash does not match the name and key"));
        }
        Ok(Self { name: name.to_string(), key })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text of `note` if a signature of this key over it verifies.
    pub fn open<'n>(&self, note: &'n str) -> Result<&'n str, NoteError> {
        let unverified = || NoteError::Unverified(self.name.clone());
        let split = note.rfind("\n\n").ok_or_else(unverified)?;
        let (text, signatures) = (&note[..=split], &note[split + 2..]);
        let hash = key_hash(&self.name, &self.key).to_be_bytes();
        let verified = signatures.lines().any(|line| {
            let Some((name, signature)) = line.strip_prefix("\u{2014} ").and_then(|rest| rest.split_once(' ')) else {
                return false;
            };
            let Ok(bytes) = B64.decode(signature) else { return false };
            let Ok(signature) = ed25519_dalek::Signature::from_slice(bytes.get(4..).unwrap_or_default()) else {
                return false;
            };
            name == self.name && bytes[..4] == hash && self.key.verify(text.as_bytes(), &signature).is_ok()
        });
        if verified && signatures.ends_with('\n') { Ok(text) } else { Err(unverified()) }
    }
}

/// The text of a checkpoint (C2SP tlog-checkpoint): origin, tree size, base64 root hash.
pub fn checkpoint(origin: &str, tree_size: u64, root: &Hash) -> String {
    format!("{origin}\n{tree_size}\n{}\n", B64.encode(root))
}

/// A checkpoint's text read back: origin, tree size and root hash (extension lines ignored).
pub fn parse_checkpoint(text: &str) -> Result<(&str, u64, Hash), NoteError> {
    let mut lines = text.lines();
    let origin = lines.next().filter(|o| !o.is_empty()).ok_or(NoteError::Checkpoint("no origin"))?;
    let size = lines.next().ok_or(NoteError::Checkpoint("no tree size"))?;
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || (size.len() > 1 && size.starts_with('0')) {
        return Err(NoteError::Checkpoint("the tree size is not a decimal number"));
    }
    let size = size.parse().map_err(|_| NoteError::Checkpoint("the tree size is too large"))?;
    let root = lines.next().ok_or(NoteError::Checkpoint("no root hash"))?;
    let root = B64.decode(root).map_err(|_| NoteError::Checkpoint("the root hash is not base64"))?;
    let root: Hash = root.try_into().map_err(|_| NoteError::Checkpoint("the root hash is not 32 bytes"))?;
    Ok((origin, size, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of golang.org/x/mod/sumdb/note's documentation.
    const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const TEXT: &str =
        "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn the_go_example_note_is_signed_and_verified_byte_for_byte() {
        let signer = Signer::parse(SKEY).unwrap();
        assert_eq!(signer.to_private(), SKEY);
        assert_eq!(signer.verifier().to_string(), VKEY);
        assert_eq!(signer.sign(TEXT).unwrap(), NOTE);
        let verifier = NoteVerifier::parse(VKEY).unwrap();
        assert_eq!(verifier.open(NOTE), Ok(TEXT));
    }

    #[test]
    fn an_altered_note_or_key_is_refused() {
        let verifier = NoteVerifier::parse(VKEY).unwrap();
        assert!(verifier.open(&NOTE.replace("problem is", "problem was")).is_err());
        assert!(verifier.open(&NOTE.replace("x08go", "x08gp")).is_err());
        assert!(verifier.open(&NOTE.replace("PeterNeumann x", "PeterNeuman x")).is_err());
        assert!(verifier.open(TEXT).is_err(), "no signature");
        let other = Signer::from_seed("PeterNeumann", [7; 32]).unwrap();
        assert!(other.verifier().open(NOTE).is_err(), "another key of the same name");
        assert!(NoteVerifier::parse(&VKEY.replace("c74f20a3", "c74f20a4")).is_err());
        assert!(NoteVerifier::parse(&VKEY.replace("+ARpc", "+AhRpc")).is_err());
        assert!(Signer::parse(&SKEY.replace("PeterNeumann", "Peter")).is_err());
        assert!(Signer::from_seed("with space", [1; 32]).is_err() && Signer::from_seed("a+b", [1; 32]).is_err());
        assert_eq!(Signer::parse(SKEY).unwrap().sign("no newline"), Err(NoteError::Text));
    }

    #[test]
    fn a_checkpoint_reads_back_and_verifies() {
        let signer = Signer::from_seed("scoreboard.example/log", [42; 32]).unwrap();
        let root = [9u8; 32];
        let text = checkpoint(signer.name(), 1234, &root);
        assert_eq!(text, "scoreboard.example/log\n1234\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n");
        let note = signer.sign(&text).unwrap();
        let verifier = NoteVerifier::parse(&signer.verifier().to_string()).unwrap();
        let opened = verifier.open(&note).unwrap();
        assert_eq!(parse_checkpoint(opened), Ok(("scoreboard.example/log", 1234, root)));
        assert!(parse_checkpoint("o\n01\nCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n").is_err());
        assert!(parse_checkpoint("o\n1\nshort\n").is_err());
    }
}

//! Action tokens: JWS compact serialisation, HS256, verified by strict code of our own.
//!
//! A token is `base64url(header) . base64url(claims) . base64url(HMAC-SHA-256(key, header.claims))`
//! with the header `{"alg":"HS256","typ":"JWT","kid":"<key id>"}` and the claims
//! `{"jti","sub","act","name"?,"score"?,"iat","exp"}`. Any standard JWT library can mint one; this module
//! verifies it and refuses anything it does not fully understand:
//!
//! - exactly three non-empty segments of unpadded, canonical base64url;
//! - a header with `alg` exactly `HS256`, a known `kid`, `typ` absent or `JWT`, nothing else
//!   (`crit`, `jku` and anything else that could change how to verify are refused);
//! - the MAC, compared in constant time, before a single claim is looked at;
//! - claims: ours in their documented formats, no key twice; claims we do not use are ignored,
//!   as RFC 7519 §4 asks, so tokens from ordinary JWT libraries and issuers work;
//! - the time window: `exp` not past, `iat` and `nbf` not in the future (all with a leeway),
//!   and `exp - iat` within the maximum lifetime;
//! - `iss` and `aud`, when the policy names an issuer or an audience (RFC 8725 §3.11: a token
//!   minted for another purpose with the same key must not count here).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::ids::{ActionName, DisplayName, KeyId, PlayerId};
use crate::keys::{KeySecret, KeySet};

type HmacSha256 = Hmac<Sha256>;

/// The longest token accepted, in bytes. Real tokens are a few hundred bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The claims of an action token: who completed which action, and when the token was issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionClaims {
    /// The action id: counted at most once, ever.
    #[serde(with = "hyphenated_uuid")]
    pub jti: Uuid,
    /// The player who completed the action.
    pub sub: PlayerId,
    /// The action completed; its points come from the catalog.
    pub act: ActionName,
    /// The name to show for the player, if the issuer knows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<DisplayName>,
    /// The score the trusted backend reports, for an action the catalog says is worth one (an
    /// integer; the catalog's range is checked when the award is decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<i64>,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
}

impl ActionClaims {
    /// A SHA-256 digest of the claims in canonical form. Two submissions of one `jti` are the
    /// same action exactly when their digests are equal.
    pub fn digest(&self) -> [u8; 32] {
        let canonical = serde_json::to_vec(self).expect("claims always serialise");
        Sha256::digest(canonical).into()
    }
}

/// `jti` must be a UUID in its hyphenated form; the other forms `uuid` accepts are refused.
mod hyphenated_uuid {
    use serde::{Deserialize, Deserializer, Serializer};
    use uuid::Uuid;

    pub fn serialize<S: Serializer>(value: &Uuid, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&value.hyphenated())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Uuid, D::Error> {
        let text = String::deserialize(deserializer)?;
        match Uuid::try_parse(&text) {
            Ok(uuid) if text.len() == 36 => Ok(uuid),
            _ => Err(serde::de::Error::custom("jti must be a hyphenated UUID")),
        }
    }
}

/// The registered claims (RFC 7519 §4.1) checked beside ours, when present.
#[derive(Debug, Deserialize)]
struct RegisteredClaims {
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
}

/// `aud`: one audience, or several (RFC 7519 §4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

/// The rules applied to tokens beyond their signature: time window, issuer and audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Clock skew allowed on `exp`, `iat` and `nbf`, in seconds.
    pub leeway_secs: i64,
    /// The longest `exp - iat` accepted, in seconds.
    pub max_lifetime_secs: i64,
    /// When set, `iss` must be exactly this.
    pub issuer: Option<String>,
    /// When set, `aud` must be, or contain, exactly this.
    pub audience: Option<String>,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self { leeway_secs: 30, max_lifetime_secs: 900, issuer: None, audience: None }
    }
}

/// Why a token was refused. Each maps to one `401` problem code, see [`TokenError::code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three segments of canonical base64url carrying JSON of the expected shape.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` other than `HS256` (including `none`).
    #[error("unsupported algorithm {0:?}; only HS256 is accepted")]
    Algorithm(String),
    /// `typ` present and not `JWT`.
    #[error("unsupported token type {0:?}")]
    Type(String),
    /// The header names no key.
    #[error("token header has no kid")]
    MissingKeyId,
    /// The header names a key that is not trusted.
    #[error("unknown key id {0:?}")]
    UnknownKeyId(String),
    /// The MAC does not match.
    #[error("signature does not match")]
    BadSignature,
    /// Claims missing, of the wrong format, or not understood.
    #[error("invalid claims: {0}")]
    Claims(String),
    /// `exp` is before `iat`.
    #[error("token expires before it was issued")]
    ExpiresBeforeIssued,
    /// `exp - iat` longer than the policy allows.
    #[error("token lifetime of {0} s exceeds the maximum of {1} s")]
    LifetimeTooLong(i64, i64),
    /// `exp` has passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `iat` or `nbf` is in the future (beyond the leeway).
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iss` missing or not the configured issuer.
    #[error("token issuer {0:?} is not the one expected")]
    Issuer(Option<String>),
    /// `aud` missing or not naming the configured audience.
    #[error("token audience does not name this service")]
    Audience,
}

impl TokenError {
    /// The problem code the API answers with: `token_expired`, `token_not_yet_valid` or
    /// `invalid_token`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Expired => "token_expired",
            Self::NotYetValid => "token_not_yet_valid",
            _ => "invalid_token",
        }
    }
}

/// A token whose signature, key and time window checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The key that signed it.
    pub kid: KeyId,
    /// Its claims.
    pub claims: ActionClaims,
}

impl TokenPolicy {
    /// Verifies `token` against the trusted `keys` at time `now` (Unix seconds).
    ///
    /// The signature is checked before the claims are parsed, so a forger learns nothing about
    /// which claim would have been refused.
    pub fn verify(&self, token: &str, keys: &KeySet, now: i64) -> Result<VerifiedToken, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("token too long"));
        }
        let mut segments = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(TokenError::Malformed("expected three dot-separated segments"));
        };

        let header_json = decode_segment(header_b64, "header")?;
        let claims_json = decode_segment(claims_b64, "claims")?;
        let signature = decode_segment(signature_b64, "signature")?;

        let header: Header = json_object(&header_json)
            .map_err(|_| TokenError::Malformed("header is not a JSON object of alg, typ, kid"))?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm(header.alg));
        }
        if let Some(typ) = header.typ.filter(|t| t != "JWT") {
            return Err(TokenError::Type(typ));
        }
        let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
        let (kid, secret) = keys.get(&kid).ok_or(TokenError::UnknownKeyId(kid))?;

        let signed_len = header_b64.len() + 1 + claims_b64.len();
        mac(secret, &token.as_bytes()[..signed_len]).verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;

        let invalid = |e: serde_json::Error| TokenError::Claims(e.to_string());
        distinct_keys(&claims_json).map_err(invalid)?;
        let claims: ActionClaims = json_object(&claims_json).map_err(invalid)?;
        let registered: RegisteredClaims = json_object(&claims_json).map_err(invalid)?;
        self.check_times(&claims, registered.nbf, now)?;
        self.check_parties(&registered)?;
        Ok(VerifiedToken { kid: kid.clone(), claims })
    }

    fn check_parties(&self, registered: &RegisteredClaims) -> Result<(), TokenError> {
        if let Some(issuer) = &self.issuer
            && registered.iss.as_ref() != Some(issuer)
        {
            return Err(TokenError::Issuer(registered.iss.clone()));
        }
        if let Some(audience) = &self.audience
            && !registered.aud.as_ref().is_some_and(|aud| aud.names(audience))
        {
            return Err(TokenError::Audience);
        }
        Ok(())
    }

    fn check_times(&self, claims: &ActionClaims, not_before: Option<i64>, now: i64) -> Result<(), TokenError> {
        let lifetime = claims.exp.saturating_sub(claims.iat);
        if lifetime <= 0 {
            return Err(TokenError::ExpiresBeforeIssued);
        }
        if lifetime > self.max_lifetime_secs {
            return Err(TokenError::LifetimeTooLong(lifetime, self.max_lifetime_secs));
        }
        if now > claims.exp.saturating_add(self.leeway_secs) {
            return Err(TokenError::Expired);
        }
        let starts = not_before.map_or(claims.iat, |nbf| nbf.max(claims.iat));
        if starts > now.saturating_add(self.leeway_secs) {
            return Err(TokenError::NotYetValid);
        }
        Ok(())
    }
}

fn decode_segment(segment: &str, what: &'static str) -> Result<Vec<u8>, TokenError> {
    if segment.is_empty() {
        return Err(TokenError::Malformed(match what {
            "header" => "empty header segment",
            "claims" => "empty claims segment",
            _ => "empty signature segment",
        }));
    }
    B64.decode(segment).map_err(|_| {
        TokenError::Malformed(match what {
            "header" => "header is not unpadded base64url",
            "claims" => "claims are not unpadded base64url",
            _ => "signature is not unpadded base64url",
        })
    })
}

/// Parses `bytes` as `T`, but only from a JSON object: serde would also build a struct from an
/// array of its fields in order, a second encoding of the same value that no client produces.
/// The one rule for every JSON object Scoreboard reads (token headers and claims, request
/// bodies).
pub fn json_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(serde::de::Error::custom("expected a JSON object"));
    }
    serde_json::from_slice(bytes)
}

/// Refuses a JSON object that names any key twice: parsers disagree on which one wins, so such
/// claims mean different things to different readers.
fn distinct_keys(bytes: &[u8]) -> Result<(), serde_json::Error> {
    struct DistinctKeys;
    impl<'de> serde::de::Visitor<'de> for DistinctKeys {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
                }
                map.next_value::<serde::de::IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde::Deserializer::deserialize_map(&mut deserializer, DistinctKeys)?;
    deserializer.end()
}

fn mac(secret: &KeySecret, signed: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.expose()).expect("HMAC accepts keys of any length");
    mac.update(signed);
    mac
}

/// Mints a token for `claims`, signed with the key `kid` / `secret`: what an issuer (a game
/// backend that saw the action completed) does.
///
/// ```
/// use events::{ActionClaims, KeyId, KeySecret, KeySet, TokenPolicy, mint};
/// let kid = KeyId::parse("k1").unwrap();
/// let secret = KeySecret::new(*b"0123456789abcdef0123456789abcdef").unwrap();
/// let claims = ActionClaims {
///     jti: uuid::Uuid::now_v7(),
///     sub: "alice".parse().unwrap(),
///     act: "complete_task".parse().unwrap(),
///     name: None,
///     score: None,
///     iat: 1_700_000_000,
///     exp: 1_700_000_300,
/// };
/// let token = mint(&kid, &secret, &claims);
/// let keys = KeySet::single(kid, secret);
/// let verified = TokenPolicy::default().verify(&token, &keys, 1_700_000_010).unwrap();
/// assert_eq!(verified.claims, claims);
/// ```
pub fn mint(kid: &KeyId, secret: &KeySecret, claims: &ActionClaims) -> String {
    sign(kid, secret, &serde_json::to_vec(claims).expect("claims always serialise"))
}

/// [`mint`], with the `iss` and `aud` that `policy` requires, so the token passes it.
pub fn mint_for(kid: &KeyId, secret: &KeySecret, claims: &ActionClaims, policy: &TokenPolicy) -> String {
    let mut object = serde_json::to_value(claims).expect("claims always serialise");
    if let Some(fields) = object.as_object_mut() {
        if let Some(issuer) = &policy.issuer {
            fields.insert("iss".into(), issuer.as_str().into());
        }
        if let Some(audience) = &policy.audience {
            fields.insert("aud".into(), audience.as_str().into());
        }
    }
    sign(kid, secret, &serde_json::to_vec(&object).expect("claims always serialise"))
}

fn sign(kid: &KeyId, secret: &KeySecret, claims: &[u8]) -> String {
    let header = Header { alg: "HS256".into(), typ: Some("JWT".into()), kid: Some(kid.to_string()) };
    let header = serde_json::to_vec(&header).expect("header always serialises");
    let signed = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let signature = mac(secret, signed.as_bytes()).finalize().into_bytes();
    format!("{signed}.{}", B64.encode(signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published test vector (also in docs/api.md): other languages check their minting
    /// against it.
    const VECTOR_SECRET: &[u8] = b"scoreboard-test-vector-secret-0001";
    const VECTOR_HEADER: &str = r#"{"alg":"HS256","typ":"JWT","kid":"k1"}"#;
    const VECTOR_CLAIMS: &str = r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete_task","name":"Alice","iat":1767225600,"exp":1767225900}"#;
    const VECTOR_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.eyJqdGkiOiIwMTkzMmM0ZS03YTFiLTdjM2QtOGU5Zi0wYTFiMmMzZDRlNWYiLCJzdWIiOiJhbGljZSIsImFjdCI6ImNvbXBsZXRlX3Rhc2siLCJuYW1lIjoiQWxpY2UiLCJpYXQiOjE3NjcyMjU2MDAsImV4cCI6MTc2NzIyNTkwMH0.4mSk8Ty7RFSkbQUzJhJJz5MrulnKdYEZbxA1SqUK1SM";
    const NOW: i64 = 1_767_225_700;

    fn vector_keys() -> KeySet {
        KeySet::single(KeyId::parse("k1").unwrap(), KeySecret::new(VECTOR_SECRET).unwrap())
    }

    fn vector_claims() -> ActionClaims {
        serde_json::from_str(VECTOR_CLAIMS).unwrap()
    }

    fn verify(token: &str) -> Result<VerifiedToken, TokenError> {
        TokenPolicy::default().verify(token, &vector_keys(), NOW)
    }

    /// Signs arbitrary header and claims JSON with `secret`, the way a forger with (or
    /// without) the key would.
    fn forge(header: &str, claims: &str, secret: &[u8]) -> String {
        let signed = format!("{}.{}", B64.encode(header), B64.encode(claims));
        let mut mac = HmacSha256::new_from_slice(secret).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", B64.encode(mac.finalize().into_bytes()))
    }

    fn claims_with(iat: i64, exp: i64) -> String {
        format!(
            r#"{{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete_task","iat":{iat},"exp":{exp}}}"#
        )
    }

    #[test]
    fn mint_reproduces_the_published_test_vector() {
        let token = mint(&KeyId::parse("k1").unwrap(), &KeySecret::new(VECTOR_SECRET).unwrap(), &vector_claims());
        assert_eq!(token, VECTOR_TOKEN);
        assert_eq!(forge(VECTOR_HEADER, VECTOR_CLAIMS, VECTOR_SECRET), VECTOR_TOKEN);
    }

    #[test]
    fn test_vector_verifies() {
        let verified = verify(VECTOR_TOKEN).unwrap();
        assert_eq!(verified.kid.as_str(), "k1");
        assert_eq!(verified.claims, vector_claims());
    }

    #[test]
    fn alg_none_is_refused() {
        let header = r#"{"alg":"none","typ":"JWT","kid":"k1"}"#;
        let unsigned = format!("{}.{}.", B64.encode(header), B64.encode(VECTOR_CLAIMS));
        assert_eq!(verify(&unsigned), Err(TokenError::Malformed("empty signature segment")));
        let with_sig = format!("{}.{}.AAAA", B64.encode(header), B64.encode(VECTOR_CLAIMS));
        assert_eq!(verify(&with_sig), Err(TokenError::Algorithm("none".into())));
    }

    #[test]
    fn other_algorithms_are_refused_even_when_correctly_signed() {
        for alg in ["HS384", "HS512", "RS256", "hs256", "HS256 ", "ES256"] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k1"}}"#);
            let token = forge(&header, VECTOR_CLAIMS, VECTOR_SECRET);
            assert_eq!(verify(&token), Err(TokenError::Algorithm(alg.into())), "{alg}");
        }
    }

    #[test]
    fn tampered_claims_are_refused() {
        let (signed, signature) = VECTOR_TOKEN.rsplit_once('.').unwrap();
        let (header, _) = signed.split_once('.').unwrap();
        let tampered = VECTOR_CLAIMS.replace("alice", "mallory");
        let token = format!("{header}.{}.{signature}", B64.encode(tampered));
        assert_eq!(verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn tampered_header_is_refused() {
        let (_, rest) = VECTOR_TOKEN.split_once('.').unwrap();
        let header = B64.encode(r#"{"alg":"HS256","kid":"k1"}"#);
        assert_eq!(verify(&format!("{header}.{rest}")), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_wrong_key_is_refused() {
        let token = forge(VECTOR_HEADER, VECTOR_CLAIMS, b"another-secret-of-at-least-32-bytes!!");
        assert_eq!(verify(&token), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_signed_with_the_key_of_another_kid_is_refused() {
        let keys = KeySet::parse(&format!(
            "k1={},k2=the-second-key-is-also-32-bytes-long",
            std::str::from_utf8(VECTOR_SECRET).unwrap()
        ))
        .unwrap();
        // Claims to be k2 but signed with k1's secret.
        let token = forge(r#"{"alg":"HS256","typ":"JWT","kid":"k2"}"#, VECTOR_CLAIMS, VECTOR_SECRET);
        assert_eq!(TokenPolicy::default().verify(&token, &keys, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn missing_or_unknown_kid_is_refused() {
        let token = forge(r#"{"alg":"HS256","typ":"JWT"}"#, VECTOR_CLAIMS, VECTOR_SECRET);
        assert_eq!(verify(&token), Err(TokenError::MissingKeyId));
        let token = forge(r#"{"alg":"HS256","typ":"JWT","kid":"k9"}"#, VECTOR_CLAIMS, VECTOR_SECRET);
        assert_eq!(verify(&token), Err(TokenError::UnknownKeyId("k9".into())));
    }

    #[test]
    fn unexpected_header_fields_are_refused() {
        for header in [
            r#"{"alg":"HS256","typ":"JWT","kid":"k1","crit":["exp"]}"#,
            r#"{"alg":"HS256","typ":"JWT","kid":"k1","jku":"https://evil.example/keys"}"#,
            r#"{"alg":"HS256","alg":"none","kid":"k1"}"#,
            r#"["HS256"]"#,
        ] {
            let token = forge(header, VECTOR_CLAIMS, VECTOR_SECRET);
            assert!(matches!(verify(&token), Err(TokenError::Malformed(_))), "{header}");
        }
        let token = forge(r#"{"alg":"HS256","typ":"JOSE+JSON","kid":"k1"}"#, VECTOR_CLAIMS, VECTOR_SECRET);
        assert_eq!(verify(&token), Err(TokenError::Type("JOSE+JSON".into())));
    }

    #[test]
    fn expired_tokens_are_refused_after_the_leeway() {
        let token = forge(VECTOR_HEADER, &claims_with(NOW - 300, NOW - 30), VECTOR_SECRET);
        assert!(verify(&token).is_ok(), "within leeway");
        let token = forge(VECTOR_HEADER, &claims_with(NOW - 300, NOW - 31), VECTOR_SECRET);
        assert_eq!(verify(&token), Err(TokenError::Expired));
        assert_eq!(TokenError::Expired.code(), "token_expired");
    }

    #[test]
    fn tokens_from_the_future_are_refused_after_the_leeway() {
        let token = forge(VECTOR_HEADER, &claims_with(NOW + 30, NOW + 300), VECTOR_SECRET);
        assert!(verify(&token).is_ok(), "within leeway");
        let token = forge(VECTOR_HEADER, &claims_with(NOW + 31, NOW + 300), VECTOR_SECRET);
        assert_eq!(verify(&token), Err(TokenError::NotYetValid));
        assert_eq!(TokenError::NotYetValid.code(), "token_not_yet_valid");
    }

    #[test]
    fn too_long_lived_tokens_are_refused() {
        let token = forge(VECTOR_HEADER, &claims_with(NOW - 10, NOW - 10 + 900), VECTOR_SECRET);
        assert!(verify(&token).is_ok(), "exactly the maximum");
        let token = forge(VECTOR_HEADER, &claims_with(NOW - 10, NOW - 10 + 901), VECTOR_SECRET);
        assert_eq!(verify(&token), Err(TokenError::LifetimeTooLong(901, 900)));
        let token = forge(VECTOR_HEADER, &claims_with(NOW, NOW), VECTOR_SECRET);
        assert_eq!(verify(&token), Err(TokenError::ExpiresBeforeIssued));
    }

    #[test]
    fn malformed_segments_are_refused() {
        let (header, rest) = VECTOR_TOKEN.split_once('.').unwrap();
        let (claims, signature) = rest.split_once('.').unwrap();
        let cases = [
            String::new(),
            "abc".to_string(),
            format!("{header}.{claims}"),
            format!("{VECTOR_TOKEN}.extra"),
            format!(".{claims}.{signature}"),
            format!("{header}..{signature}"),
            format!("{header}.{claims}."),
            format!("{header}=.{claims}.{signature}"),
            format!("{header}.{claims}.{signature}="),
            format!("{header}.{claims}+.{signature}"),
            format!("{header}.{claims}.{}", signature.replace('h', "/")),
            format!("{}.{claims}.{signature}", B64.encode("not json")),
            "a".repeat(MAX_TOKEN_LEN + 1),
        ];
        for token in cases {
            assert!(matches!(verify(&token), Err(TokenError::Malformed(_))), "{token:?}: {:?}", verify(&token));
        }
    }

    #[test]
    fn a_truncated_signature_is_refused() {
        let (signed, signature) = VECTOR_TOKEN.rsplit_once('.').unwrap();
        let half = B64.encode(&B64.decode(signature).unwrap()[..16]);
        assert_eq!(verify(&format!("{signed}.{half}")), Err(TokenError::BadSignature));
    }

    #[test]
    fn claims_of_the_wrong_format_are_refused_after_the_signature_checks() {
        let bad_claims = [
            r#"{"jti":"not-a-uuid","sub":"alice","act":"complete_task","iat":1767225600,"exp":1767225900}"#,
            r#"{"jti":"01932c4e7a1b7c3d8e9f0a1b2c3d4e5f","sub":"alice","act":"complete_task","iat":1767225600,"exp":1767225900}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"al ice","act":"complete_task","iat":1767225600,"exp":1767225900}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete task","iat":1767225600,"exp":1767225900}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete_task","name":"","iat":1767225600,"exp":1767225900}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete_task","iat":"1767225600","exp":1767225900}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete_task","iat":1767225600.5,"exp":1767225900}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete_task","iat":1767225600}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"finish_run","score":"10","iat":1767225600,"exp":1767225900}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"finish_run","score":10.5,"iat":1767225600,"exp":1767225900}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"finish_run","score":9223372036854775808,"iat":1767225600,"exp":1767225900}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete_task","iat":1767225600,"exp":1767225900,"nbf":"soon"}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete_task","iat":1767225600,"exp":1767225900,"aud":7}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","sub":"bob","act":"complete_task","iat":1767225600,"exp":1767225900}"#,
            r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete_task","iat":1767225600,"exp":1767225900,"x":1,"x":2}"#,
            r#"["01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","alice","complete_task",null,1767225600,1767225900]"#,
        ];
        for claims in bad_claims {
            let token = forge(VECTOR_HEADER, claims, VECTOR_SECRET);
            assert!(matches!(verify(&token), Err(TokenError::Claims(_))), "{claims}: {:?}", verify(&token));
            let unsigned = forge(VECTOR_HEADER, claims, b"not-the-key-but-32-bytes-long!!!!");
            assert_eq!(verify(&unsigned), Err(TokenError::BadSignature), "{claims}");
        }
    }

    #[test]
    fn a_score_claim_is_an_integer_carried_into_the_claims_and_their_digest() {
        let claims = r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"finish_run","score":-3,"iat":1767225600,"exp":1767225900}"#;
        let verified = verify(&forge(VECTOR_HEADER, claims, VECTOR_SECRET)).unwrap();
        assert_eq!(verified.claims.score, Some(-3), "the range is the catalog's to check");
        let other = ActionClaims { score: Some(4), ..verified.claims.clone() };
        assert_ne!(other.digest(), verified.claims.digest(), "another score is another action");
        assert_eq!(vector_claims().score, None);
    }

    #[test]
    fn claims_we_do_not_use_are_ignored() {
        let claims = r#"{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete_task","iat":1767225600,"exp":1767225900,"iss":"game-backend","aud":["scoreboard","other"],"jku":"x","level":{"boss":"dragon"},"nbf":1767225600}"#;
        let verified = verify(&forge(VECTOR_HEADER, claims, VECTOR_SECRET)).unwrap();
        assert_eq!(verified.claims.sub.as_str(), "alice");
    }

    #[test]
    fn nbf_in_the_future_is_refused_after_the_leeway() {
        let with_nbf = |nbf: i64| {
            format!(
                r#"{{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete_task","iat":{},"exp":{},"nbf":{nbf}}}"#,
                NOW - 60,
                NOW + 240
            )
        };
        assert!(verify(&forge(VECTOR_HEADER, &with_nbf(NOW + 30), VECTOR_SECRET)).is_ok(), "within leeway");
        assert_eq!(verify(&forge(VECTOR_HEADER, &with_nbf(NOW + 31), VECTOR_SECRET)), Err(TokenError::NotYetValid));
    }

    #[test]
    fn issuer_and_audience_are_required_when_configured() {
        let policy = TokenPolicy {
            issuer: Some("game-backend".into()),
            audience: Some("scoreboard".into()),
            ..TokenPolicy::default()
        };
        let with = |extra: &str| {
            let claims = format!(
                r#"{{"jti":"01932c4e-7a1b-7c3d-8e9f-0a1b2c3d4e5f","sub":"alice","act":"complete_task","iat":1767225600,"exp":1767225900{extra}}}"#
            );
            policy.verify(&forge(VECTOR_HEADER, &claims, VECTOR_SECRET), &vector_keys(), NOW)
        };
        assert!(with(r#","iss":"game-backend","aud":"scoreboard""#).is_ok());
        assert!(with(r#","iss":"game-backend","aud":["billing","scoreboard"]"#).is_ok());
        assert_eq!(with(r#","aud":"scoreboard""#), Err(TokenError::Issuer(None)));
        assert_eq!(with(r#","iss":"shop","aud":"scoreboard""#), Err(TokenError::Issuer(Some("shop".into()))));
        assert_eq!(with(r#","iss":"game-backend""#), Err(TokenError::Audience), "minted for no audience");
        assert_eq!(with(r#","iss":"game-backend","aud":"billing""#), Err(TokenError::Audience), "minted for another");
        assert_eq!(TokenError::Audience.code(), "invalid_token");
        let kid = KeyId::parse("k1").unwrap();
        let minted = mint_for(&kid, &KeySecret::new(VECTOR_SECRET).unwrap(), &vector_claims(), &policy);
        assert_eq!(policy.verify(&minted, &vector_keys(), NOW).unwrap().claims, vector_claims());
    }

    #[test]
    fn digest_tells_claims_apart() {
        let claims = vector_claims();
        let mut renamed = claims.clone();
        renamed.name = None;
        let mut later = claims.clone();
        later.exp += 1;
        assert_eq!(claims.digest(), vector_claims().digest());
        assert_ne!(claims.digest(), renamed.digest());
        assert_ne!(claims.digest(), later.digest());
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// No token that differs from a valid one in a single byte verifies: not in the
            /// header, the claims, the signature or the dots between them.
            #[test]
            fn no_altered_byte_of_a_valid_token_verifies(
                player in "[A-Za-z0-9_.:@-]{1,64}",
                index in any::<proptest::sample::Index>(),
                replacement in 0x20u8..0x7f,
            ) {
                let mut claims = vector_claims();
                claims.sub = player.parse().unwrap();
                let token = mint(&KeyId::parse("k1").unwrap(), &KeySecret::new(VECTOR_SECRET).unwrap(), &claims);
                prop_assert!(verify(&token).is_ok());
                let mut altered = token.into_bytes();
                let at = index.index(altered.len());
                prop_assume!(altered[at] != replacement);
                altered[at] = replacement;
                let altered = String::from_utf8(altered).unwrap();
                prop_assert!(verify(&altered).is_err(), "{altered}");
            }
        }
    }
}

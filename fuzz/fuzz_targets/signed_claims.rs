//! Arbitrary header and claims bytes, correctly signed with a trusted key, so that the fuzzer
//! gets past the MAC and exercises everything behind it: the header rules, the claims parser,
//! the time, issuer and audience rules. Whatever verifies must hold claims of our formats.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use events::{KeySet, TokenPolicy};
use hmac::{Hmac, KeyInit as _, Mac as _};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzzing-secret-of-at-least-32-bytes";

fuzz_target!(|data: &[u8]| {
    // The input is the header, a 0xFF byte, and the claims.
    let split = data.iter().position(|&b| b == 0xFF).unwrap_or(data.len());
    let (header, claims) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let signed = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).expect("any key length");
    mac.update(signed.as_bytes());
    let token = format!("{signed}.{}", B64.encode(mac.finalize().into_bytes()));

    let keys = KeySet::parse(&format!("k1={}", std::str::from_utf8(SECRET).unwrap())).expect("a valid key");
    let policy =
        TokenPolicy { issuer: Some("game".into()), audience: Some("scoreboard".into()), ..TokenPolicy::default() };
    if let Ok(verified) = policy.verify(&token, &keys, 1_767_225_700) {
        let claims = verified.claims;
        assert!(claims.exp > claims.iat, "{claims:?}");
        assert!(claims.exp - claims.iat <= policy.max_lifetime_secs, "{claims:?}");
        assert_eq!(verified.kid.as_str(), "k1");
    }
});

//! Any string submitted as an action token: the verifier answers, never panics, and accepts
//! nothing it was not given the key to (a random input never carries a valid MAC).
#![no_main]

use events::{KeySet, TokenPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let keys = KeySet::parse("k1=fuzzing-secret-of-at-least-32-bytes").expect("a valid key");
    assert!(TokenPolicy::default().verify(token, &keys, 1_767_225_700).is_err(), "{token:?} verified");
});

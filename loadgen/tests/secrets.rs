//! loadgen reads `ACTION_KEYS` with the services' parser: a bad entry is named, no secret shown.
#![allow(clippy::unwrap_used, missing_docs)]

#[test]
fn a_bad_key_entry_is_named_by_its_index_and_no_secret_is_written() {
    let keys = format!("k1={},k2=short", testkit::TEST_SECRET);
    let (code, said) = testkit::run_to_exit(
        env!("CARGO_BIN_EXE_loadgen"),
        &["write", "--target", "http://127.0.0.1:1"],
        &[("ACTION_KEYS", &keys)],
    );
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("ACTION_KEYS: entry 2: a secret of 5 bytes"), "{said}");
    assert!(!said.contains(testkit::TEST_SECRET) && !said.contains("=short"), "{said}");
}

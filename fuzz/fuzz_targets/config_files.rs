//! The files an operator writes and Scoreboard re-reads while running (`ACTION_KEYS_FILE` on
//! SIGHUP, `ACTION_CATALOG`, `ACTION_KEYS`): any content is read or refused, never a panic, and
//! what is read keeps its rules.
#![no_main]

use events::catalog::Worth;
use events::{ActionCatalog, KeySecret, KeySet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(keys) = KeySet::parse_file(text) {
        for kid in keys.signing_ids() {
            assert!(keys.signing(kid.as_str()).unwrap().1.expose().len() >= KeySecret::MIN_LEN);
        }
    }
    if let Ok(keys) = KeySet::parse(text) {
        assert!(keys.signing_ids().count() > 0);
    }
    if let Ok(catalog) = ActionCatalog::from_toml(text) {
        for (_, worth) in catalog.actions() {
            match worth {
                Worth::Fixed(points) => assert!((1..=1_000_000).contains(&points.get())),
                Worth::Reported { min, max } => assert!(min <= max && max.get() <= events::Points::MAX),
            }
        }
    }
});

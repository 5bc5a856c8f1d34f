//! A bad setting beside a valid secret: the binary refuses to start, names the setting and the
//! entry, and writes no secret anywhere (errors or log).

const PASSWORD: &str = "hunter2-database-password";

#[test]
fn a_bad_key_entry_is_named_by_its_index_and_no_secret_is_written() {
    let (keys, secret) = (testkit::action_keys(), testkit::TEST_SECRET);
    for (name, value, bad) in [
        ("ACTION_KEYS", format!("k1={secret},k2=short"), "=short"),
        ("ADMIN_TOKENS", format!("ops={secret},bob=tooshort"), "tooshort"),
    ] {
        let envs = [("ACTION_KEYS", keys.as_str()), (name, value.as_str()), ("COMMAND_ADDR", "127.0.0.1:0")];
        let (code, said) = testkit::run_to_exit(env!("CARGO_BIN_EXE_command-svc"), &[], &envs);
        assert_eq!(code, Some(2), "{name}: {said}");
        assert!(said.contains(name) && said.contains("entry 2: a secret of"), "{name}: {said}");
        assert!(!said.contains(secret) && !said.contains(bad), "{name}: {said}");
    }
}

#[test]
fn a_database_url_of_another_kind_is_refused_without_its_password() {
    let url = format!("mysql://root:{PASSWORD}@127.0.0.1:1/scores");
    let envs = [("ACTION_KEYS", testkit::action_keys()), ("DATABASE_URL", url), ("COMMAND_ADDR", "127.0.0.1:0".into())];
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, said) = testkit::run_to_exit(env!("CARGO_BIN_EXE_command-svc"), &[], &envs);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("not mysql://"), "{said}");
    assert!(!said.contains(PASSWORD) && !said.contains(testkit::TEST_SECRET), "{said}");
}

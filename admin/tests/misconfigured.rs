//! A database URL of another kind is refused by every command that reads the database, naming
//! the schemes accepted and never the URL's password.
#![allow(clippy::unwrap_used, missing_docs)]

#[test]
fn every_database_command_refuses_a_url_of_another_kind_without_its_password() {
    let url = "mysql://root:hunter2-database-password@127.0.0.1:1/scores";
    for command in [
        vec!["verify-read-model", "--database-url", url],
        vec!["verify", "--database-url", url],
        vec!["verify-log", "--database-url", url],
        vec!["replay", "--database-url", url, "--to-position", "1"],
        vec!["rebuild", "--database-url", url],
    ] {
        let (code, said) = testkit::run_to_exit(env!("CARGO_BIN_EXE_scoreboard-admin"), &command, &[]);
        assert_ne!(code, Some(0), "{command:?}: {said}");
        assert!(said.contains("not mysql://") && !said.contains("hunter2"), "{command:?}: {said}");
    }
}

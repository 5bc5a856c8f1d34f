-- As in migrations/postgres/0006_checkpoints.sql.
CREATE TABLE checkpoints (
    tree_size INTEGER PRIMARY KEY CHECK (tree_size > 0),
    root_hash BLOB    NOT NULL CHECK (length(root_hash) = 32),
    note      TEXT    NOT NULL,
    signed_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE audit_signer (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    verifier    TEXT    NOT NULL,
    private_key TEXT
);

-- Signed checkpoints of the Merkle tree (C2SP signed-note / tlog-checkpoint), kept for auditors.
CREATE TABLE checkpoints (
    tree_size bigint      PRIMARY KEY CHECK (tree_size > 0),
    root_hash bytea       NOT NULL CHECK (length(root_hash) = 32),
    note      text        NOT NULL,
    signed_at timestamptz NOT NULL DEFAULT now()
);

-- The checkpoint signer: its verifier key, and its private key when Scoreboard generated it
-- (AUDIT_SIGNING_KEY unset). A private key set by the operator is never stored.
CREATE TABLE audit_signer (
    singleton   smallint PRIMARY KEY CHECK (singleton = 1),
    verifier    text     NOT NULL,
    private_key text
);

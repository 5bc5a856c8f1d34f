-- As in migrations/postgres/0005_merkle_tree.sql.
CREATE TABLE merkle_nodes (
    level INTEGER NOT NULL CHECK (level >= 0 AND level < 64),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    hash  BLOB    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

ALTER TABLE event_log_head ADD COLUMN tree_size INTEGER NOT NULL DEFAULT 0;

CREATE TRIGGER merkle_nodes_no_update BEFORE UPDATE ON merkle_nodes
BEGIN
    SELECT RAISE(ABORT, 'the Merkle tree is append-only: UPDATE on merkle_nodes is refused');
END;

CREATE TRIGGER merkle_nodes_no_delete BEFORE DELETE ON merkle_nodes
BEGIN
    SELECT RAISE(ABORT, 'the Merkle tree is append-only: DELETE on merkle_nodes is refused');
END;

-- The RFC 9162 Merkle tree over the log (rules in the audit crate). Each row is a perfect
-- subtree: the 2^level leaves from idx * 2^level on; level 0 holds the leaf hashes, the hash of
-- each event's entry, computed in the append transaction that gave the event its position.
CREATE TABLE merkle_nodes (
    level smallint NOT NULL CHECK (level >= 0 AND level < 64),
    idx   bigint   NOT NULL CHECK (idx >= 0),
    hash  bytea    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);

-- How many events the tree holds. Moved with the head in every append; a log written before
-- this migration is hashed by the first append after it.
ALTER TABLE event_log_head ADD COLUMN tree_size bigint NOT NULL DEFAULT 0;

-- The tree is as append-only as the log it proves.
CREATE FUNCTION merkle_nodes_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the Merkle tree is append-only: % on merkle_nodes is refused', TG_OP;
END;
$$;

CREATE TRIGGER merkle_nodes_no_update_or_delete BEFORE UPDATE OR DELETE ON merkle_nodes
    FOR EACH ROW EXECUTE FUNCTION merkle_nodes_are_append_only();

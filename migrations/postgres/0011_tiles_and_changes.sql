-- The Merkle tree as C2SP tlog-tiles (rules in audit::tiles). Each event's leaf hash is kept in
-- its own row, written by the append that gives it its position; the tree's levels 8, 16, 24 …
-- are kept as tiles of up to 256 hashes, one row per tile, which grows until it is full. An
-- append thus writes one row per event and, once per 256 events, a tile.
--
-- Events hashed before this migration have no leaf hash in their row: it is recomputed from the
-- row itself, which is exactly what it hashes. The log's rows are not touched.
ALTER TABLE events ADD COLUMN leaf_hash bytea CHECK (length(leaf_hash) = 32);

CREATE TABLE tiles (
    level  smallint NOT NULL CHECK (level >= 1 AND level < 64),
    idx    bigint   NOT NULL CHECK (idx >= 0),
    hashes bytea    NOT NULL CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),
    PRIMARY KEY (level, idx)
);

-- A tile only grows: a partial tile is replaced by a wider one that begins with it, never
-- changed otherwise, never deleted.
CREATE FUNCTION tiles_only_grow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.level = OLD.level AND NEW.idx = OLD.idx
       AND length(NEW.hashes) > length(OLD.hashes)
       AND substring(NEW.hashes FROM 1 FOR length(OLD.hashes)) = OLD.hashes THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the Merkle tree only grows: % on tiles is refused', TG_OP;
END
$$;

CREATE TRIGGER tiles_only_grow BEFORE UPDATE OR DELETE ON tiles
    FOR EACH ROW EXECUTE FUNCTION tiles_only_grow();

-- The tiles of the tree kept so far, from its stored nodes at levels 8, 16 …
INSERT INTO tiles (level, idx, hashes)
SELECT level / 8, idx / 256, string_agg(hash, ''::bytea ORDER BY idx)
FROM merkle_nodes WHERE level > 0 AND level % 8 = 0
GROUP BY level / 8, idx / 256;

DROP TABLE merkle_nodes;
DROP FUNCTION merkle_nodes_are_append_only();

-- What each fold changed, on every board: query services follow these rows (one read per
-- announcement), so the standings tables need no index of when each row last changed.
-- `seasons` holds the other boards' standings as `standings` holds global's (NULL in rows written
-- before this migration: a query service that meets one reloads); `entries` counts `standings`.
ALTER TABLE board_changes ADD COLUMN seasons bytea;
ALTER TABLE board_changes ADD COLUMN entries bigint NOT NULL DEFAULT 0;
ALTER TABLE board_changes ALTER COLUMN seasons SET STORAGE EXTERNAL;
ALTER TABLE leaderboard DROP COLUMN changed_at;
ALTER TABLE board_standings DROP COLUMN changed_at;

-- Standings are read whole (every query service holds its boards in memory), never by rank.
DROP INDEX leaderboard_ranking;

-- A board's standings go with it explicitly; a rebuild swaps both tables at once.
ALTER TABLE board_standings DROP CONSTRAINT board_standings_board_fkey;

-- Player, board and season ids are ASCII: their order is their bytes' (collation "C"), which
-- every index on them compares several times faster than by the locale's rules.
ALTER TABLE events ALTER COLUMN player_id TYPE text COLLATE "C";
ALTER TABLE leaderboard ALTER COLUMN player_id TYPE text COLLATE "C";
ALTER TABLE board_standings ALTER COLUMN board TYPE text COLLATE "C";
ALTER TABLE board_standings ALTER COLUMN season TYPE text COLLATE "C";
ALTER TABLE board_standings ALTER COLUMN player_id TYPE text COLLATE "C";

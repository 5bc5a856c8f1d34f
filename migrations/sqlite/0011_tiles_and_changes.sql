-- As in migrations/postgres/0011_tiles_and_changes.sql.
ALTER TABLE events ADD COLUMN leaf_hash BLOB CHECK (leaf_hash IS NULL OR length(leaf_hash) = 32);

CREATE TABLE tiles (
    level  INTEGER NOT NULL CHECK (level >= 1 AND level < 64),
    idx    INTEGER NOT NULL CHECK (idx >= 0),
    hashes BLOB    NOT NULL CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TRIGGER tiles_only_grow BEFORE UPDATE ON tiles
WHEN NOT (NEW.level = OLD.level AND NEW.idx = OLD.idx AND length(NEW.hashes) > length(OLD.hashes)
          AND substr(NEW.hashes, 1, length(OLD.hashes)) = OLD.hashes)
BEGIN
    SELECT RAISE(ABORT, 'the Merkle tree only grows: UPDATE on tiles is refused');
END;

CREATE TRIGGER tiles_no_delete BEFORE DELETE ON tiles
BEGIN
    SELECT RAISE(ABORT, 'the Merkle tree only grows: DELETE on tiles is refused');
END;

INSERT INTO tiles (level, idx, hashes)
SELECT level / 8, idx / 256, unhex(group_concat(hex(hash), '' ORDER BY idx))
FROM merkle_nodes WHERE level > 0 AND level % 8 = 0
GROUP BY level / 8, idx / 256;

DROP TABLE merkle_nodes;

ALTER TABLE board_changes ADD COLUMN seasons BLOB;
ALTER TABLE board_changes ADD COLUMN entries INTEGER NOT NULL DEFAULT 0;
DROP INDEX leaderboard_changes;
DROP INDEX leaderboard_ranking;
ALTER TABLE leaderboard DROP COLUMN changed_at;

-- Without `changed_at` and without the reference to `boards` (SQLite drops neither in place).
CREATE TABLE board_standings_without_changes (
    board        TEXT    NOT NULL,
    season       TEXT    NOT NULL,
    player_id    TEXT    NOT NULL,
    display_name TEXT,
    score        INTEGER NOT NULL CHECK (score >= 0),
    reached_at   INTEGER NOT NULL CHECK (reached_at >= 0),
    banned       BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (board, season, player_id)
);
INSERT INTO board_standings_without_changes
    SELECT board, season, player_id, display_name, score, reached_at, banned FROM board_standings;
DROP TABLE board_standings;
ALTER TABLE board_standings_without_changes RENAME TO board_standings;
CREATE INDEX board_standings_by_player ON board_standings (player_id);

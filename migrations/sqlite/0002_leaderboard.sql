-- The leaderboard read model, as in migrations/postgres/0002_leaderboard.sql.
CREATE TABLE leaderboard (
    player_id    TEXT    PRIMARY KEY,
    display_name TEXT,
    score        INTEGER NOT NULL CHECK (score >= 0),
    reached_at   INTEGER NOT NULL
);

CREATE INDEX leaderboard_ranking ON leaderboard (score DESC, reached_at ASC, player_id ASC);

CREATE TABLE projection_checkpoints (
    projection TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL CHECK (position >= 0),
    updated_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO projection_checkpoints (projection, position) VALUES ('leaderboard', 0);

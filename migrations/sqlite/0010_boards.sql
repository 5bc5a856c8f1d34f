-- As in migrations/postgres/0010_boards.sql.
CREATE TABLE boards (
    board      TEXT    PRIMARY KEY,
    definition TEXT    NOT NULL,
    position   INTEGER NOT NULL DEFAULT 0 CHECK (position >= 0)
);

CREATE TABLE board_standings (
    board        TEXT    NOT NULL REFERENCES boards (board) ON DELETE CASCADE,
    season       TEXT    NOT NULL,
    player_id    TEXT    NOT NULL,
    display_name TEXT,
    score        INTEGER NOT NULL CHECK (score >= 0),
    reached_at   INTEGER NOT NULL CHECK (reached_at >= 0),
    banned       BOOLEAN NOT NULL DEFAULT FALSE,
    changed_at   INTEGER NOT NULL,
    PRIMARY KEY (board, season, player_id)
);

CREATE INDEX board_standings_by_player ON board_standings (player_id);
CREATE INDEX board_standings_by_change ON board_standings (changed_at);

-- Boards other than `global` (which is the `leaderboard` table): each is a projection of the
-- same log, folded in the same transactions, with its own position so that a board added later
-- is built from the whole log while the others go on. A board is ready to serve once its
-- position is the projection checkpoint.
CREATE TABLE boards (
    board      text   PRIMARY KEY,
    -- What it counts and how often it restarts (events::boards::BoardDef::definition); a
    -- board whose definition changed is built again from the log.
    definition text   NOT NULL,
    position   bigint NOT NULL DEFAULT 0 CHECK (position >= 0)
);

-- One standing per board, season and player, as `leaderboard` holds them for `global`.
CREATE TABLE board_standings (
    board        text    NOT NULL REFERENCES boards (board) ON DELETE CASCADE,
    season       text    NOT NULL,
    player_id    text    NOT NULL,
    display_name text,
    score        bigint  NOT NULL CHECK (score >= 0),
    reached_at   bigint  NOT NULL CHECK (reached_at >= 0),
    banned       boolean NOT NULL DEFAULT false,
    -- The checkpoint of the fold that last wrote it: query services read what changed since.
    changed_at   bigint  NOT NULL,
    PRIMARY KEY (board, season, player_id)
);

-- Moderation reaches every standing of a player.
CREATE INDEX board_standings_by_player ON board_standings (player_id);
CREATE INDEX board_standings_by_change ON board_standings (changed_at);

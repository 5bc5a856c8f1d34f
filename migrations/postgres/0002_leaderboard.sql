-- The leaderboard read model: the fold of the event log (rules in events::leaderboard).
CREATE TABLE leaderboard (
    player_id    text   PRIMARY KEY,
    display_name text,
    score        bigint NOT NULL CHECK (score >= 0),
    -- Position of the player's latest event: on equal score, who reached it first ranks higher.
    reached_at   bigint NOT NULL
);

CREATE INDEX leaderboard_ranking ON leaderboard (score DESC, reached_at ASC, player_id ASC);

-- How far each projection has folded the log. Written in the same transaction as the
-- projection's changes, so a crash can never apply an event without recording it, or record
-- it without applying it.
CREATE TABLE projection_checkpoints (
    projection text        PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO projection_checkpoints (projection, position) VALUES ('leaderboard', 0);

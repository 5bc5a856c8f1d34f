-- As in migrations/postgres/0013_usage.sql.
CREATE TABLE usage_stats (
    granularity TEXT    NOT NULL CHECK (granularity IN ('hour', 'day')),
    bucket      INTEGER NOT NULL,
    board       TEXT    NOT NULL,
    actions     INTEGER NOT NULL CHECK (actions >= 0),
    points      INTEGER NOT NULL CHECK (points >= 0),
    by_action   TEXT    NOT NULL,
    new_players INTEGER NOT NULL CHECK (new_players >= 0),
    players     BLOB    NOT NULL,
    PRIMARY KEY (granularity, bucket, board)
);

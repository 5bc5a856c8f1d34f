-- As in migrations/postgres/0008_flags_and_rebuilds.sql.
CREATE TABLE anomaly_flags (
    position   INTEGER NOT NULL,
    rule       TEXT    NOT NULL,
    player_id  TEXT    NOT NULL,
    events     TEXT    NOT NULL,
    flagged_at TEXT    NOT NULL,
    PRIMARY KEY (position, rule)
);

ALTER TABLE projection_checkpoints ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;

-- As in migrations/postgres/0007_point_in_time.sql.
CREATE TABLE board_snapshots (
    position  INTEGER PRIMARY KEY CHECK (position > 0),
    players   INTEGER NOT NULL,
    standings BLOB    NOT NULL
);

-- Times are stored as RFC 3339 text of varying length, which does not sort as the times do:
-- the index is on their Julian day number (millisecond precision).
CREATE INDEX events_by_time ON events (julianday(recorded_at), position);

-- The board at any past position: snapshots of the fold, each every standing (banned ones
-- included) as of a position, encoded in rank order (store/src/snapshot.rs). The projector
-- writes one in the fold transaction that crosses each multiple of the snapshot interval, so
-- a past board is a snapshot plus at most one interval of the log.
CREATE TABLE board_snapshots (
    position  bigint PRIMARY KEY CHECK (position > 0),
    players   bigint NOT NULL,
    standings bytea  NOT NULL
);

-- `as_of=<time>`: the last event recorded at or before a time.
CREATE INDEX events_by_time ON events (recorded_at, position);

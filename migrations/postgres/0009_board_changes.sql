-- What each fold transaction changed: the new standings of the players it touched, in
-- `(from_position, position]`, encoded as a snapshot is. A board at a past position is the
-- snapshot before it, these changes, and at most one batch of the log: no event is decoded
-- twice for it, whatever the snapshot interval.
CREATE TABLE board_changes (
    position      bigint PRIMARY KEY,
    from_position bigint NOT NULL,
    standings     bytea  NOT NULL
);

-- Snapshots and changes are read whole and decoded at once; compressing them (PostgreSQL's
-- default for large values) saves little on postcard bytes and costs a decompression per read.
ALTER TABLE board_snapshots ALTER COLUMN standings SET STORAGE EXTERNAL;
ALTER TABLE board_changes ALTER COLUMN standings SET STORAGE EXTERNAL;

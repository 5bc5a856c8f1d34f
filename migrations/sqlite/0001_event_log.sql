-- The event log, as in migrations/postgres/0001_event_log.sql. SQLite has one writer at a time:
-- an append transaction begins IMMEDIATE (taking the write lock), so positions taken from
-- event_log_head are dense and become visible in order.
CREATE TABLE events (
    position      INTEGER PRIMARY KEY CHECK (position > 0),
    event_id      BLOB    NOT NULL UNIQUE,
    action_id     BLOB    UNIQUE,
    event_type    TEXT    NOT NULL,
    event_version INTEGER NOT NULL,
    player_id     TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    claims_digest BLOB,
    recorded_at   TEXT    NOT NULL
);

CREATE INDEX events_by_player ON events (player_id, position);

CREATE TABLE event_log_head (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    position  INTEGER NOT NULL
);

INSERT INTO event_log_head (singleton, position) VALUES (1, 0);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE on events is refused');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE on events is refused');
END;

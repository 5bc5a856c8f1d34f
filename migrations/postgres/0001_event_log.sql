-- The event log: Scoreboard's source of truth.
--
-- Positions are dense (1, 2, 3 … with no gaps) and become visible in order: every append
-- transaction first locks the single row of event_log_head, takes the next positions from it
-- and holds the lock until it commits. A reader that follows the log by position therefore
-- never skips an event committed late (see README, "Ordering").
CREATE TABLE events (
    position      bigint      PRIMARY KEY CHECK (position > 0),
    event_id      uuid        NOT NULL UNIQUE,
    -- The action token's jti. Its uniqueness is what makes an action count at most once.
    action_id     uuid        UNIQUE,
    event_type    text        NOT NULL,
    event_version integer     NOT NULL,
    player_id     text        NOT NULL,
    -- The exact bytes written (json keeps the text as given; jsonb would re-order keys).
    payload       json        NOT NULL,
    -- SHA-256 of the token's canonical claims: tells a safe retry from a conflicting reuse.
    claims_digest bytea,
    recorded_at   timestamptz NOT NULL
);

CREATE INDEX events_by_player ON events (player_id, position);

CREATE TABLE event_log_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint  NOT NULL
);

INSERT INTO event_log_head (singleton, position) VALUES (true, 0);

-- The log is append-only: nothing in it is ever updated or deleted.
CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % on events is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

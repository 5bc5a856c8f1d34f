-- Season results: the final standings of a season of a board, published once the season closed
-- (its end plus SEASON_GRACE by the folder's clock) and the fold held every event of it, with
-- the log position they are final at and the size of a signed checkpoint covering it. Moderation
-- that reaches a published season later publishes a new version; no version is ever changed.
CREATE TABLE season_results (
    board        text        NOT NULL,
    season       text        NOT NULL,
    version      integer     NOT NULL CHECK (version > 0),
    -- The board's definition then (events::boards::BoardDef::definition): what it counted and how.
    definition   text        NOT NULL,
    position     bigint      NOT NULL CHECK (position >= 0),
    tree_size    bigint      NOT NULL CHECK (tree_size >= position),
    -- The ranked entries as JSON: [{"rank","player_id","name","score"}, ...].
    entries      text        NOT NULL,
    players      bigint      NOT NULL CHECK (players >= 0),
    published_at timestamptz NOT NULL,
    -- Sent to JetStream (the all-in-one, without NATS, never sends).
    relayed      boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (board, season, version)
);

CREATE INDEX season_results_unrelayed ON season_results (board, season, version) WHERE NOT relayed;

-- A published season a fold changed since (a ban, a revocation): written by that fold's own
-- transaction, so the change is never missed; cleared when the next version is published.
CREATE TABLE season_amendments (
    board  text NOT NULL,
    season text NOT NULL,
    PRIMARY KEY (board, season)
);

CREATE FUNCTION season_results_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.relayed AND NOT OLD.relayed
       AND (NEW.board, NEW.season, NEW.version, NEW.definition, NEW.position, NEW.tree_size, NEW.entries, NEW.players,
            NEW.published_at)
           = (OLD.board, OLD.season, OLD.version, OLD.definition, OLD.position, OLD.tree_size, OLD.entries, OLD.players,
              OLD.published_at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'published results are never changed: % on season_results is refused', TG_OP;
END
$$;

CREATE TRIGGER season_results_append_only BEFORE UPDATE OR DELETE ON season_results
    FOR EACH ROW EXECUTE FUNCTION season_results_are_append_only();

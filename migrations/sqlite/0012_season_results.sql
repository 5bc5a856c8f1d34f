-- As in migrations/postgres/0012_season_results.sql.
CREATE TABLE season_results (
    board        TEXT    NOT NULL,
    season       TEXT    NOT NULL,
    version      INTEGER NOT NULL CHECK (version > 0),
    definition   TEXT    NOT NULL,
    position     INTEGER NOT NULL CHECK (position >= 0),
    tree_size    INTEGER NOT NULL CHECK (tree_size >= position),
    entries      TEXT    NOT NULL,
    players      INTEGER NOT NULL CHECK (players >= 0),
    published_at TEXT    NOT NULL,
    relayed      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (board, season, version)
);

CREATE TABLE season_amendments (
    board  TEXT NOT NULL,
    season TEXT NOT NULL,
    PRIMARY KEY (board, season)
);

CREATE TRIGGER season_results_no_delete BEFORE DELETE ON season_results
BEGIN
    SELECT RAISE(ABORT, 'published results are never changed: DELETE on season_results is refused');
END;

CREATE TRIGGER season_results_only_relayed BEFORE UPDATE ON season_results
WHEN NOT (NEW.relayed AND NOT OLD.relayed AND NEW.board = OLD.board AND NEW.season = OLD.season
          AND NEW.version = OLD.version AND NEW.definition = OLD.definition AND NEW.position = OLD.position AND NEW.tree_size = OLD.tree_size
          AND NEW.entries = OLD.entries AND NEW.players = OLD.players AND NEW.published_at = OLD.published_at)
BEGIN
    SELECT RAISE(ABORT, 'published results are never changed: UPDATE on season_results is refused');
END;

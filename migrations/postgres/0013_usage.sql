-- Usage analytics (events::usage): per UTC hour and day (`bucket`: its start, Unix seconds) and
-- per board, the actions and points awarded (in total, and by action as a JSON object
-- {"action": {"actions", "points"}}), the new players (`global` only) and a sketch of the
-- distinct players (events::usage::Sketch's bytes). A fold reads the rows its batch touches,
-- merges and writes them back in its own transaction, under the checkpoint's lock, so each event
-- counts exactly once; a rebuild makes them afresh with the rest of the read model. A read model
-- folded before this migration has no usage for what it had folded: `scoreboard-admin rebuild`
-- fills it in.
CREATE TABLE usage_stats (
    granularity text   NOT NULL CHECK (granularity IN ('hour', 'day')),
    bucket      bigint NOT NULL,
    board       text   NOT NULL,
    actions     bigint NOT NULL CHECK (actions >= 0),
    points      bigint NOT NULL CHECK (points >= 0),
    by_action   text   NOT NULL,
    new_players bigint NOT NULL CHECK (new_players >= 0),
    players     bytea  NOT NULL,
    PRIMARY KEY (granularity, bucket, board)
);

-- Anomaly flags: the players a rule of ANOMALY_RULES flagged, for an operator's review. Written
-- by the fold transaction that reached `position` (the award at which the rule started to
-- fire), so each is recorded exactly once.
CREATE TABLE anomaly_flags (
    position   bigint      NOT NULL,
    rule       text        NOT NULL,
    player_id  text        NOT NULL,
    -- The positions of the awards in the rule's window then, as a JSON array.
    events     text        NOT NULL,
    flagged_at timestamptz NOT NULL,
    PRIMARY KEY (position, rule)
);

-- A rebuild (scoreboard-admin rebuild) swaps in a read model folded afresh and bumps the
-- generation, so that a query service following changes reloads instead of mixing the two.
ALTER TABLE projection_checkpoints ADD COLUMN generation bigint NOT NULL DEFAULT 0;

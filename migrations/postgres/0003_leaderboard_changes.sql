-- Which fold last changed each row, so a query service can read what changed after the position
-- it holds (instead of believing standings pushed over NATS).
ALTER TABLE leaderboard ADD COLUMN changed_at bigint NOT NULL DEFAULT 0;
UPDATE leaderboard SET changed_at = reached_at;
CREATE INDEX leaderboard_changes ON leaderboard (changed_at);

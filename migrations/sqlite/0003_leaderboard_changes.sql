-- As in migrations/postgres/0003_leaderboard_changes.sql.
ALTER TABLE leaderboard ADD COLUMN changed_at INTEGER NOT NULL DEFAULT 0;
UPDATE leaderboard SET changed_at = reached_at;
CREATE INDEX leaderboard_changes ON leaderboard (changed_at);

-- As in migrations/postgres/0004_moderation.sql.
ALTER TABLE leaderboard ADD COLUMN banned INTEGER NOT NULL DEFAULT 0;

CREATE INDEX events_moderation ON events (player_id, position)
    WHERE event_type IN ('PlayerBanned', 'PlayerUnbanned', 'ScoreRevoked');

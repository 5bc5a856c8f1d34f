-- Moderation (PlayerBanned / PlayerUnbanned / ScoreRevoked events). A banned player's row keeps their score
-- and is on no board until they are unbanned.
ALTER TABLE leaderboard ADD COLUMN banned boolean NOT NULL DEFAULT false;

-- Every append looks up the moderation of the players of its batch (banned? which awards
-- were taken back?) under the log's lock:
-- this index holds only the moderation events, so the lookup stays a few index pages however
-- long the log grows.
CREATE INDEX events_moderation ON events (player_id, position)
    WHERE event_type IN ('PlayerBanned', 'PlayerUnbanned', 'ScoreRevoked');

-- The attempt a user picked as their task's result, overriding the ranking's first. Keep in
-- step with the other backend's 0006_picked_attempt.sql and docs/store.md.
ALTER TABLE tasks ADD COLUMN picked_attempt_id TEXT;

-- The logs of environment setup and maintenance runs, SQLite flavour: what `errand env logs`
-- and the web UI show. Keep in step with ../postgres/0002_environment_logs.sql and docs/store.md.
-- The content is stored as the caller gives it, already redacted (secret values replaced by
-- `[secret:NAME]`); only the newest few per environment are kept.

CREATE TABLE environment_logs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    environment_id TEXT NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    phase          TEXT NOT NULL,   -- `setup` or `maintenance`
    snapshot       TEXT,            -- the snapshot the run built or refreshed
    exit_code      INTEGER,         -- none when the script was killed (timeout, signal)
    duration_ms    INTEGER NOT NULL,
    content        TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL
);
CREATE INDEX environment_logs_newest ON environment_logs(environment_id, id);

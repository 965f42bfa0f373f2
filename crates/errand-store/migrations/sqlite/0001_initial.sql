-- Errand's schema, SQLite flavour. Timestamps are milliseconds since the Unix epoch; ids are
-- the typed ids' text form. Keep in step with ../postgres/0001_initial.sql and docs/store.md.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    label         TEXT NOT NULL,
    -- hex SHA-256 of the secret; the secret itself is never stored
    token_hash    TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE environments (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    config_json   TEXT NOT NULL,
    config_hash   TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE tasks (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    environment_id TEXT REFERENCES environments(id) ON DELETE RESTRICT,
    repository     TEXT NOT NULL,
    git_ref        TEXT NOT NULL,
    base_commit    TEXT,
    prompt         TEXT NOT NULL,
    mode           TEXT NOT NULL CHECK (mode IN ('code', 'ask')),
    attempts       INTEGER NOT NULL CHECK (attempts BETWEEN 1 AND 8),
    created_at_ms  INTEGER NOT NULL
);
CREATE INDEX tasks_user_id ON tasks(user_id, id);
CREATE INDEX tasks_user_created ON tasks(user_id, created_at_ms);
CREATE INDEX tasks_environment ON tasks(environment_id);

CREATE TABLE attempts (
    id                  TEXT PRIMARY KEY,
    task_id             TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    user_id             TEXT NOT NULL,  -- the task's, copied for scoped queries
    idx                 INTEGER NOT NULL,
    state               TEXT NOT NULL CHECK (state IN ('queued', 'preparing', 'running',
                            'succeeded', 'failed', 'cancelled', 'timed_out')),
    reason              TEXT,
    parent_id           TEXT REFERENCES attempts(id) ON DELETE CASCADE,
    prompt              TEXT,
    created_at_ms       INTEGER NOT NULL,
    started_at_ms       INTEGER,
    finished_at_ms      INTEGER,
    lease_owner         TEXT,
    lease_expires_at_ms INTEGER,
    cancel_requested    INTEGER NOT NULL DEFAULT 0,
    -- seq of the last event: the counter appenders increment under the row's write lock
    last_seq            INTEGER NOT NULL DEFAULT 0,
    -- 1 once the `finished` event is appended
    log_closed          INTEGER NOT NULL DEFAULT 0,
    UNIQUE (task_id, idx)
);
CREATE INDEX attempts_queue ON attempts(state, created_at_ms);
CREATE INDEX attempts_lease ON attempts(lease_owner);
CREATE INDEX attempts_user_state ON attempts(user_id, state);

CREATE TABLE events (
    attempt_id TEXT NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    at_ms      INTEGER NOT NULL,
    kind       TEXT NOT NULL,   -- the event's `type`, for filtering without parsing
    body       TEXT NOT NULL,   -- JSON of errand_protocol::EventKind
    PRIMARY KEY (attempt_id, seq)
);

CREATE TABLE artifacts (
    attempt_id    TEXT NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('diff', 'report', 'conversation')),
    content       TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (attempt_id, kind)
);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt_id      TEXT NOT NULL REFERENCES attempts(id) ON DELETE CASCADE,
    text            TEXT NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    delivered_at_ms INTEGER
);
CREATE INDEX messages_pending ON messages(attempt_id, delivered_at_ms);

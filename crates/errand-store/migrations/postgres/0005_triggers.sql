-- Tasks started from a forge (a mention in a comment, a label): the webhook deliveries already
-- handled, so a replayed delivery does nothing twice, and each triggered task with the issue
-- it answers, so the pull request is reported there when the task finishes, even after a
-- restart. Keep in step with the other backend's 0005_triggers.sql and docs/store.md.

CREATE TABLE webhook_deliveries (
    delivery_id    TEXT PRIMARY KEY,  -- `<forge host>:<the forge's delivery id>`
    received_at_ms BIGINT NOT NULL
);

CREATE TABLE triggered_tasks (
    task_id        TEXT PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
    forge_host     TEXT NOT NULL,
    repository     TEXT NOT NULL,     -- `owner/name`
    issue_number   BIGINT NOT NULL,
    state          TEXT NOT NULL,     -- `waiting` until the task's outcome is reported, then `reported`
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);

-- The pull request a task's result was delivered as: at most one per task, updated by later
-- attempts (a follow-up, another attempt picked) instead of opening another. A row is written
-- before the branch is pushed (`state` = `pushing`), so a delivery cut short resumes without an
-- orphan branch or a second pull request; it becomes `open` with the forge's number and URL.
-- Keep in step with the other backend's 0004_pull_requests.sql and docs/store.md.

CREATE TABLE pull_requests (
    task_id        TEXT PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
    attempt_id     TEXT NOT NULL,   -- the attempt whose result the branch carries now
    forge          TEXT NOT NULL,   -- the forge's API base URL
    repository     TEXT NOT NULL,   -- `owner/name` on the forge
    branch         TEXT NOT NULL,
    commit_id      TEXT NOT NULL,   -- the branch head Errand pushed last
    state          TEXT NOT NULL,   -- `pushing` or `open`
    number         BIGINT,          -- the forge's pull request number, once opened
    url            TEXT,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);

// The Store implementation both backends share, written once against concrete sqlx types.
//
// This file (with `common_impl.rs`, `common_queue.rs` and `common_env_logs.rs`) is `include!`d
// by `sqlite.rs` and `postgres.rs`, which define before it:
//   `Backend` (the store struct, with a `pool: Pool` field), `Pool`, `DbRow`, `Tx`,
//   `BEGIN_WRITE` (how a writing transaction starts), `FOR_UPDATE` (row lock clause or ""),
//   `SKIP_LOCKED` (the queue's lock clause: concurrent pickers take different rows, or ""),
//   `MIGRATION_LOCK` (a statement serializing concurrent migrators, if any) and `MIGRATIONS`.
// The SQL below is the common subset of SQLite 3.35+ and PostgreSQL 12+ (`$n` parameters,
// RETURNING, ON CONFLICT), so one text serves both; sqlx generics would hide it behind a wall
// of trait bounds. Errors in this file are reported once per backend.

use std::time::Duration;

use async_trait::async_trait;
use errand_protocol::{AttemptId, AttemptOutcome, AttemptState, Event, EventKind, TaskId};
use sqlx::Row;

use crate::error::unique_as_conflict;
use crate::state::{self, allowed_transition};
use crate::{
    ApiToken, ArtifactKind, Attempt, AttemptCounts, ConflictKind, CreatedToken, Environment,
    EnvironmentId, Lease, LeaseRenewal, Message, NewTask, Page, Recovered, Result, Scope, Store,
    StoreError, Task, TokenId, User, UserId, now_ms, token,
};

const USER_COLS: &str = "id, name, created_at_ms";
const TOKEN_COLS: &str = "id, user_id, label, created_at_ms, revoked_at_ms";
const ENV_COLS: &str = "id, user_id, name, config_json, config_hash, created_at_ms, updated_at_ms";
const TASK_COLS: &str = "id, user_id, environment_id, repository, git_ref, base_commit, prompt, \
                         mode, attempts, created_at_ms, picked_attempt_id";
const ATTEMPT_COLS: &str = "id, task_id, user_id, idx, state, reason, parent_id, prompt, \
                            created_at_ms, started_at_ms, finished_at_ms, lease_owner, \
                            lease_expires_at_ms, cancel_requested, cancel_reason, last_seq, \
                            log_closed";
/// Upper bound of one `events_after` page.
const MAX_EVENTS_PAGE: u32 = 10_000;
/// Reason recorded on attempts that were running when their worker's lease expired.
const INTERRUPTED: &str = "interrupted";

/// Runs the embedded migrations that this database has not seen, in one transaction.
async fn migrate(pool: &Pool) -> Result<()> {
    let mut tx = pool.begin_with(BEGIN_WRITE).await?;
    if let Some(lock) = MIGRATION_LOCK {
        sqlx::query(lock).execute(&mut *tx).await?;
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS errand_migrations (version BIGINT PRIMARY KEY, \
         name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM errand_migrations")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let known = MIGRATIONS.iter().map(|(v, _, _)| *v).max().unwrap_or(0);
    if let Some(newest) = applied.iter().copied().max().filter(|v| *v > known) {
        return Err(StoreError::Invalid(format!(
            "the database's schema is at version {newest}, newer than this Errand knows ({known}); \
             run a newer Errand against it"
        )));
    }
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tracing::info!(version, name, "applying store migration");
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO errand_migrations (version, name, applied_at_ms) VALUES ($1, $2, $3)",
        )
        .bind(version)
        .bind(name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("unreadable {what} in the database: {e}"))
}

fn parse_id<T: std::str::FromStr>(text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e| corrupt("id", e))
}

fn user_from(row: &DbRow) -> Result<User> {
    Ok(User {
        id: parse_id(row.try_get("id")?)?,
        name: row.try_get("name")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

fn token_from(row: &DbRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: parse_id(row.try_get("id")?)?,
        user_id: parse_id(row.try_get("user_id")?)?,
        label: row.try_get("label")?,
        created_at_ms: row.try_get("created_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
    })
}

fn environment_from(row: &DbRow) -> Result<Environment> {
    Ok(Environment {
        id: parse_id(row.try_get("id")?)?,
        user_id: parse_id(row.try_get("user_id")?)?,
        name: row.try_get("name")?,
        config_json: row.try_get("config_json")?,
        config_hash: row.try_get("config_hash")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

fn task_from(row: &DbRow) -> Result<Task> {
    let environment_id: Option<String> = row.try_get("environment_id")?;
    Ok(Task {
        id: parse_id(row.try_get("id")?)?,
        user_id: parse_id(row.try_get("user_id")?)?,
        environment_id: environment_id.as_deref().map(parse_id).transpose()?,
        repository: row.try_get("repository")?,
        git_ref: row.try_get("git_ref")?,
        base_commit: row.try_get("base_commit")?,
        prompt: row.try_get("prompt")?,
        mode: crate::types::parse_mode(row.try_get("mode")?)?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        created_at_ms: row.try_get("created_at_ms")?,
        picked_attempt: row
            .try_get::<Option<String>, _>("picked_attempt_id")?
            .as_deref()
            .map(parse_id)
            .transpose()?,
    })
}

fn attempt_from(row: &DbRow) -> Result<Attempt> {
    let parent_id: Option<String> = row.try_get("parent_id")?;
    let owner: Option<String> = row.try_get("lease_owner")?;
    let expires: Option<i64> = row.try_get("lease_expires_at_ms")?;
    Ok(Attempt {
        id: parse_id(row.try_get("id")?)?,
        task_id: parse_id(row.try_get("task_id")?)?,
        user_id: parse_id(row.try_get("user_id")?)?,
        index: row.try_get::<i64, _>("idx")? as u32,
        state: state::from_text(row.try_get("state")?)?,
        reason: row.try_get("reason")?,
        parent_id: parent_id.as_deref().map(parse_id).transpose()?,
        prompt: row.try_get("prompt")?,
        created_at_ms: row.try_get("created_at_ms")?,
        started_at_ms: row.try_get("started_at_ms")?,
        finished_at_ms: row.try_get("finished_at_ms")?,
        lease: match (owner, expires) {
            (Some(worker_id), Some(expires_at_ms)) => Some(Lease { worker_id, expires_at_ms }),
            _ => None,
        },
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        cancel_reason: row.try_get("cancel_reason")?,
        last_seq: row.try_get::<i64, _>("last_seq")? as u64,
    })
}

fn event_from(row: &DbRow) -> Result<Event> {
    let body: String = row.try_get("body")?;
    Ok(Event {
        seq: row.try_get::<i64, _>("seq")? as u64,
        at_ms: row.try_get("at_ms")?,
        kind: serde_json::from_str(&body).map_err(|e| corrupt("event", e))?,
    })
}

fn message_from(row: &DbRow) -> Result<Message> {
    Ok(Message {
        id: row.try_get("id")?,
        attempt_id: parse_id(row.try_get("attempt_id")?)?,
        text: row.try_get("text")?,
        created_at_ms: row.try_get("created_at_ms")?,
        delivered_at_ms: row.try_get("delivered_at_ms")?,
    })
}

fn non_empty(what: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(StoreError::Invalid(format!("{what} must not be empty")));
    }
    Ok(())
}

fn valid_json(what: &str, text: &str) -> Result<()> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|_| ())
        .map_err(|e| StoreError::Invalid(format!("{what} is not valid JSON: {e}")))
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

/// The event's `type` tag, stored beside its JSON.
fn kind_tag(kind: &EventKind) -> Result<(String, String)> {
    let value = serde_json::to_value(kind).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let tag = value.get("type").and_then(|t| t.as_str()).unwrap_or("unknown").to_string();
    Ok((tag, value.to_string()))
}

/// The attempt's row inside a writing transaction (locked on PostgreSQL), in `scope`.
/// Rolls `tx` back now and returns `error`. A transaction that is only dropped is rolled back
/// when the pool next handles its connection, a moment later; until then its row locks hold, and
/// a worker's `SKIP LOCKED` pick (or a test right after the refusal) would not see the rows. So a
/// write refused after locking releases its locks before the caller hears of the refusal.
async fn refuse<T>(tx: Tx, error: StoreError) -> Result<T> {
    let _ = tx.rollback().await;
    Err(error)
}

async fn lock_attempt(tx: &mut Tx, id: AttemptId, scope: Scope) -> Result<Attempt> {
    let sql = format!(
        "SELECT {ATTEMPT_COLS} FROM attempts WHERE id = $1 \
         AND (CAST($2 AS TEXT) IS NULL OR user_id = $2){FOR_UPDATE}"
    );
    let row = sqlx::query(&sql)
        .bind(id.to_string())
        .bind(scope.user())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("attempt {id}")))?;
    attempt_from(&row)
}

/// Appends one event with the attempt's next seq, without any effect on its state (callers do
/// that first). Closes the log for `finished`. The counter update takes the attempt row's write
/// lock until commit, so concurrent appenders get consecutive seqs and commit in seq order.
async fn append_raw(tx: &mut Tx, id: AttemptId, kind: &EventKind, at_ms: i64) -> Result<Event> {
    let closes = i64::from(matches!(kind, EventKind::Finished { .. }));
    let seq: Option<i64> = sqlx::query_scalar(
        "UPDATE attempts SET last_seq = last_seq + 1, log_closed = $2 \
         WHERE id = $1 AND log_closed = 0 RETURNING last_seq",
    )
    .bind(id.to_string())
    .bind(closes)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(seq) = seq else {
        let exists: Option<i64> = sqlx::query_scalar("SELECT last_seq FROM attempts WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        return Err(match exists {
            Some(_) => StoreError::conflict(
                ConflictKind::LogClosed,
                format!("attempt {id} has finished; its log takes no more events"),
            ),
            None => StoreError::NotFound(format!("attempt {id}")),
        });
    };
    let (tag, body) = kind_tag(kind)?;
    sqlx::query(
        "INSERT INTO events (attempt_id, seq, at_ms, kind, body) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(seq)
    .bind(at_ms)
    .bind(tag)
    .bind(body)
    .execute(&mut **tx)
    .await?;
    Ok(Event { seq: seq as u64, at_ms, kind: kind.clone() })
}

/// Moves an attempt to a terminal state and logs `state_changed` + `finished`.
async fn finish_in_tx(
    tx: &mut Tx,
    id: AttemptId,
    to: AttemptState,
    reason: &str,
    now: i64,
) -> Result<()> {
    set_state(tx, id, to, Some(reason), now).await?;
    append_raw(tx, id, &EventKind::StateChanged { state: to, reason: Some(reason.into()) }, now)
        .await?;
    let outcome = AttemptOutcome { state: to, reason: reason.into() };
    append_raw(tx, id, &EventKind::Finished { outcome }, now).await?;
    Ok(())
}

/// Writes the state column and what goes with it: `started_at_ms` on `running`; reason,
/// `finished_at_ms` and no lease on terminal states; no lease on `queued`.
async fn set_state(
    tx: &mut Tx,
    id: AttemptId,
    to: AttemptState,
    reason: Option<&str>,
    now: i64,
) -> Result<()> {
    let sql = if to.is_terminal() {
        "UPDATE attempts SET state = $2, reason = $3, finished_at_ms = $4, lease_owner = NULL, \
         lease_expires_at_ms = NULL WHERE id = $1"
    } else if to == AttemptState::Running {
        "UPDATE attempts SET state = $2, reason = $3, \
         started_at_ms = COALESCE(started_at_ms, $4) WHERE id = $1"
    } else if to == AttemptState::Queued {
        "UPDATE attempts SET state = $2, reason = $3, lease_owner = NULL, \
         lease_expires_at_ms = NULL WHERE id = $1"
    } else {
        "UPDATE attempts SET state = $2, reason = $3 WHERE id = $1"
    };
    let mut query = sqlx::query(sql).bind(id.to_string()).bind(state::to_text(to)).bind(reason);
    if to.is_terminal() || to == AttemptState::Running {
        query = query.bind(now);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

async fn insert_attempt(tx: &mut Tx, attempt: &Attempt) -> Result<()> {
    sqlx::query(
        "INSERT INTO attempts (id, task_id, user_id, idx, state, parent_id, prompt, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(attempt.id.to_string())
    .bind(attempt.task_id.to_string())
    .bind(attempt.user_id.to_string())
    .bind(i64::from(attempt.index))
    .bind(state::to_text(attempt.state))
    .bind(attempt.parent_id.map(|p| p.to_string()))
    .bind(attempt.prompt.as_deref())
    .bind(attempt.created_at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn new_attempt(
    task: &Task,
    index: u32,
    parent: Option<AttemptId>,
    prompt: Option<String>,
) -> Attempt {
    Attempt {
        id: AttemptId::new(),
        task_id: task.id,
        user_id: task.user_id,
        index,
        state: AttemptState::Queued,
        reason: None,
        parent_id: parent,
        prompt,
        created_at_ms: now_ms(),
        started_at_ms: None,
        finished_at_ms: None,
        lease: None,
        cancel_requested: false,
        cancel_reason: None,
        last_seq: 0,
    }
}

impl Backend {
    async fn fetch_attempt(&self, scope: Scope, id: AttemptId) -> Result<Attempt> {
        let sql = format!(
            "SELECT {ATTEMPT_COLS} FROM attempts WHERE id = $1 \
             AND (CAST($2 AS TEXT) IS NULL OR user_id = $2)"
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(scope.user())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("attempt {id}")))?;
        attempt_from(&row)
    }

    async fn fetch_task_with(&self, id: TaskId) -> Result<Task> {
        let sql = format!("SELECT {TASK_COLS} FROM tasks WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?;
        task_from(&row)
    }

    async fn fetch_environment(&self, user: UserId, by: &str, value: &str) -> Result<Environment> {
        let sql = format!("SELECT {ENV_COLS} FROM environments WHERE user_id = $1 AND {by} = $2");
        let row = sqlx::query(&sql)
            .bind(user.to_string())
            .bind(value)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("environment {value}")))?;
        environment_from(&row)
    }

    async fn fetch_user(&self, by: &str, value: &str) -> Result<User> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE {by} = $1");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {value}")))?;
        user_from(&row)
    }
}

include!("common_impl.rs");
include!("common_queue.rs");
include!("common_env_logs.rs");
include!("common_pull_requests.rs");
include!("common_triggers.rs");

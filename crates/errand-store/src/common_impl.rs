// `impl Store` for the backend that includes `common.rs` (see there); contracts in `store.rs`.

#[async_trait]
impl Store for Backend {
    async fn create_user(&self, name: &str) -> Result<User> {
        non_empty("a user name", name)?;
        let user = User { id: UserId::new(), name: name.to_string(), created_at_ms: now_ms() };
        sqlx::query("INSERT INTO users (id, name, created_at_ms) VALUES ($1, $2, $3)")
            .bind(user.id.to_string())
            .bind(&user.name)
            .bind(user.created_at_ms)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                unique_as_conflict(e, || format!("a user named `{name}` already exists"))
            })?;
        Ok(user)
    }

    async fn get_user(&self, id: UserId) -> Result<User> {
        self.fetch_user("id", &id.to_string()).await
    }

    async fn user_by_name(&self, name: &str) -> Result<User> {
        self.fetch_user("name", name).await
    }

    async fn create_token(&self, user: UserId, label: &str) -> Result<CreatedToken> {
        let secret = token::generate();
        let token = ApiToken {
            id: TokenId::new(),
            user_id: user,
            label: label.to_string(),
            created_at_ms: now_ms(),
            revoked_at_ms: None,
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, label, token_hash, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.id.to_string())
        .bind(user.to_string())
        .bind(label)
        .bind(token::hash(&secret))
        .bind(token.created_at_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound(format!("user {user}"))
            }
            _ => e.into(),
        })?;
        Ok(CreatedToken { token, secret })
    }

    async fn authenticate(&self, secret: &str) -> Result<Option<User>> {
        if !secret.starts_with(token::PREFIX) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT u.id, u.name, u.created_at_ms FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at_ms IS NULL",
        )
        .bind(token::hash(secret))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn list_tokens(&self, user: UserId) -> Result<Vec<ApiToken>> {
        let sql = format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE user_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql).bind(user.to_string()).fetch_all(&self.pool).await?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_token(&self, user: UserId, token: TokenId) -> Result<()> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at_ms = COALESCE(revoked_at_ms, $3) \
             WHERE id = $1 AND user_id = $2",
        )
        .bind(token.to_string())
        .bind(user.to_string())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("token {token}")));
        }
        Ok(())
    }

    async fn create_environment(
        &self,
        user: UserId,
        name: &str,
        config_json: &str,
    ) -> Result<Environment> {
        non_empty("an environment name", name)?;
        valid_json("the environment's configuration", config_json)?;
        let now = now_ms();
        let env = Environment {
            id: EnvironmentId::new(),
            user_id: user,
            name: name.to_string(),
            config_json: config_json.to_string(),
            config_hash: token::content_hash(config_json),
            created_at_ms: now,
            updated_at_ms: now,
        };
        sqlx::query(
            "INSERT INTO environments (id, user_id, name, config_json, config_hash, created_at_ms, \
             updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(env.id.to_string())
        .bind(user.to_string())
        .bind(name)
        .bind(config_json)
        .bind(&env.config_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            unique_as_conflict(e, || format!("you already have an environment named `{name}`"))
        })?;
        Ok(env)
    }

    async fn get_environment(&self, user: UserId, id: EnvironmentId) -> Result<Environment> {
        self.fetch_environment(user, "id", &id.to_string()).await
    }

    async fn environment_by_name(&self, user: UserId, name: &str) -> Result<Environment> {
        self.fetch_environment(user, "name", name).await
    }

    async fn list_environments(&self, user: UserId) -> Result<Vec<Environment>> {
        let sql = format!("SELECT {ENV_COLS} FROM environments WHERE user_id = $1 ORDER BY name");
        let rows = sqlx::query(&sql).bind(user.to_string()).fetch_all(&self.pool).await?;
        rows.iter().map(environment_from).collect()
    }

    async fn update_environment(
        &self,
        user: UserId,
        id: EnvironmentId,
        config_json: &str,
    ) -> Result<Environment> {
        valid_json("the environment's configuration", config_json)?;
        let done = sqlx::query(
            "UPDATE environments SET config_json = $3, config_hash = $4, updated_at_ms = $5 \
             WHERE id = $1 AND user_id = $2",
        )
        .bind(id.to_string())
        .bind(user.to_string())
        .bind(config_json)
        .bind(token::content_hash(config_json))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("environment {id}")));
        }
        self.get_environment(user, id).await
    }

    async fn delete_environment(&self, user: UserId, id: EnvironmentId) -> Result<()> {
        let in_use = || {
            StoreError::conflict(
                ConflictKind::InUse,
                format!("environment {id} is used by tasks; it cannot be deleted"),
            )
        };
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        // Checked here rather than left to the foreign key alone: SQLite reports a RESTRICT
        // violation with a code sqlx does not classify as a foreign key error.
        // Only the owner's tasks can use it, and counting only those tells no one else that
        // the environment exists.
        let users: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tasks WHERE environment_id = $1 AND user_id = $2",
        )
        .bind(id.to_string())
        .bind(user.to_string())
        .fetch_one(&mut *tx)
        .await?;
        if users > 0 {
            return Err(in_use());
        }
        let done = sqlx::query("DELETE FROM environments WHERE id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                // A task created with it in between (PostgreSQL).
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => in_use(),
                _ => e.into(),
            })?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("environment {id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_environment_log(
        &self,
        user: UserId,
        id: EnvironmentId,
        log: crate::NewEnvironmentLog,
    ) -> Result<crate::EnvironmentLog> {
        self.insert_environment_log(user, id, log).await
    }

    async fn environment_logs(
        &self,
        user: UserId,
        id: EnvironmentId,
        limit: u32,
    ) -> Result<Vec<crate::EnvironmentLog>> {
        self.newest_environment_logs(user, id, limit).await
    }

    async fn get_pull_request(
        &self,
        scope: Scope,
        task: TaskId,
    ) -> Result<Option<crate::PullRequestRecord>> {
        self.fetch_pull_request(scope, task).await
    }

    async fn save_pull_request(&self, record: &crate::PullRequestRecord) -> Result<()> {
        self.upsert_pull_request(record).await
    }

    async fn record_delivery(&self, delivery_id: &str) -> Result<bool> {
        self.insert_delivery(delivery_id).await
    }

    async fn add_triggered_task(&self, trigger: &crate::TriggeredTask) -> Result<()> {
        self.insert_triggered_task(trigger).await
    }

    async fn waiting_triggered_tasks(&self, limit: u32) -> Result<Vec<crate::TriggeredTask>> {
        self.select_waiting_triggers(limit).await
    }

    async fn mark_trigger_reported(&self, task: TaskId) -> Result<()> {
        self.set_trigger_reported(task).await
    }

    async fn pick_attempt(&self, user: UserId, task: TaskId, attempt: AttemptId) -> Result<Task> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let row = lock_attempt(&mut tx, attempt, Scope::User(user)).await?;
        if row.task_id != task {
            return refuse(tx, StoreError::NotFound(format!("attempt {attempt} of task {task}"))).await;
        }
        if !row.state.is_terminal() {
            return refuse(
                tx,
                StoreError::conflict(
                    ConflictKind::InvalidTransition,
                    format!("attempt {attempt} has not finished; pick a finished attempt"),
                ),
            )
            .await;
        }
        sqlx::query("UPDATE tasks SET picked_attempt_id = $2 WHERE id = $1")
            .bind(task.to_string())
            .bind(attempt.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.fetch_task_with(task).await
    }

    async fn create_task(&self, user: UserId, new: NewTask) -> Result<(Task, Vec<Attempt>)> {
        non_empty("the repository", &new.repository)?;
        non_empty("the ref", &new.git_ref)?;
        non_empty("the prompt", &new.prompt)?;
        if new.prompt.len() > NewTask::MAX_PROMPT_BYTES {
            return Err(StoreError::Invalid(format!(
                "the prompt has {} bytes; at most {} are accepted",
                new.prompt.len(),
                NewTask::MAX_PROMPT_BYTES
            )));
        }
        if !(1..=NewTask::MAX_ATTEMPTS).contains(&new.attempts) {
            return Err(StoreError::Invalid(format!(
                "attempts must be between 1 and {}, not {}",
                NewTask::MAX_ATTEMPTS,
                new.attempts
            )));
        }
        if let Some(env) = new.environment_id {
            self.get_environment(user, env).await?;
        }
        let task = Task {
            id: TaskId::new(),
            user_id: user,
            environment_id: new.environment_id,
            repository: new.repository,
            git_ref: new.git_ref,
            base_commit: new.base_commit,
            prompt: new.prompt,
            mode: new.mode,
            attempts: new.attempts,
            created_at_ms: now_ms(),
            picked_attempt: None,
        };
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        sqlx::query(
            "INSERT INTO tasks (id, user_id, environment_id, repository, git_ref, base_commit, \
             prompt, mode, attempts, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(task.id.to_string())
        .bind(user.to_string())
        .bind(task.environment_id.map(|e| e.to_string()))
        .bind(&task.repository)
        .bind(&task.git_ref)
        .bind(task.base_commit.as_deref())
        .bind(&task.prompt)
        .bind(task.mode.as_str())
        .bind(i64::from(task.attempts))
        .bind(task.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            // The environment was deleted in between, or the user does not exist.
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound("the task's user or environment".into())
            }
            _ => e.into(),
        })?;
        let mut attempts = Vec::new();
        for index in 0..task.attempts {
            let attempt = new_attempt(&task, index, None, None);
            insert_attempt(&mut tx, &attempt).await?;
            attempts.push(attempt);
        }
        tx.commit().await?;
        Ok((task, attempts))
    }

    async fn get_task(&self, scope: Scope, id: TaskId) -> Result<Task> {
        let sql = format!(
            "SELECT {TASK_COLS} FROM tasks WHERE id = $1 \
             AND (CAST($2 AS TEXT) IS NULL OR user_id = $2)"
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(scope.user())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("task {id}")))?;
        task_from(&row)
    }

    async fn list_tasks(&self, user: UserId, page: Page<TaskId>) -> Result<Vec<Task>> {
        if page.limit == 0 || page.limit > Page::<TaskId>::MAX_LIMIT {
            return Err(StoreError::Invalid(format!(
                "a page holds 1 to {} tasks, not {}",
                Page::<TaskId>::MAX_LIMIT,
                page.limit
            )));
        }
        // Ids are UUIDv7: ordering by id is creation order, and a total order for the cursor.
        let sql = format!(
            "SELECT {TASK_COLS} FROM tasks WHERE user_id = $1 \
             AND (CAST($2 AS TEXT) IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(user.to_string())
            .bind(page.before.map(|id| id.to_string()))
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(task_from).collect()
    }

    async fn delete_task(&self, user: UserId, id: TaskId) -> Result<()> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let states: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT a.state FROM attempts a WHERE a.task_id = $1 AND a.user_id = $2{FOR_UPDATE}"
        ))
        .bind(id.to_string())
        .bind(user.to_string())
        .fetch_all(&mut *tx)
        .await?;
        if states.iter().any(|s| s == "preparing" || s == "running") {
            return refuse(tx, StoreError::conflict(
                ConflictKind::InUse,
                format!("task {id} has attempts in progress; cancel them first"),
            )).await;
        }
        let done = sqlx::query("DELETE FROM tasks WHERE id = $1 AND user_id = $2")
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("task {id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_base_commit(&self, task: TaskId, commit: &str) -> Result<Task> {
        non_empty("the base commit", commit)?;
        sqlx::query("UPDATE tasks SET base_commit = $2 WHERE id = $1 AND base_commit IS NULL")
            .bind(task.to_string())
            .bind(commit)
            .execute(&self.pool)
            .await?;
        let stored = self.fetch_task_with(task).await?;
        if stored.base_commit.as_deref() != Some(commit) {
            return Err(StoreError::conflict(
                ConflictKind::InvalidTransition,
                format!(
                    "task {task} already has base commit {}",
                    stored.base_commit.as_deref().unwrap_or("?")
                ),
            ));
        }
        Ok(stored)
    }

    async fn get_attempt(&self, scope: Scope, id: AttemptId) -> Result<Attempt> {
        self.fetch_attempt(scope, id).await
    }

    async fn list_attempts(&self, scope: Scope, task: TaskId) -> Result<Vec<Attempt>> {
        self.get_task(scope, task).await?;
        let sql = format!("SELECT {ATTEMPT_COLS} FROM attempts WHERE task_id = $1 ORDER BY idx");
        let rows = sqlx::query(&sql).bind(task.to_string()).fetch_all(&self.pool).await?;
        rows.iter().map(attempt_from).collect()
    }

    async fn create_followup(
        &self,
        user: UserId,
        parent: AttemptId,
        prompt: &str,
    ) -> Result<Attempt> {
        non_empty("the follow-up prompt", prompt)?;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let parent_row = lock_attempt(&mut tx, parent, Scope::User(user)).await?;
        if !parent_row.state.is_terminal() {
            return refuse(tx, StoreError::conflict(
                ConflictKind::InvalidTransition,
                format!(
                    "attempt {parent} is still {:?}; follow up once it has finished",
                    parent_row.state
                ),
            )).await;
        }
        let task_sql = format!("SELECT {TASK_COLS} FROM tasks WHERE id = $1{FOR_UPDATE}");
        let task = task_from(
            &sqlx::query(&task_sql)
                .bind(parent_row.task_id.to_string())
                .fetch_one(&mut *tx)
                .await?,
        )?;
        let last: i64 = sqlx::query_scalar("SELECT MAX(idx) FROM attempts WHERE task_id = $1")
            .bind(task.id.to_string())
            .fetch_one(&mut *tx)
            .await?;
        let attempt = new_attempt(&task, last as u32 + 1, Some(parent), Some(prompt.to_string()));
        insert_attempt(&mut tx, &attempt).await?;
        tx.commit().await?;
        Ok(attempt)
    }

    async fn request_cancel(&self, scope: Scope, id: AttemptId, reason: &str) -> Result<Attempt> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let attempt = lock_attempt(&mut tx, id, scope).await?;
        match attempt.state {
            AttemptState::Queued => {
                finish_in_tx(&mut tx, id, AttemptState::Cancelled, reason, now_ms()).await?
            }
            AttemptState::Preparing | AttemptState::Running => {
                sqlx::query(
                    "UPDATE attempts SET cancel_requested = 1, cancel_reason = $2 WHERE id = $1",
                )
                .bind(id.to_string())
                .bind(reason)
                    .execute(&mut *tx)
                    .await?;
            }
            _ => return Ok(attempt),
        }
        let attempt = lock_attempt(&mut tx, id, scope).await?;
        tx.commit().await?;
        Ok(attempt)
    }

    async fn append_event(&self, id: AttemptId, kind: &EventKind) -> Result<Event> {
        let now = now_ms();
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        match kind {
            EventKind::StateChanged { state: to, reason } => {
                let attempt = lock_attempt(&mut tx, id, Scope::System).await?;
                if !allowed_transition(attempt.state, *to) {
                    return refuse(tx, StoreError::conflict(
                        ConflictKind::InvalidTransition,
                        format!("attempt {id} cannot go from {:?} to {to:?}", attempt.state),
                    )).await;
                }
                set_state(&mut tx, id, *to, reason.as_deref(), now).await?;
            }
            EventKind::Finished { outcome } => {
                let attempt = lock_attempt(&mut tx, id, Scope::System).await?;
                if !attempt.state.is_terminal() || attempt.state != outcome.state {
                    return refuse(tx, StoreError::conflict(
                        ConflictKind::InvalidTransition,
                        format!(
                            "attempt {id} is {:?}; a finished event must name its terminal state, \
                             not {:?}",
                            attempt.state, outcome.state
                        ),
                    )).await;
                }
            }
            _ => {}
        }
        let event = append_raw(&mut tx, id, kind, now).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn events_after(
        &self,
        scope: Scope,
        attempt: AttemptId,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>> {
        if limit == 0 || limit > MAX_EVENTS_PAGE {
            return Err(StoreError::Invalid(format!(
                "a page holds 1 to {MAX_EVENTS_PAGE} events, not {limit}"
            )));
        }
        self.fetch_attempt(scope, attempt).await?;
        let rows = sqlx::query(
            "SELECT seq, at_ms, body FROM events WHERE attempt_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(attempt.to_string())
        .bind(i64::try_from(after_seq).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from).collect()
    }

    async fn put_artifact(
        &self,
        attempt: AttemptId,
        kind: ArtifactKind,
        content: &str,
    ) -> Result<()> {
        if kind.is_json() {
            valid_json(&format!("the {} artifact", kind.as_str()), content)?;
        }
        sqlx::query(
            "INSERT INTO artifacts (attempt_id, kind, content, created_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (attempt_id, kind) DO UPDATE SET content = excluded.content, \
             created_at_ms = excluded.created_at_ms",
        )
        .bind(attempt.to_string())
        .bind(kind.as_str())
        .bind(content)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::NotFound(format!("attempt {attempt}"))
            }
            _ => e.into(),
        })?;
        Ok(())
    }

    async fn get_artifact(
        &self,
        scope: Scope,
        attempt: AttemptId,
        kind: ArtifactKind,
    ) -> Result<Option<String>> {
        self.fetch_attempt(scope, attempt).await?;
        Ok(sqlx::query_scalar("SELECT content FROM artifacts WHERE attempt_id = $1 AND kind = $2")
            .bind(attempt.to_string())
            .bind(kind.as_str())
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn enqueue_message(
        &self,
        scope: Scope,
        attempt: AttemptId,
        text: &str,
    ) -> Result<Message> {
        non_empty("a message", text)?;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let row = lock_attempt(&mut tx, attempt, scope).await?;
        if row.state.is_terminal() {
            return refuse(tx, StoreError::conflict(
                ConflictKind::InvalidTransition,
                format!(
                    "attempt {attempt} has finished ({:?}); messages go to running attempts",
                    row.state
                ),
            )).await;
        }
        let now = now_ms();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO messages (attempt_id, text, created_at_ms) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(attempt.to_string())
        .bind(text)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Message {
            id,
            attempt_id: attempt,
            text: text.to_string(),
            created_at_ms: now,
            delivered_at_ms: None,
        })
    }

    async fn take_messages(&self, attempt: AttemptId) -> Result<Vec<Message>> {
        let rows = sqlx::query(
            "UPDATE messages SET delivered_at_ms = $2 WHERE attempt_id = $1 \
             AND delivered_at_ms IS NULL RETURNING id, attempt_id, text, created_at_ms, delivered_at_ms",
        )
        .bind(attempt.to_string())
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        let mut messages = rows.iter().map(message_from).collect::<Result<Vec<_>>>()?;
        // RETURNING does not promise an order.
        messages.sort_by_key(|m| m.id);
        Ok(messages)
    }

    async fn lease_next(&self, worker_id: &str, ttl: Duration) -> Result<Option<(Attempt, Task)>> {
        self.take_oldest_queued(worker_id, ttl).await
    }

    async fn renew_lease(
        &self,
        attempt: AttemptId,
        worker_id: &str,
        ttl: Duration,
    ) -> Result<LeaseRenewal> {
        self.extend_lease(attempt, worker_id, ttl).await
    }

    async fn release(&self, id: AttemptId, worker_id: &str, reason: &str) -> Result<()> {
        self.give_back(id, worker_id, reason).await
    }

    async fn recover_expired(&self, now: i64) -> Result<Vec<Recovered>> {
        self.recover_expired_leases(now).await
    }

    async fn attempts_by_worker(&self, worker_id: &str) -> Result<Vec<Attempt>> {
        let sql = format!("SELECT {ATTEMPT_COLS} FROM attempts WHERE lease_owner = $1 ORDER BY id");
        let rows = sqlx::query(&sql).bind(worker_id).fetch_all(&self.pool).await?;
        rows.iter().map(attempt_from).collect()
    }

    async fn count_tasks_since(&self, user: UserId, since_ms: i64) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tasks WHERE user_id = $1 AND created_at_ms >= $2",
        )
        .bind(user.to_string())
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(count as u64)
    }

    async fn attempt_counts(&self, user: Option<UserId>) -> Result<AttemptCounts> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM attempts WHERE state IN ('queued', 'preparing', 'running') \
             AND (CAST($1 AS TEXT) IS NULL OR user_id = $1) GROUP BY state",
        )
        .bind(user.map(|u| u.to_string()))
        .fetch_all(&self.pool)
        .await?;
        let mut counts = AttemptCounts::default();
        for row in &rows {
            let n = row.try_get::<i64, _>("n")? as u64;
            match row.try_get::<String, _>("state")?.as_str() {
                "queued" => counts.queued = n,
                "preparing" => counts.preparing = n,
                _ => counts.running = n,
            }
        }
        Ok(counts)
    }
}

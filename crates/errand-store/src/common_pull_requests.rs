// The pull request a task was delivered as, for the backend that includes `common.rs` (see
// there): the bodies behind `Store::get_pull_request` and `save_pull_request`, whose contracts
// are in `store.rs`.

const PR_COLS: &str = "task_id, attempt_id, forge, repository, branch, commit_id, state, number, \
                       url, created_at_ms, updated_at_ms";

fn pull_request_from(row: &DbRow) -> Result<crate::PullRequestRecord> {
    Ok(crate::PullRequestRecord {
        task_id: parse_id(row.try_get("task_id")?)?,
        attempt_id: parse_id(row.try_get("attempt_id")?)?,
        forge: row.try_get("forge")?,
        repository: row.try_get("repository")?,
        branch: row.try_get("branch")?,
        commit_id: row.try_get("commit_id")?,
        state: row.try_get("state")?,
        number: row.try_get("number")?,
        url: row.try_get("url")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

impl Backend {
    async fn fetch_pull_request(
        &self,
        scope: Scope,
        task: TaskId,
    ) -> Result<Option<crate::PullRequestRecord>> {
        // The task must be visible in the scope: another user's is "not found".
        let visible: Option<String> = sqlx::query_scalar(
            "SELECT id FROM tasks WHERE id = $1 AND (CAST($2 AS TEXT) IS NULL OR user_id = $2)",
        )
        .bind(task.to_string())
        .bind(scope.user())
        .fetch_optional(&self.pool)
        .await?;
        if visible.is_none() {
            return Err(StoreError::NotFound(format!("task {task}")));
        }
        let sql = format!("SELECT {PR_COLS} FROM pull_requests WHERE task_id = $1");
        let row = sqlx::query(&sql).bind(task.to_string()).fetch_optional(&self.pool).await?;
        row.as_ref().map(pull_request_from).transpose()
    }

    async fn upsert_pull_request(&self, record: &crate::PullRequestRecord) -> Result<()> {
        non_empty("the pull request's branch", &record.branch)?;
        non_empty("the pull request's forge", &record.forge)?;
        non_empty("the pull request's repository", &record.repository)?;
        non_empty("the pull request's commit", &record.commit_id)?;
        non_empty("the pull request's state", &record.state)?;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let exists: Option<String> = sqlx::query_scalar(&format!(
            "SELECT id FROM tasks WHERE id = $1{FOR_UPDATE}"
        ))
        .bind(record.task_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return refuse(tx, StoreError::NotFound(format!("task {}", record.task_id))).await;
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO pull_requests (task_id, attempt_id, forge, repository, branch, commit_id, \
             state, number, url, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (task_id) DO UPDATE SET attempt_id = excluded.attempt_id, \
             forge = excluded.forge, repository = excluded.repository, branch = excluded.branch, \
             commit_id = excluded.commit_id, state = excluded.state, number = excluded.number, \
             url = excluded.url, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(record.task_id.to_string())
        .bind(record.attempt_id.to_string())
        .bind(&record.forge)
        .bind(&record.repository)
        .bind(&record.branch)
        .bind(&record.commit_id)
        .bind(&record.state)
        .bind(record.number)
        .bind(record.url.as_deref())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

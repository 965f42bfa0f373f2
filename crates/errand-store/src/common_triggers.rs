// Webhook deliveries and triggered tasks, for the backend that includes `common.rs` (see there):
// the bodies behind `Store::record_delivery`, `add_triggered_task`, `waiting_triggered_tasks`
// and `mark_trigger_reported`, whose contracts are in `store.rs`.

const TRIGGER_COLS: &str =
    "task_id, forge_host, repository, issue_number, state, created_at_ms, updated_at_ms";

fn trigger_from(row: &DbRow) -> Result<crate::TriggeredTask> {
    Ok(crate::TriggeredTask {
        task_id: parse_id(row.try_get("task_id")?)?,
        forge_host: row.try_get("forge_host")?,
        repository: row.try_get("repository")?,
        issue_number: row.try_get("issue_number")?,
        state: row.try_get("state")?,
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

impl Backend {
    async fn insert_delivery(&self, delivery_id: &str) -> Result<bool> {
        non_empty("the delivery id", delivery_id)?;
        // One statement: two replicas receiving the same delivery cannot both insert it.
        let done = sqlx::query(
            "INSERT INTO webhook_deliveries (delivery_id, received_at_ms) VALUES ($1, $2) \
             ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind(delivery_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_triggered_task(&self, trigger: &crate::TriggeredTask) -> Result<()> {
        non_empty("the forge host", &trigger.forge_host)?;
        non_empty("the repository", &trigger.repository)?;
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO triggered_tasks (task_id, forge_host, repository, issue_number, state, \
             created_at_ms, updated_at_ms) \
             SELECT $1, $2, $3, $4, 'waiting', $5, $5 WHERE EXISTS (SELECT 1 FROM tasks WHERE id = $1)",
        )
        .bind(trigger.task_id.to_string())
        .bind(&trigger.forge_host)
        .bind(&trigger.repository)
        .bind(trigger.issue_number)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("task {}", trigger.task_id)));
        }
        Ok(())
    }

    async fn select_waiting_triggers(&self, limit: u32) -> Result<Vec<crate::TriggeredTask>> {
        let sql = format!(
            "SELECT {TRIGGER_COLS} FROM triggered_tasks WHERE state = 'waiting' \
             ORDER BY created_at_ms, task_id LIMIT $1"
        );
        let rows = sqlx::query(&sql).bind(i64::from(limit.clamp(1, 1000))).fetch_all(&self.pool).await?;
        rows.iter().map(trigger_from).collect()
    }

    async fn set_trigger_reported(&self, task: TaskId) -> Result<()> {
        sqlx::query("UPDATE triggered_tasks SET state = 'reported', updated_at_ms = $2 WHERE task_id = $1")
            .bind(task.to_string())
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

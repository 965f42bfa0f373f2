// The logs of environment setup and maintenance runs, for the backend that includes `common.rs`
// (see there): the bodies behind `Store::add_environment_log` and `environment_logs`, whose
// contracts are in `store.rs`.

const ENV_LOG_COLS: &str =
    "id, environment_id, phase, snapshot, exit_code, duration_ms, content, created_at_ms";

fn environment_log_from(row: &DbRow) -> Result<crate::EnvironmentLog> {
    let exit_code: Option<i64> = row.try_get("exit_code")?;
    Ok(crate::EnvironmentLog {
        id: row.try_get("id")?,
        environment_id: parse_id(row.try_get("environment_id")?)?,
        phase: row.try_get("phase")?,
        snapshot: row.try_get("snapshot")?,
        exit_code: exit_code
            .map(|c| i32::try_from(c).map_err(|e| corrupt("exit code", e)))
            .transpose()?,
        duration_ms: row.try_get("duration_ms")?,
        content: row.try_get("content")?,
        created_at_ms: row.try_get("created_at_ms")?,
    })
}

impl Backend {
    async fn insert_environment_log(
        &self,
        user: UserId,
        id: EnvironmentId,
        log: crate::NewEnvironmentLog,
    ) -> Result<crate::EnvironmentLog> {
        non_empty("the log's phase", &log.phase)?;
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        // Locking the environment's row orders this insert with a concurrent delete of it.
        let owned =
            format!("SELECT id FROM environments WHERE id = $1 AND user_id = $2{FOR_UPDATE}");
        let found: Option<String> = sqlx::query_scalar(&owned)
            .bind(id.to_string())
            .bind(user.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound(format!("environment {id}")));
        }
        let sql = format!(
            "INSERT INTO environment_logs (environment_id, phase, snapshot, exit_code, duration_ms, \
             content, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ENV_LOG_COLS}"
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(&log.phase)
            .bind(log.snapshot.as_deref())
            .bind(log.exit_code.map(i64::from))
            .bind(log.duration_ms)
            .bind(&log.content)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?;
        let stored = environment_log_from(&row)?;
        sqlx::query(
            "DELETE FROM environment_logs WHERE environment_id = $1 AND id NOT IN \
             (SELECT id FROM environment_logs WHERE environment_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(id.to_string())
        .bind(i64::from(crate::NewEnvironmentLog::KEPT_PER_ENVIRONMENT))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn newest_environment_logs(
        &self,
        user: UserId,
        id: EnvironmentId,
        limit: u32,
    ) -> Result<Vec<crate::EnvironmentLog>> {
        self.get_environment(user, id).await?;
        let sql = format!(
            "SELECT {ENV_LOG_COLS} FROM environment_logs WHERE environment_id = $1 \
             ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(environment_log_from).collect()
    }
}

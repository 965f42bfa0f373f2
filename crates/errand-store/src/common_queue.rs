// The queue and leases of the backend that includes `common.rs` (see there): the bodies behind
// `Store::lease_next`, `renew_lease`, `release` and `recover_expired`, whose contracts are in
// `store.rs`.

impl Backend {
    async fn take_oldest_queued(
        &self,
        worker_id: &str,
        ttl: Duration,
    ) -> Result<Option<(Attempt, Task)>> {
        non_empty("the worker id", worker_id)?;
        let now = now_ms();
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let pick = format!(
            "SELECT id FROM attempts WHERE state = 'queued' ORDER BY created_at_ms, id LIMIT 1{SKIP_LOCKED}"
        );
        let picked: Option<String> = sqlx::query_scalar(&pick).fetch_optional(&mut *tx).await?;
        let Some(picked) = picked else { return Ok(None) };
        let id: AttemptId = parse_id(&picked)?;
        sqlx::query(
            "UPDATE attempts SET state = 'preparing', reason = NULL, lease_owner = $2, \
             lease_expires_at_ms = $3 WHERE id = $1",
        )
        .bind(&picked)
        .bind(worker_id)
        .bind(now.saturating_add(ttl_ms(ttl)))
        .execute(&mut *tx)
        .await?;
        let event = EventKind::StateChanged { state: AttemptState::Preparing, reason: None };
        append_raw(&mut tx, id, &event, now).await?;
        let attempt = lock_attempt(&mut tx, id, Scope::System).await?;
        let task_sql = format!("SELECT {TASK_COLS} FROM tasks WHERE id = $1");
        let task = task_from(
            &sqlx::query(&task_sql).bind(attempt.task_id.to_string()).fetch_one(&mut *tx).await?,
        )?;
        tx.commit().await?;
        Ok(Some((attempt, task)))
    }

    async fn extend_lease(
        &self,
        attempt: AttemptId,
        worker_id: &str,
        ttl: Duration,
    ) -> Result<LeaseRenewal> {
        let expires_at_ms = now_ms().saturating_add(ttl_ms(ttl));
        // An expired lease that nobody recovered yet may still be renewed: the row lock orders
        // this update and recovery, so exactly one of them wins.
        let cancel: Option<(i64, Option<String>)> = sqlx::query_as(
            "UPDATE attempts SET lease_expires_at_ms = $3 WHERE id = $1 AND lease_owner = $2 \
             AND state IN ('preparing', 'running') RETURNING cancel_requested, cancel_reason",
        )
        .bind(attempt.to_string())
        .bind(worker_id)
        .bind(expires_at_ms)
        .fetch_optional(&self.pool)
        .await?;
        match cancel {
            Some((cancel, cancel_reason)) => {
                Ok(LeaseRenewal { expires_at_ms, cancel_requested: cancel != 0, cancel_reason })
            }
            None => Err(StoreError::conflict(
                ConflictKind::LeaseLost,
                format!("worker `{worker_id}` no longer holds attempt {attempt}"),
            )),
        }
    }

    async fn give_back(&self, id: AttemptId, worker_id: &str, reason: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let attempt = lock_attempt(&mut tx, id, Scope::System).await?;
        if attempt.lease.as_ref().map(|l| l.worker_id.as_str()) != Some(worker_id) {
            return refuse(tx, StoreError::conflict(
                ConflictKind::LeaseLost,
                format!("worker `{worker_id}` does not hold attempt {id}"),
            )).await;
        }
        if attempt.state != AttemptState::Preparing {
            return refuse(tx, StoreError::conflict(
                ConflictKind::InvalidTransition,
                format!(
                    "attempt {id} is {:?}; only a preparing attempt can be released",
                    attempt.state
                ),
            )).await;
        }
        if attempt.cancel_requested {
            let reason = attempt.cancel_reason.as_deref().unwrap_or("cancelled");
            finish_in_tx(&mut tx, id, AttemptState::Cancelled, reason, now).await?;
        } else {
            set_state(&mut tx, id, AttemptState::Queued, Some(reason), now).await?;
            let event = EventKind::StateChanged {
                state: AttemptState::Queued,
                reason: Some(reason.into()),
            };
            append_raw(&mut tx, id, &event, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn recover_expired_leases(&self, now: i64) -> Result<Vec<Recovered>> {
        let mut tx = self.pool.begin_with(BEGIN_WRITE).await?;
        let pick = format!(
            "SELECT {ATTEMPT_COLS} FROM attempts WHERE state IN ('preparing', 'running') \
             AND lease_expires_at_ms < $1 ORDER BY id{SKIP_LOCKED}"
        );
        let rows = sqlx::query(&pick).bind(now).fetch_all(&mut *tx).await?;
        let mut recovered = Vec::new();
        for row in &rows {
            let attempt = attempt_from(row)?;
            let worker_id = attempt.lease.as_ref().map(|l| l.worker_id.clone()).unwrap_or_default();
            let to = if attempt.cancel_requested {
                let reason = attempt.cancel_reason.as_deref().unwrap_or("cancelled");
                finish_in_tx(&mut tx, attempt.id, AttemptState::Cancelled, reason, now).await?;
                AttemptState::Cancelled
            } else if attempt.state == AttemptState::Running {
                finish_in_tx(&mut tx, attempt.id, AttemptState::Failed, INTERRUPTED, now).await?;
                AttemptState::Failed
            } else {
                let reason = format!(
                    "requeued: the lease of worker `{worker_id}` expired before it started running"
                );
                set_state(&mut tx, attempt.id, AttemptState::Queued, Some(&reason), now).await?;
                let event =
                    EventKind::StateChanged { state: AttemptState::Queued, reason: Some(reason) };
                append_raw(&mut tx, attempt.id, &event, now).await?;
                AttemptState::Queued
            };
            recovered.push(Recovered {
                attempt_id: attempt.id,
                task_id: attempt.task_id,
                worker_id,
                from: attempt.state,
                to,
            });
        }
        tx.commit().await?;
        Ok(recovered)
    }
}

//! The distributed backend: PostgreSQL shared by any number of servers and workers. Row locks
//! (`FOR UPDATE`) order the writers of one attempt; `SKIP LOCKED` lets workers lease different
//! attempts concurrently.

use sqlx::postgres::PgPoolOptions;

/// A [`crate::Store`] in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: Pool,
}

type Backend = PgStore;
type Pool = sqlx::PgPool;
type DbRow = sqlx::postgres::PgRow;
type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

const BEGIN_WRITE: &str = "BEGIN";
const FOR_UPDATE: &str = " FOR UPDATE";
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
/// Replicas starting together take turns migrating (an arbitrary constant key: "errand").
const MIGRATION_LOCK: Option<&str> = Some("SELECT pg_advisory_xact_lock(6512104)");
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/postgres/0001_initial.sql")),
    (2, "environment_logs", include_str!("../migrations/postgres/0002_environment_logs.sql")),
    (3, "cancel_reason", include_str!("../migrations/postgres/0003_cancel_reason.sql")),
    (4, "pull_requests", include_str!("../migrations/postgres/0004_pull_requests.sql")),
    (5, "triggers", include_str!("../migrations/postgres/0005_triggers.sql")),
    (6, "picked_attempt", include_str!("../migrations/postgres/0006_picked_attempt.sql")),
];

impl PgStore {
    /// Connects to `postgres://user[:password]@host[:port]/database` and migrates it.
    pub async fn connect(url: &str) -> crate::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(30))
            .connect(url)
            .await
            .map_err(|e| {
                crate::StoreError::Backend(format!(
                    "cannot connect to {}: {e}",
                    crate::redact_url(url)
                ))
            })?;
        migrate(&pool).await?;
        Ok(Self { pool })
    }
}

include!("common.rs");

//! The embedded backend: one SQLite file in WAL mode. Writers serialize on SQLite's write lock
//! (`BEGIN IMMEDIATE`, waiting up to the busy timeout), readers never wait for them.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// A [`crate::Store`] in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: Pool,
}

type Backend = SqliteStore;
type Pool = sqlx::SqlitePool;
type DbRow = sqlx::sqlite::SqliteRow;
type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

/// Takes the write lock at the start, so a transaction that reads before it writes never fails
/// to upgrade (SQLITE_BUSY without waiting) when another writer got there first.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
/// Rows need no lock of their own: the write lock covers the whole database.
const FOR_UPDATE: &str = "";
const SKIP_LOCKED: &str = "";
const MIGRATION_LOCK: Option<&str> = None;
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/sqlite/0001_initial.sql")),
    (2, "environment_logs", include_str!("../migrations/sqlite/0002_environment_logs.sql")),
    (3, "cancel_reason", include_str!("../migrations/sqlite/0003_cancel_reason.sql")),
    (4, "pull_requests", include_str!("../migrations/sqlite/0004_pull_requests.sql")),
    (5, "triggers", include_str!("../migrations/sqlite/0005_triggers.sql")),
    (6, "picked_attempt", include_str!("../migrations/sqlite/0006_picked_attempt.sql")),
];

impl SqliteStore {
    /// Opens (creating it and its directory if missing) the database file and migrates it.
    pub async fn open(path: &Path) -> crate::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                crate::StoreError::Invalid(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL loses no committed transaction when the process dies, only
            // (the last ones) when the machine does; FULL would fsync every event.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
        migrate(&pool).await?;
        Ok(Self { pool })
    }
}

include!("common.rs");

//! Errand's durable state behind one trait, [`Store`]: users and API tokens, environments (with
//! the logs of their setup runs), tasks,
//! attempts with their leases, the append-only event log, artifacts and steering messages.
//!
//! Two backends implement it with the same schema and the same contracts: SQLite (a file; the
//! embedded default) and PostgreSQL (many servers and workers sharing one database). [`open`]
//! picks one from a URL and runs the backend's migrations (plain SQL in `migrations/`).
//!
//! Invariants (design: "Events are the source of truth"; "Task and attempt states"):
//! - an attempt's state changes only together with a `state_changed` event in the same
//!   transaction, along the allowed transitions ([`allowed_transition`]);
//! - every attempt in `preparing` or `running` holds a lease, so [`Store::recover_expired`] finds
//!   it when its worker dies; terminal attempts hold none;
//! - event `seq`s are 1, 2, 3… per attempt with no gap or duplicate, and nothing is appended
//!   after a `finished` event;
//! - a token's plain text is never stored: only its SHA-256.
//!
//! The store enforces these data rules, not business rules (limits, scheduling policy): it
//! counts, and the caller decides.

mod error;
mod ids;
mod observed;
mod postgres;
mod sqlite;
mod state;
mod store;
mod token;
mod types;

pub use error::{ConflictKind, StoreError};
pub use ids::{EnvironmentId, TokenId, UserId};
pub use observed::{AppendObserver, ObservedStore};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use state::allowed_transition;
pub use store::Store;
pub use types::{
    ApiToken, ArtifactKind, Attempt, AttemptCounts, CreatedToken, Environment, EnvironmentLog,
    Lease, LeaseRenewal, Message, NewEnvironmentLog, NewTask, Page, PullRequestRecord, Recovered,
    Scope, Task, TaskMode, TriggeredTask, User,
};

use std::sync::Arc;

/// Result of every store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Opens the store a URL names and brings its schema up to date:
/// `sqlite:///var/lib/errand/errand.db` (created if missing) or `postgres://user@host/db`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        Ok(Arc::new(SqliteStore::open(std::path::Path::new(path)).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        Err(StoreError::Invalid(format!(
            "unsupported database URL `{}`: use sqlite:///path/to/errand.db or postgres://user@host/database",
            redact_url(url)
        )))
    }
}

/// Milliseconds since the Unix epoch, the unit of every timestamp in the store.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A database URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_in_errors_hide_the_password() {
        assert_eq!(
            redact_url("postgres://errand:s3cret@db:5432/errand"),
            "postgres://errand:***@db:5432/errand"
        );
        assert_eq!(redact_url("postgres://db/errand"), "postgres://db/errand");
        assert_eq!(redact_url("sqlite:///var/lib/errand.db"), "sqlite:///var/lib/errand.db");
    }
}

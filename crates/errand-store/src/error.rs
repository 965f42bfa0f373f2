//! What can go wrong, typed so that the HTTP layer maps each kind to one status code.

/// Why an operation conflicts with the stored state (HTTP 409).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// A unique name is taken (user name, environment name per user).
    AlreadyExists,
    /// The attempt's state does not allow this transition or operation.
    InvalidTransition,
    /// The worker no longer holds the attempt's lease: another worker owns it, or it expired and
    /// was recovered. The worker must stop working on the attempt.
    LeaseLost,
    /// The attempt's log ended with its `finished` event; nothing more can be appended.
    LogClosed,
    /// The row is still referenced (an environment used by tasks, a task with attempts in flight).
    InUse,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist, or belongs to another user (the two are indistinguishable).
    #[error("{0} not found")]
    NotFound(String),
    #[error("{message}")]
    Conflict { kind: ConflictKind, message: String },
    /// The input is malformed (empty name, attempts out of range, config that is not JSON).
    #[error("{0}")]
    Invalid(String),
    /// The database failed; the message is the driver's.
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    pub(crate) fn conflict(kind: ConflictKind, message: impl Into<String>) -> Self {
        Self::Conflict { kind, message: message.into() }
    }

    /// Whether this is a lost lease, the one error a worker must react to by stopping.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self, Self::Conflict { kind: ConflictKind::LeaseLost, .. })
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Backend(e.to_string())
    }
}

/// Maps a unique-constraint violation to `AlreadyExists` with `what`, anything else to Backend.
pub(crate) fn unique_as_conflict(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::conflict(ConflictKind::AlreadyExists, what())
        }
        _ => e.into(),
    }
}

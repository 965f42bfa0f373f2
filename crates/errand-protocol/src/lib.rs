//! Errand's shared vocabulary: the types every other crate speaks.
//!
//! Invariant: this crate does no I/O. It defines typed ids, attempt states, the event log's
//! entries, the final report and its citations, the summary of a diff, and the HTTP API's requests
//! and responses ([`api`]); serde gives each its wire form (JSON with a `type` tag on enums),
//! which the CLI's `--json` output and the HTTP API expose unchanged, and utoipa its OpenAPI
//! schema.

pub mod api;
mod citation;
mod event;
mod ids;
mod report;

pub use api::TaskMode;
pub use citation::{Citation, CitationProblem, CitationTarget, parse_citations};
pub use event::{
    AttemptOutcome, AttemptState, EgressDecision, Event, EventKind, FileChange, FileChangeKind,
    PlanItem, PlanStatus, Prices, TokenUsage,
};
pub use ids::{AttemptId, IdParseError, TaskId};
pub use report::{CheckResult, Report};

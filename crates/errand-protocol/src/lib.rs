//! Errand's shared vocabulary: the types every other crate speaks.
//!
//! Invariant: this crate does no I/O. It defines typed ids, attempt states, the event log's
//! entries, the final report and its citations, and the summary of a diff; serde gives each its
//! wire form (JSON with a `type` tag on enums), which the CLI's `--json` output and, later, the
//! HTTP API expose unchanged.

mod citation;
mod event;
mod ids;
mod report;

pub use citation::{Citation, CitationProblem, CitationTarget, parse_citations};
pub use event::{
    AttemptOutcome, AttemptState, EgressDecision, Event, EventKind, FileChange, FileChangeKind,
    PlanItem, PlanStatus, Prices, TokenUsage,
};
pub use ids::{AttemptId, IdParseError, TaskId};
pub use report::{CheckResult, Report};

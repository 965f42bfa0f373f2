//! Errand's service side. Today: the worker runtime.
//!
//! - `attempt.rs`: [`run_one_attempt`], one attempt end to end (environment, sandbox, agent,
//!   diff and report, cleanup) into any [`errand_agent::EventSink`]; `errand exec` and the
//!   workers share it. `setup_log.rs` turns an environment's preparation into events.
//! - `leftovers.rs`: what a stopped attempt may leave on disk.
//!
//! Invariant (design: "Events are the source of truth"): a worker's attempt records nothing
//! except through the store, and stops as soon as the store says the attempt is not its own.

mod attempt;
mod leftovers;
mod setup_log;

pub use attempt::{
    AttemptEnd, AttemptPlan, AttemptResources, AttemptRun, DEFAULT_SNAPSHOT_CACHE_BYTES, Stop,
    run_one_attempt,
};

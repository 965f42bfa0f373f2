//! Errand's service side: the HTTP API and the web UI (`api/`, `web/`), and the worker runtime.
//!
//! - `attempt.rs`: [`run_one_attempt`], one attempt end to end (environment, sandbox, agent,
//!   diff and report, cleanup) into any [`errand_agent::EventSink`]; `errand exec` and the
//!   workers share it. `setup_log.rs` turns an environment's preparation into events.
//! - `store_sink.rs`: [`StoreSink`], the sink that stores each event before anything else sees
//!   it, and the [`StopSignal`] it raises when the store refuses one.
//! - `delivery.rs`: an attempt delivered as its task's pull request on a forge.
//! - `ranking.rs`: best-of-N, a task's finished attempts ranked by facts, with why.
//! - `remotes.rs`: repositories named by URL, through their mirrors on this machine.
//! - `triggers.rs`: tasks started from a forge's webhooks, and their outcome reported back.
//! - `worker.rs`: [`Worker`], the loop that leases queued attempts from the store, runs them
//!   with heartbeats, stores their artifacts and drains on shutdown; `leftovers.rs` what a
//!   stopped or killed attempt leaves on disk.
//!
//! Invariant (design: "Events are the source of truth"): a worker's attempt records nothing
//! except through the store, and stops as soon as the store says the attempt is not its own.

pub mod api;
mod attempt;
pub mod bench;
pub mod delivery;
mod environments;
mod leftovers;
pub mod ranking;
pub mod remotes;
mod setup_log;
mod store_sink;
pub mod triggers;
pub mod web;
mod worker;

pub use attempt::{
    AttemptEnd, AttemptPlan, AttemptResources, AttemptRun, DEFAULT_SNAPSHOT_CACHE_BYTES, Followup,
    Stop, run_one_attempt,
};
pub use environments::StoreEnvironments;
pub use setup_log::environment_logs;
pub use store_sink::{StopSignal, StoreSink};
pub use worker::{EnvironmentResolver, INTERRUPTED, Worker};

//! The client commands, `errand task …` and `errand apply`: the service's HTTP API from the
//! user's terminal, against `client.server` (`ERRAND_SERVER`, default the local `errand serve`)
//! with `client.token` (`ERRAND_TOKEN`, default the token `errand serve` wrote for the local
//! user).
//!
//! - `http.rs`: requests, and failures as sentences that say what to do.
//! - `sse.rs`: Server-Sent Events frames from bytes.
//! - `events.rs`: an attempt's log, read in pages or followed live with reconnection.
//! - `target.rs`: `TASK[/ATTEMPT]`, and which attempt a command means when none is named.
//! - `tasks.rs`: `errand task create|list|show|logs|diff|cancel|followup|message`.
//! - `apply.rs`: `errand apply`: an attempt's diff onto the local checkout.
//!
//! Exit codes: 0 done; 1 the attempt followed did not succeed, or the diff does not apply;
//! 2 the request failed (the message says why).

mod apply;
mod events;
mod http;
mod pull;
mod sse;
mod target;
mod tasks;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::Config;

pub use apply::run as apply;

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Start a task on a repository (default: the one containing the current directory, at
    /// its current branch) and print its id.
    Create(CreateArgs),
    /// Your tasks, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON (one document per line) for scripts.
        #[arg(long)]
        json: bool,
    },
    /// A task, its attempts and their reports' titles.
    Show {
        /// `task_…`
        task: String,
        /// Print JSON (one document per line) for scripts.
        #[arg(long)]
        json: bool,
    },
    /// An attempt's work log (default: the task's first attempt).
    Logs {
        /// `task_…`, `task_…/INDEX`, `task_…/att_…` or `att_…`.
        target: String,
        /// Keep printing until the attempt finishes; exit 0 if it succeeded, 1 if not.
        #[arg(long, short)]
        follow: bool,
        /// One JSON event per line.
        #[arg(long)]
        json: bool,
    },
    /// Print an attempt's diff (default: the attempt that succeeded).
    Diff {
        target: String,
        /// Print JSON (one document per line) for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Cancel an attempt, or without `/ATTEMPT` every unfinished attempt of the task.
    Cancel {
        target: String,
        /// Print JSON (one document per line) for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Continue a finished attempt (default: the one that succeeded) with a new instruction.
    Followup {
        target: String,
        prompt: String,
        /// Then follow the new attempt like `task logs --follow`.
        #[arg(long, short)]
        follow: bool,
        /// Print JSON (one document per line) for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Check an attempt (default: the one that succeeded) out as a local branch: one commit on
    /// the task's base commit with its diff and its report as the message.
    Pull {
        target: String,
        /// The branch to create (default: `errand/<task id>`).
        #[arg(long)]
        branch: Option<String>,
        /// Move the branch if it exists and points elsewhere.
        #[arg(long)]
        force: bool,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Pick an attempt (`TASK/INDEX`) as the task's result, overriding the ranking: `errand
    /// apply TASK` and `errand task pr TASK` then take it.
    Pick {
        target: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Open the task's pull request with an attempt (default: the one that succeeded), or
    /// update it: the task's repository must be a URL on a forge configured on the server.
    Pr {
        target: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Send a message to a running attempt; the agent reads it at its next turn.
    Message {
        target: String,
        text: String,
        /// Print JSON (one document per line) for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    pub prompt: String,
    /// The repository: a path on the server's machine, or a URL the server mirrors (default:
    /// the git repository containing the current directory, which is the same for a local
    /// server).
    #[arg(long, value_name = "PATH|URL")]
    pub repo: Option<PathBuf>,
    /// Branch, tag or commit to start from (default: the current branch, else HEAD's commit).
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// A stored environment, by name (`errand env list`).
    #[arg(long, value_name = "NAME")]
    pub env: Option<String>,
    /// Only answer a question: change nothing, produce no diff.
    #[arg(long)]
    pub ask: bool,
    /// Attempts to run in parallel, each in its own sandbox (1 to 8).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub attempts: u32,
    /// Then follow the first attempt like `task logs --follow`.
    #[arg(long, short)]
    pub follow: bool,
    /// Print JSON (one document per line) for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ApplyArgs {
    /// `task_…` (its attempt that succeeded), `task_…/INDEX`, `task_…/att_…` or `att_…`.
    pub target: String,
    /// Only check: list the files and hunks that do not apply, change nothing.
    #[arg(long)]
    pub check: bool,
    /// Print JSON (one document per line) for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `errand task …`.
pub async fn task(command: TaskCommand, config: Config) -> anyhow::Result<i32> {
    let api = http::ApiClient::from_config(&config)?;
    tasks::run(&api, command).await
}

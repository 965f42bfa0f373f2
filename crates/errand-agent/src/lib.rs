//! Errand's agent loop: it turns a task into model turns and tool calls against a `Sandbox`, and
//! ends with a report whose citations are checked against the final tree and the recorded logs.
//!
//! Invariant: the agent never touches the host's file system. Everything it knows of the
//! workspace comes through the `Sandbox` trait; it runs in the worker, never inside the sandbox,
//! so model keys never enter the agent's computer.

pub mod bench;
mod compact;
mod conversation;
mod events;
mod inbox;
mod instructions;
mod malformed;
mod model;
mod model_check;
mod output;
mod prompt;
mod recover;
mod repetition;
mod report;
mod run;
mod tools;
mod truncate;
mod window;

pub use conversation::Conversation;
pub use events::{EventSink, MemoryLog};
pub use inbox::{Inbox, NoMessages};
pub use instructions::{InstructionFile, InstructionsChain, assemble_chain};
pub use model::Model;
pub use model_check::{ModelCheck, check_model};
pub use output::OutputRecorder;
pub use prompt::restarted_followup_prompt;
pub use report::{
    CommandRecord, check_citations, display_command, parse_final_message, recorded_checks,
};
pub use run::{
    AgentConfig, AttemptResult, AttemptSpec, DEFAULT_REPEAT_LIMIT, PatchToolMode, run_attempt,
};
pub use truncate::truncate_for_model;
pub use window::SMALL_WINDOW;

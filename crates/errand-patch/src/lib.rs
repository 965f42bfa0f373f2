//! The `*** Begin Patch` format that OpenAI's Codex models emit for their `apply_patch` tool:
//! parsing it, applying it to files under a root, and saying what went wrong in words a model
//! can act on. The agent's `apply_patch` tool and `errand apply-patch` both end up here.
//!
//! Invariant: nothing outside the `root` given to [`apply_patch`] is read or written. Every path
//! of a patch is resolved (symlinks included) and checked before any file is touched, so a
//! patch with one bad path changes nothing.
//!
//! - `parser`: text → [`Patch`] (grammar, leniency, line-numbered errors)
//! - `seek`: finding a chunk's lines in a file with decreasing strictness
//! - `replace`: a file's new text from an Update's chunks (pure)
//! - `paths`: confining paths to the root
//! - `apply`: parse, check every path, then apply hunk by hunk; [`ApplySummary`]
//! - `cli`: the `errand apply-patch` entry ([`run_cli`]), human or one-line JSON output
//! - `error`: [`PatchError`], whose `Display` is the message the model reads

mod apply;
mod cli;
mod error;
mod parser;
mod paths;
mod replace;
mod seek;

pub use apply::{ApplySummary, apply_patch};
pub use cli::{CliArgs, run_cli};
pub use error::PatchError;
pub use parser::{Hunk, Patch, UpdateChunk, parse_patch};

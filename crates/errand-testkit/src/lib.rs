//! Test-only helpers for Errand: the scripted model server, a throwaway PostgreSQL server
//! ([`postgres`]) for the tests that need one, headless Chromium ([`browser`]) for the web
//! UI's tests, git's smart HTTP behind token authentication ([`git_http`]) and a fake GitHub or
//! Gitea ([`forge`]) that checks every request against the forge's published API description.
//!
//! [`ScriptedModel`] speaks the real OpenAI Responses, Chat Completions and Anthropic Messages
//! streaming protocols on loopback, driven by a
//! [`Script`] (TOML, documented in this crate's `README.md`), with fault injection for retry
//! tests and expectations on what the agent sends. The `errand-mock-model` binary serves a script
//! file for end-to-end tests of the `errand` binary.
//!
//! Invariant: never shipped in the `errand` binary; nothing here is a production dependency.

pub mod browser;
mod chat_stream;
mod conversation;
mod expect;
pub mod forge;
pub mod git_http;
mod messages_stream;
pub mod postgres;
pub mod python;
mod responses_stream;
mod script;
mod server;

pub use responses_stream::{SseEvent, split_in_chunks};
pub use script::{
    Arguments, Expect, Fault, FaultKind, Output, Script, ScriptError, ScriptMode, Turn, Usage,
};
pub use server::ScriptedModel;

/// Polls `check` until it holds, for at most two minutes: a bound for tests that wait on real
/// processes, not a timing assertion.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

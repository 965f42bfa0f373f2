//! Model clients: a provider-neutral conversation (`conversation`) and the wire protocols that
//! translate it at the edge.
//!
//! The OpenAI Responses API, OpenAI-compatible Chat Completions and Anthropic's Messages API,
//! streamed (`client`), with retries and idle timeouts.
//!
//! - `conversation`: the items, tools, requests and turns the agent works with.
//! - `config`: endpoint, model, key, retry and timeout policy.
//! - `client`: [`ModelClient::turn`], one streamed call with retries.
//! - `responses`: conversation ⇄ Responses wire JSON.
//! - `chat`: conversation ⇄ Chat Completions wire JSON, and chunk assembly.
//! - `anthropic`: conversation → Messages request JSON (roles, thinking, cache breakpoints).
//! - `anthropic_stream`: Messages streaming events → [`ModelTurn`].
//! - `sse`: the incremental server-sent events parser.
//! - `turn_stream`: streaming events → [`ModelTurn`].
//! - `retry`: which failures are retried and how long to wait.
//! - `error`: [`ModelError`], each variant a sentence a user can act on.
//!
//! Invariant: this crate does not know what tools mean, nor anything of sandboxes or storage.

mod anthropic;
mod anthropic_stream;
mod chat;
mod client;
mod config;
mod conversation;
mod error;
mod responses;
mod retry;
mod sse;
mod turn_stream;

pub use client::{ModelClient, ModelProgress};
pub use config::{ANTHROPIC_DEFAULT_MAX_TOKENS, ModelConfig, Provider, known_context_window};
pub use conversation::{FreeformFormat, Item, ModelRequest, ModelTurn, Role, ToolSpec};
pub use error::ModelError;

//! How to reach the model: endpoint, model name, key, and the retry and timeout policy.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which wire protocol the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Provider {
    /// OpenAI Responses API: `POST {base_url}/responses`.
    #[default]
    #[serde(rename = "openai-responses")]
    Responses,
    /// OpenAI-compatible Chat Completions (vLLM, llama.cpp server, Ollama, LiteLLM):
    /// `POST {base_url}/chat/completions`.
    #[serde(rename = "chat-completions")]
    ChatCompletions,
}

/// Settings for one model endpoint. `errand-cli` fills it from `errand.toml` and `ERRAND_MODEL*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// The API root, e.g. `https://api.openai.com/v1`; the client POSTs `{base_url}/responses`.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` when set (local servers often need none).
    pub api_key: Option<String>,
    /// Retries after the first attempt for transient failures (rate limits, 5xx, dropped streams).
    pub max_retries: u32,
    /// The first backoff delay; it doubles with each retry (with jitter, capped).
    pub retry_base_delay: Duration,
    /// No bytes for this long means the stream is dead (and the turn is retried).
    pub idle_timeout: Duration,
    /// `reasoning.effort` (`minimal`, `low`, `medium`, `high`); `None` leaves the model's default
    /// and sends no `reasoning` object, for endpoints and models without reasoning.
    pub reasoning_effort: Option<String>,
    /// The wire protocol; Chat Completions ignores `reasoning_effort`.
    pub provider: Provider,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_string(),
            // OpenAI's coding-tuned model for the Responses API, trained on the Codex tool shapes
            // (shell argv, freeform apply_patch, update_plan) that Errand's agent offers.
            model: "gpt-5-codex".to_string(),
            api_key: None,
            max_retries: 4,
            retry_base_delay: Duration::from_secs(1),
            // Reasoning models may think for a long while before the first output token, but
            // OpenAI streams keep-alive events meanwhile; two minutes of silence is a dead stream.
            idle_timeout: Duration::from_secs(120),
            reasoning_effort: None,
            provider: Provider::Responses,
        }
    }
}

impl ModelConfig {
    /// The Responses endpoint: `{base_url}/responses`, tolerating a trailing slash.
    pub fn responses_url(&self) -> String {
        format!("{}/responses", self.base_url.trim_end_matches('/'))
    }

    /// The Chat Completions endpoint: `{base_url}/chat/completions`.
    pub fn chat_completions_url(&self) -> String {
        format!("{}/chat/completions", self.base_url.trim_end_matches('/'))
    }

    /// The URL this configuration's provider POSTs to.
    pub fn endpoint_url(&self) -> String {
        match self.provider {
            Provider::Responses => self.responses_url(),
            Provider::ChatCompletions => self.chat_completions_url(),
        }
    }
}

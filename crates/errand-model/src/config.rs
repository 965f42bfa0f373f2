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
    /// Anthropic Messages API: `POST {base_url}/messages` with `x-api-key` and
    /// `anthropic-version` headers.
    #[serde(rename = "anthropic")]
    Anthropic,
}

impl Provider {
    /// The name used in `errand.toml` and `ERRAND_MODEL_PROVIDER`.
    pub const fn name(self) -> &'static str {
        match self {
            Provider::Responses => "openai-responses",
            Provider::ChatCompletions => "chat-completions",
            Provider::Anthropic => "anthropic",
        }
    }

    /// Parses a name as written in `errand.toml` or `ERRAND_MODEL_PROVIDER`.
    pub fn from_name(name: &str) -> Option<Provider> {
        [Provider::Responses, Provider::ChatCompletions, Provider::Anthropic]
            .into_iter()
            .find(|provider| provider.name() == name)
    }

    /// The API root used when none is configured.
    pub const fn default_base_url(self) -> &'static str {
        match self {
            Provider::Responses | Provider::ChatCompletions => "https://api.openai.com/v1",
            Provider::Anthropic => "https://api.anthropic.com/v1",
        }
    }

    /// The model used when none is configured.
    pub const fn default_model(self) -> &'static str {
        match self {
            // OpenAI's coding-tuned model for the Responses API, trained on the Codex tool shapes
            // (shell argv, freeform apply_patch, update_plan) that Errand's agent offers.
            Provider::Responses | Provider::ChatCompletions => "gpt-5-codex",
            // Anthropic's balanced coding model; its alias follows the newest snapshot. It still
            // takes `thinking.budget_tokens`, which Errand's `reasoning_effort` levels map to.
            Provider::Anthropic => "claude-sonnet-4-5",
        }
    }

    /// The environment variable that conventionally holds the provider's key, named in advice.
    pub const fn key_env(self) -> &'static str {
        match self {
            Provider::Responses | Provider::ChatCompletions => "OPENAI_API_KEY",
            Provider::Anthropic => "ANTHROPIC_API_KEY",
        }
    }
}

/// The context window of a known model, in tokens of input, by name prefix (a dated snapshot or
/// a `-mini` variant shares its family's window unless listed before it). `None` for models
/// Errand does not know, such as local ones: the caller picks a default and the user configures
/// the real figure. Sources: the providers' model pages (OpenAI: GPT-5 family 400k in total of
/// which 128k output, so 272k input, the figure Codex compacts against; GPT-4.1 1M; o3/o4 200k;
/// GPT-4o 128k. Anthropic: 200k for Claude 3 and later, 1M only in a beta).
pub fn known_context_window(model: &str) -> Option<u64> {
    const KNOWN: &[(&str, u64)] = &[
        ("gpt-5", 272_000),
        ("codex-", 272_000),
        ("gpt-4.1", 1_047_576),
        ("o3", 200_000),
        ("o4-mini", 200_000),
        ("gpt-4o", 128_000),
        ("claude-", 200_000),
    ];
    // A provider prefix such as `openai/` or `anthropic/` (LiteLLM, OpenRouter) does not change
    // the model.
    let name = model.rsplit('/').next().unwrap_or(model).to_ascii_lowercase();
    KNOWN.iter().find(|(prefix, _)| name.starts_with(prefix)).map(|&(_, window)| window)
}

/// Settings for one model endpoint. `errand-cli` fills it from `errand.toml` and `ERRAND_MODEL*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    /// The API root, e.g. `https://api.openai.com/v1`; the client POSTs `{base_url}/responses`.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` (Anthropic: `x-api-key: <key>`) when set (local
    /// servers often need none).
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
    /// The most tokens one answer may have (thinking included). `None`: the endpoint's own
    /// default, except for Anthropic, whose API requires a value
    /// ([`ANTHROPIC_DEFAULT_MAX_TOKENS`]).
    pub max_output_tokens: Option<u32>,
}

/// `max_tokens` sent to Anthropic when none is configured: what current Claude models can all
/// produce in one answer (Claude Opus 4 and 4.1 stop at 32 000), and room for the largest
/// thinking budget with an answer after it.
pub const ANTHROPIC_DEFAULT_MAX_TOKENS: u32 = 32_000;

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            base_url: Provider::Responses.default_base_url().to_string(),
            model: Provider::Responses.default_model().to_string(),
            api_key: None,
            max_retries: 4,
            retry_base_delay: Duration::from_secs(1),
            // Reasoning models may think for a long while before the first output token, but
            // OpenAI streams keep-alive events meanwhile; two minutes of silence is a dead stream.
            idle_timeout: Duration::from_secs(120),
            reasoning_effort: None,
            provider: Provider::Responses,
            max_output_tokens: None,
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

    /// The Anthropic Messages endpoint: `{base_url}/messages`.
    pub fn messages_url(&self) -> String {
        format!("{}/messages", self.base_url.trim_end_matches('/'))
    }

    /// The URL this configuration's provider POSTs to.
    pub fn endpoint_url(&self) -> String {
        match self.provider {
            Provider::Responses => self.responses_url(),
            Provider::ChatCompletions => self.chat_completions_url(),
            Provider::Anthropic => self.messages_url(),
        }
    }
}

#[cfg(test)]
mod context_window_tests {
    use super::known_context_window;

    #[test]
    fn known_families_have_windows_and_local_models_none() {
        assert_eq!(known_context_window("gpt-5-codex"), Some(272_000));
        assert_eq!(known_context_window("openai/gpt-5.1"), Some(272_000));
        assert_eq!(known_context_window("claude-sonnet-4-5"), Some(200_000));
        assert_eq!(known_context_window("gpt-4o-mini"), Some(128_000));
        assert_eq!(known_context_window("qwen2.5-coder:1.5b"), None);
    }
}

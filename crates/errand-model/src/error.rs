//! What can go wrong talking to a model, each said so that a user knows what to do.

use std::time::Duration;

/// A model turn that could not be completed. `Display` is one sentence a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// HTTP 401/403: the key is missing, wrong, or lacks access. `key_env` is the variable the
    /// provider's key conventionally lives in (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`).
    #[error(
        "the model endpoint `{endpoint}` refused the API key (HTTP {status}: {message}); check \
         {key_env} (or the key variable configured for your endpoint)"
    )]
    Unauthorized { status: u16, endpoint: String, message: String, key_env: String },

    /// HTTP 404: wrong model name or base URL.
    #[error(
        "model `{model}` or endpoint `{endpoint}` not found (HTTP 404: {message}): check \
         ERRAND_MODEL and ERRAND_MODEL_BASE_URL"
    )]
    NotFound { model: String, endpoint: String, message: String },

    /// HTTP 400 (or another 4xx): the endpoint refused the request itself.
    #[error(
        "the model endpoint rejected the request (HTTP {status}: {message}); check that model \
         `{model}` supports tool calls through the API that ERRAND_MODEL_PROVIDER names, at \
         ERRAND_MODEL_BASE_URL"
    )]
    BadRequest { status: u16, model: String, message: String },

    /// The conversation no longer fits the model's context window.
    #[error(
        "the conversation is longer than the context window of model `{model}` ({message}); \
         compact the conversation or use a model with a larger context"
    )]
    ContextLengthExceeded { model: String, message: String },

    /// The account has no credit left (HTTP 429 `insufficient_quota`, Anthropic's "credit
    /// balance is too low"): retrying cannot help.
    #[error(
        "the model endpoint says the account is out of quota ({message}); check the plan and \
         billing of the key in {key_env} (or your endpoint's key)"
    )]
    QuotaExceeded { message: String, key_env: String },

    /// The model ended the turn with a failure that retrying will not fix (`response.failed`
    /// with a client-side code, `response.incomplete`, Anthropic's `refusal`).
    #[error(
        "model `{model}` could not finish the turn ({code}: {message}); rephrase or retry the task"
    )]
    TurnFailed { model: String, code: String, message: String },

    /// The endpoint answered with something that is not the configured streaming protocol.
    #[error(
        "the model endpoint `{endpoint}` sent a response Errand cannot read ({message}); check \
         that ERRAND_MODEL_BASE_URL serves the API that ERRAND_MODEL_PROVIDER names \
         (openai-responses, chat-completions or anthropic)"
    )]
    Protocol { endpoint: String, message: String },

    /// Transient failures kept happening; `last_error` is the last one.
    #[error(
        "the model endpoint failed {attempts} times in a row, last with: {last_error}; check the \
         provider's status and try again later"
    )]
    RetriesExhausted { attempts: u32, last_error: String },

    /// The configuration cannot work (names the setting).
    #[error("invalid model configuration: {0}")]
    Config(String),
}

/// How one attempt failed: either final, or worth another try.
#[derive(Debug)]
pub(crate) enum AttemptError {
    Fatal(ModelError),
    /// `error` says what happened (for `Retrying` progress and `RetriesExhausted`);
    /// `retry_after` is the server's own wish, when it stated one.
    Transient {
        error: String,
        retry_after: Option<Duration>,
    },
}

impl From<ModelError> for AttemptError {
    fn from(error: ModelError) -> Self {
        AttemptError::Fatal(error)
    }
}

/// At most this many characters of a server's error message go into an error.
const MESSAGE_LIMIT: usize = 300;

/// A server-provided message cut to a readable length.
pub(crate) fn truncate(message: &str) -> String {
    let message = message.trim();
    match message.char_indices().nth(MESSAGE_LIMIT) {
        None => message.to_string(),
        Some((cut, _)) => format!("{}…", &message[..cut]),
    }
}

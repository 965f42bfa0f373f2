//! [`ModelClient`]: one streamed call per turn (Responses, Chat Completions or Anthropic
//! Messages, per [`Provider`]), retried through transient failures.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};

use crate::anthropic;
use crate::anthropic_stream::MessagesBuilder;
use crate::chat::{self, ChatBuilder};
use crate::config::{ModelConfig, Provider};
use crate::conversation::{ModelRequest, ModelTurn};
use crate::error::{AttemptError, ModelError};
use crate::responses;
use crate::retry::{self, ErrorBody};
use crate::sse::{SseEvent, SseParser};
use crate::turn_stream::TurnBuilder;

/// What the caller hears while a turn streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelProgress {
    /// Assistant text as it streams (`response.output_text.delta`).
    TextDelta(String),
    /// Reasoning summary text as it streams.
    ReasoningDelta(String),
    /// The attempt failed transiently; the turn restarts after `delay`, so deltas reported so far
    /// are void and will be streamed again.
    Retrying { attempt: u32, delay: Duration, error: String },
}

/// A client for one model endpoint: OpenAI Responses (OpenAI itself or a compatible server),
/// OpenAI-compatible Chat Completions, or Anthropic Messages.
#[derive(Debug, Clone)]
pub struct ModelClient {
    config: ModelConfig,
    endpoint: String,
    http: reqwest::Client,
}

/// Connecting never waits longer than this, however long the idle timeout is.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl ModelClient {
    /// Checks the configuration and sets up the HTTP client (no request is made).
    pub fn new(config: ModelConfig) -> Result<Self, ModelError> {
        let base = config.base_url.trim();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ModelError::Config(format!(
                "base URL `{base}` must start with http:// or https:// (ERRAND_MODEL_BASE_URL)"
            )));
        }
        if config.model.trim().is_empty() {
            return Err(ModelError::Config("the model name is empty; set ERRAND_MODEL".into()));
        }
        if config.idle_timeout.is_zero() {
            return Err(ModelError::Config("the idle timeout must be longer than zero".into()));
        }
        if let Some(key) = &config.api_key
            && reqwest::header::HeaderValue::from_str(&format!("Bearer {key}")).is_err()
        {
            return Err(ModelError::Config(format!(
                "the API key contains characters not allowed in an HTTP header (a stray \
                 newline?); check {}",
                config.provider.key_env()
            )));
        }
        if config.provider == Provider::Anthropic {
            anthropic::check_config(&config)?;
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.idle_timeout.min(MAX_CONNECT_TIMEOUT))
            .build()
            .map_err(|e| ModelError::Config(format!("cannot set up the HTTP client: {e}")))?;
        let endpoint = config.endpoint_url();
        Ok(Self { config, endpoint, http })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Runs one model turn: streams the response, reporting deltas through `progress`, and
    /// retries transient failures (with `ModelProgress::Retrying`) up to `max_retries` times.
    pub async fn turn(
        &self,
        request: &ModelRequest,
        progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<ModelTurn, ModelError> {
        let body = match self.config.provider {
            Provider::Responses => responses::request_body(&self.config, request),
            Provider::ChatCompletions => chat::request_body(&self.config, request),
            Provider::Anthropic => anthropic::request_body(&self.config, request),
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| ModelError::Config(format!("cannot encode the request: {e}")))?;
        let body = Bytes::from(body);
        let mut retries = 0;
        loop {
            match self.attempt(body.clone(), request, progress).await {
                Ok(turn) => return Ok(turn),
                Err(AttemptError::Fatal(error)) => return Err(error),
                Err(AttemptError::Transient { error, retry_after }) => {
                    if retries >= self.config.max_retries {
                        return Err(ModelError::RetriesExhausted {
                            attempts: retries + 1,
                            last_error: error,
                        });
                    }
                    retries += 1;
                    let delay = retry::delay(self.config.retry_base_delay, retries, retry_after);
                    tracing::warn!(endpoint = %self.endpoint, retry = retries, ?delay, %error,
                        "model request failed; retrying");
                    progress(ModelProgress::Retrying { attempt: retries, delay, error });
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One HTTP request and its stream, start to end.
    async fn attempt(
        &self,
        body: Bytes,
        turn_request: &ModelRequest,
        progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<ModelTurn, AttemptError> {
        let idle = self.config.idle_timeout;
        let mut request = self
            .http
            .post(&self.endpoint)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "text/event-stream")
            .body(body);
        match (&self.config.api_key, self.config.provider) {
            // Anthropic: the key in `x-api-key`, and a required `anthropic-version`
            // (docs.anthropic.com/en/api/overview).
            (key, Provider::Anthropic) => {
                request = request.header("anthropic-version", anthropic::API_VERSION);
                if let Some(key) = key {
                    request = request.header("x-api-key", key);
                }
            }
            (Some(key), _) => request = request.bearer_auth(key),
            (None, _) => {}
        }
        let response = match tokio::time::timeout(idle, request.send()).await {
            Err(_) => return Err(transient(format!("no response within {}s", idle.as_secs_f32()))),
            Ok(Err(e)) => {
                return Err(transient(format!("cannot reach the endpoint: {}", chain(&e))));
            }
            Ok(Ok(response)) => response,
        };

        let status = response.status();
        if !status.is_success() {
            let wish = retry::retry_after(response.headers());
            let text = match tokio::time::timeout(idle, response.text()).await {
                Ok(Ok(text)) => text,
                _ => String::new(),
            };
            let body = ErrorBody::parse(&text, status.as_u16());
            return Err(retry::classify_status(
                status.as_u16(),
                body,
                wish,
                &self.config.model,
                &self.endpoint,
                self.config.provider.key_env(),
            ));
        }
        let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if let Some(content_type) = content_type
            && content_type.starts_with("application/json")
        {
            return Err(ModelError::Protocol {
                endpoint: self.endpoint.clone(),
                message: "it answered with JSON instead of an event stream".into(),
            }
            .into());
        }

        let mut stream = response.bytes_stream();
        let mut parser = SseParser::new();
        let (model, endpoint) = (self.config.model.as_str(), self.endpoint.as_str());
        let mut decoder = match self.config.provider {
            Provider::Responses => Decoder::Responses(TurnBuilder::new(model, endpoint)),
            Provider::ChatCompletions => {
                Decoder::Chat(ChatBuilder::new(model, endpoint, turn_request))
            }
            Provider::Anthropic => {
                Decoder::Messages(MessagesBuilder::new(model, endpoint, turn_request))
            }
        };
        let end = decoder.end_marker();
        loop {
            let chunk = match tokio::time::timeout(idle, stream.next()).await {
                Err(_) => {
                    return Err(transient(format!(
                        "the stream stalled: no data for {}s before {end}",
                        idle.as_secs_f32()
                    )));
                }
                Ok(None) => {
                    if let Decoder::Chat(builder) = &mut decoder
                        && let Some(turn) = builder.end_of_stream()
                    {
                        return turn;
                    }
                    return Err(transient(format!("the stream ended before {end}")));
                }
                Ok(Some(Err(e))) => {
                    return Err(transient(format!("the stream broke before {end}: {}", chain(&e))));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            for event in parser.feed(&chunk) {
                if let Some(turn) = decoder.event(&event, progress)? {
                    return Ok(turn);
                }
            }
        }
    }
}

/// Streaming events → a turn, per wire protocol.
enum Decoder<'a> {
    Responses(TurnBuilder<'a>),
    Chat(ChatBuilder<'a>),
    Messages(MessagesBuilder<'a>),
}

impl Decoder<'_> {
    /// What marks a complete stream, for error messages.
    fn end_marker(&self) -> &'static str {
        match self {
            Decoder::Responses(_) => "response.completed",
            Decoder::Chat(_) => "[DONE]",
            Decoder::Messages(_) => "message_stop",
        }
    }

    fn event(
        &mut self,
        event: &SseEvent,
        progress: &mut (dyn FnMut(ModelProgress) + Send),
    ) -> Result<Option<ModelTurn>, AttemptError> {
        match self {
            Decoder::Responses(builder) => builder.event(event, progress),
            Decoder::Chat(builder) => builder.event(event, progress),
            Decoder::Messages(builder) => builder.event(event, progress),
        }
    }
}

fn transient(error: impl Into<String>) -> AttemptError {
    AttemptError::Transient { error: error.into(), retry_after: None }
}

/// An error with its causes, since reqwest's own message ("error sending request") hides them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

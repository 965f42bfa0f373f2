//! Which failures are worth another try, and how long to wait before it.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::error::{AttemptError, ModelError, truncate};

/// Exponential backoff never waits longer than this between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A server's `Retry-After` is honoured up to this long; beyond it we would rather fail visibly.
const MAX_SERVER_DELAY: Duration = Duration::from_secs(120);

/// The wait before retry number `retry` (1-based): the server's wish when it stated one (capped),
/// else `base * 2^(retry-1)` capped at [`MAX_BACKOFF`], with ±25 % jitter so that many workers
/// hit by the same outage do not retry in lockstep.
pub fn delay(base: Duration, retry: u32, server_wish: Option<Duration>) -> Duration {
    if let Some(wish) = server_wish {
        return wish.min(MAX_SERVER_DELAY);
    }
    let exponential = base.saturating_mul(1u32 << retry.saturating_sub(1).min(20)).min(MAX_BACKOFF);
    let jitter = rand::random_range(0.75..1.25);
    exponential.mul_f64(jitter).min(MAX_BACKOFF)
}

/// `retry-after-ms` (OpenAI, Azure) or `Retry-After` in seconds; HTTP dates are not used by
/// model providers and are ignored.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        let value: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
        (value.is_finite() && value >= 0.0).then_some(value)
    };
    if let Some(ms) = number("retry-after-ms") {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    number("retry-after").map(Duration::from_secs_f64)
}

/// The parts of an OpenAI-style error body `{"error": {"message", "code", "type"}}`.
pub struct ErrorBody {
    pub message: String,
    pub code: String,
}

impl ErrorBody {
    /// Reads an error body; anything else becomes the (truncated) text itself.
    pub fn parse(text: &str, status: u16) -> Self {
        let json: Option<Value> = serde_json::from_str(text).ok();
        let error = json.as_ref().and_then(|j| j.get("error"));
        let field = |name: &str| {
            error.and_then(|e| e.get(name)).and_then(Value::as_str).unwrap_or_default().to_string()
        };
        let mut message = match error {
            Some(Value::String(message)) => message.clone(),
            _ => field("message"),
        };
        if message.is_empty() {
            message = text.to_string();
        }
        if message.trim().is_empty() {
            message = format!("no error message; HTTP {status}");
        }
        let code = match field("code") {
            code if code.is_empty() => field("type"),
            code => code,
        };
        ErrorBody { message: truncate(&message), code }
    }
}

/// An HTTP error status as a final or a transient failure. `key_env` is the provider's usual
/// key variable, for advice.
pub fn classify_status(
    status: u16,
    body: ErrorBody,
    server_wish: Option<Duration>,
    model: &str,
    endpoint: &str,
    key_env: &str,
) -> AttemptError {
    let ErrorBody { message, code } = body;
    if is_context_length(&code, &message) {
        return ModelError::ContextLengthExceeded { model: model.to_string(), message }.into();
    }
    if is_out_of_credit(&message) {
        return ModelError::QuotaExceeded { message, key_env: key_env.to_string() }.into();
    }
    match status {
        401 | 403 => ModelError::Unauthorized {
            status,
            endpoint: endpoint.to_string(),
            message,
            key_env: key_env.to_string(),
        }
        .into(),
        404 => ModelError::NotFound {
            model: model.to_string(),
            endpoint: endpoint.to_string(),
            message,
        }
        .into(),
        429 if code == "insufficient_quota" => {
            ModelError::QuotaExceeded { message, key_env: key_env.to_string() }.into()
        }
        // 408: the server gave up waiting; 429: rate limited; 529: Anthropic-style "overloaded";
        // other 5xx: the provider's trouble, usually brief. 501 means the path is not supported.
        408 | 429 | 529 | 500..=599 if status != 501 => AttemptError::Transient {
            error: format!("HTTP {status}: {message}"),
            retry_after: server_wish,
        },
        _ => ModelError::BadRequest { status, model: model.to_string(), message }.into(),
    }
}

/// A `response.failed` (or stream `error` event) as a final or a transient failure. `code` is
/// the error's `code`, or its `type` where the provider has no code (Anthropic).
pub fn classify_failed(code: &str, message: &str, model: &str, key_env: &str) -> AttemptError {
    let message = truncate(message);
    if is_context_length(code, &message) {
        return ModelError::ContextLengthExceeded { model: model.to_string(), message }.into();
    }
    match code {
        "insufficient_quota" => {
            ModelError::QuotaExceeded { message, key_env: key_env.to_string() }.into()
        }
        // Server-side codes: Responses API error codes; `overloaded` from compatible servers;
        // Anthropic error types (docs.anthropic.com/en/api/errors: `api_error` is its 500,
        // `overloaded_error` its 529, both sent mid-stream too; `rate_limit_error` its 429).
        ""
        | "server_error"
        | "rate_limit_exceeded"
        | "overloaded"
        | "server_is_overloaded"
        | "slow_down"
        | "internal_error"
        | "timeout"
        | "api_error"
        | "overloaded_error"
        | "rate_limit_error" => AttemptError::Transient {
            retry_after: try_again_in(&message),
            error: format!(
                "response.failed ({}): {message}",
                if code.is_empty() { "no code" } else { code }
            ),
        },
        _ => ModelError::TurnFailed { model: model.to_string(), code: code.to_string(), message }
            .into(),
    }
}

fn is_context_length(code: &str, message: &str) -> bool {
    code == "context_length_exceeded"
        || message.contains("context_length_exceeded")
        // Anthropic answers 400 `invalid_request_error` with "prompt is too long: 210000 tokens >
        // 200000 maximum", or, when the input fits but `max_tokens` does not, "input length and
        // `max_tokens` exceed context limit: 178959 + 64000 > 200000, …" (as reported in
        // docker/docker-agent#569 and continuedev/continue#6080).
        || message.starts_with("prompt is too long")
        || message.contains("exceed context limit")
        // Local servers: llama.cpp's server answers 400 `exceed_context_size_error`, "the request
        // exceeds the available context size, try increasing it"; vLLM (and older OpenAI
        // models) 400 "This model's maximum context length is 4096 tokens. However, you
        // requested …".
        || code == "exceed_context_size_error"
        || message.contains("exceeds the available context size")
        || message.contains("maximum context length is")
}

/// Anthropic refuses requests of an account without credit with HTTP 400 "Your credit balance
/// is too low to access the Anthropic API…": no retry or other request can help.
fn is_out_of_credit(message: &str) -> bool {
    message.contains("credit balance is too low")
}

/// OpenAI rate-limit messages say "Please try again in 1.5s" (or "in 120ms").
fn try_again_in(message: &str) -> Option<Duration> {
    // ASCII lowercasing keeps byte offsets, so `rest` can be cut from the lowered text.
    let lowered = message.to_ascii_lowercase();
    let rest = &lowered[lowered.find("try again in ")? + "try again in ".len()..];
    let rest = rest.trim_start();
    let number_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
    let value: f64 = rest[..number_end].parse().ok()?;
    let unit = rest[number_end..].trim_start();
    let seconds = if unit.starts_with("ms") {
        value / 1000.0
    } else if unit.starts_with('s') {
        value
    } else {
        return None;
    };
    Some(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let base = Duration::from_secs(1);
        for retry in 1..=4 {
            let nominal = base * (1 << (retry - 1));
            let d = delay(base, retry, None);
            assert!(d >= nominal.mul_f64(0.75) && d <= nominal.mul_f64(1.25), "{retry}: {d:?}");
        }
        assert!(delay(base, 30, None) <= MAX_BACKOFF);
        assert_eq!(delay(base, 1, Some(Duration::ZERO)), Duration::ZERO);
        assert_eq!(delay(base, 1, Some(Duration::from_secs(9999))), MAX_SERVER_DELAY);
    }

    #[test]
    fn retry_after_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        let mut date = HeaderMap::new();
        date.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&date), None);
    }

    #[test]
    fn try_again_in_messages() {
        let cases = [
            ("Rate limit reached. Please try again in 1.5s. Visit …", Some(1500)),
            ("Please try again in 120ms.", Some(120)),
            ("Try again in 2 seconds", Some(2000)),
            ("try again in a moment", None),
            ("no hint", None),
        ];
        for (message, ms) in cases {
            assert_eq!(try_again_in(message), ms.map(Duration::from_millis), "{message}");
        }
    }

    #[test]
    fn status_classes() {
        let classify = |status, body: &str| {
            let body = ErrorBody::parse(body, status);
            classify_status(status, body, None, "m", "http://x/responses", "OPENAI_API_KEY")
        };
        let transient = |e: &AttemptError| matches!(e, AttemptError::Transient { .. });
        for status in [408, 429, 500, 502, 503, 504, 529] {
            assert!(transient(&classify(status, "")), "{status}");
        }
        for status in [400, 401, 403, 404, 422, 501] {
            assert!(!transient(&classify(status, "")), "{status}");
        }
        let quota =
            classify(429, r#"{"error":{"message":"no credit","code":"insufficient_quota"}}"#);
        assert!(matches!(quota, AttemptError::Fatal(ModelError::QuotaExceeded { .. })));
        let long =
            classify(400, r#"{"error":{"message":"too long","code":"context_length_exceeded"}}"#);
        assert!(matches!(long, AttemptError::Fatal(ModelError::ContextLengthExceeded { .. })));
        let AttemptError::Transient { error, .. } = classify(502, "<html>bad gateway</html>")
        else {
            panic!()
        };
        assert_eq!(error, "HTTP 502: <html>bad gateway</html>");
    }

    /// What llama.cpp's and vLLM's servers answer to a conversation longer than their context.
    #[test]
    fn local_servers_context_errors_are_recognised() {
        let classify = |status, body: &str| {
            let body = ErrorBody::parse(body, status);
            classify_status(status, body, None, "m", "http://x/chat/completions", "KEY")
        };
        let llama = r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":9000,"n_ctx":8192}}"#;
        let vllm = r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}"#;
        for body in [llama, vllm] {
            assert!(
                matches!(
                    classify(400, body),
                    AttemptError::Fatal(ModelError::ContextLengthExceeded { .. })
                ),
                "{body}"
            );
        }
        assert!(matches!(
            classify(
                400,
                r#"{"error":{"message":"bad tool schema","type":"invalid_request_error"}}"#
            ),
            AttemptError::Fatal(ModelError::BadRequest { .. })
        ));
    }

    /// Anthropic's error bodies: `{"type":"error","error":{"type":…,"message":…}}`.
    #[test]
    fn anthropic_error_bodies() {
        let classify = |status, kind: &str, message: &str| {
            let body = serde_json::json!({"type": "error",
                "error": {"type": kind, "message": message}, "request_id": "req_1"});
            let body = ErrorBody::parse(&body.to_string(), status);
            classify_status(status, body, None, "m", "http://x/messages", "ANTHROPIC_API_KEY")
        };
        let long = classify(
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000 maximum",
        );
        assert!(matches!(long, AttemptError::Fatal(ModelError::ContextLengthExceeded { .. })));
        let both = classify(
            400,
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 178959 + 64000 > 200000, \
             decrease input length or `max_tokens` and try again",
        );
        assert!(matches!(both, AttemptError::Fatal(ModelError::ContextLengthExceeded { .. })));
        let other = classify(400, "invalid_request_error", "messages: roles must alternate");
        assert!(matches!(other, AttemptError::Fatal(ModelError::BadRequest { .. })));
        let AttemptError::Fatal(key) = classify(401, "authentication_error", "invalid x-api-key")
        else {
            panic!()
        };
        assert!(key.to_string().contains("check ANTHROPIC_API_KEY"), "{key}");
        let credit = classify(
            400,
            "invalid_request_error",
            "Your credit balance is too low to access the Anthropic API.",
        );
        let AttemptError::Fatal(credit @ ModelError::QuotaExceeded { .. }) = credit else {
            panic!()
        };
        assert!(credit.to_string().contains("ANTHROPIC_API_KEY"), "{credit}");
        let AttemptError::Transient { error, .. } = classify(529, "overloaded_error", "Overloaded")
        else {
            panic!()
        };
        assert_eq!(error, "HTTP 529: Overloaded");
    }

    #[test]
    fn failed_codes() {
        let classify = |code, message| classify_failed(code, message, "m", "KEY");
        let transient = |e: &AttemptError| matches!(e, AttemptError::Transient { .. });
        for code in ["server_error", "overloaded_error", "api_error", "rate_limit_error"] {
            assert!(transient(&classify(code, "x")), "{code}");
        }
        for code in ["invalid_prompt", "invalid_request_error", "permission_error"] {
            let error = classify(code, "x");
            assert!(matches!(error, AttemptError::Fatal(ModelError::TurnFailed { .. })), "{code}");
        }
        assert!(matches!(
            classify("context_length_exceeded", "x"),
            AttemptError::Fatal(ModelError::ContextLengthExceeded { .. })
        ));
        assert!(matches!(
            classify("invalid_request_error", "prompt is too long: 3 tokens > 2 maximum"),
            AttemptError::Fatal(ModelError::ContextLengthExceeded { .. })
        ));
    }
}

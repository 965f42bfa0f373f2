//! One forge REST call: the URL under the configured API base, the forge's headers, a bounded
//! read of the answer, and the mapping of every failure to a [`ForgeError`].
//!
//! Invariants: the token travels only in the `Authorization` header (marked sensitive, never
//! in a URL); redirects are not followed, so it never reaches another address; an answer larger
//! than [`MAX_RESPONSE_BYTES`] or slower than [`REQUEST_TIMEOUT`] is an error, not a hang; any
//! text the forge sends back is scrubbed of the token before it enters an error.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::Action;
use super::{ForgeConfig, ForgeError, ForgeKind, RepoRef};

/// The largest answer read from a forge. A page of 100 GitHub pull requests with their nested
/// repositories is about 1.5 MiB; anything far past that is not an answer to our questions.
pub(crate) const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Error answers are only mined for a message.
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// Whole request, connect to last body byte.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Forge messages quoted in errors are cut here.
const MAX_MESSAGE_CHARS: usize = 500;

pub(crate) struct Api {
    kind: ForgeKind,
    base: Url,
    /// The API base as configured, without a trailing slash, for messages.
    base_text: String,
    http: reqwest::Client,
    /// Kept only to scrub it from what a forge echoes back.
    token: String,
}

impl Api {
    pub(crate) fn new(config: ForgeConfig) -> Result<Api, ForgeError> {
        let invalid = |problem: String| ForgeError::InvalidConfig { problem };
        let base_text = config.api_base.trim().trim_end_matches('/').to_string();
        let base = Url::parse(&base_text).map_err(|e| {
            invalid(format!(
                "the API address `{base_text}` is not a URL ({e}); use e.g. https://api.github.com or https://HOST/api/v1"
            ))
        })?;
        if !matches!(base.scheme(), "https" | "http") {
            return Err(invalid(format!(
                "the API address `{base_text}` must start with https:// (or http:// on a trusted network)"
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            // Do not echo it: the part before `@` may be a secret.
            return Err(invalid(
                "the API address carries credentials; put the token in the token setting, not the URL".into(),
            ));
        }
        if base.query().is_some() || base.fragment().is_some() || base.cannot_be_a_base() {
            return Err(invalid(format!(
                "the API address `{base_text}` may not have a query or fragment"
            )));
        }
        let token = config.token.trim().to_string();
        if token.is_empty() {
            return Err(invalid(format!("no token is configured for {base_text}")));
        }
        let scheme = match config.kind {
            ForgeKind::GitHub => "Bearer",
            ForgeKind::Gitea => "token",
        };
        let mut auth = HeaderValue::from_str(&format!("{scheme} {token}")).map_err(|_| {
            invalid(format!(
                "the token for {base_text} contains a character not allowed in an HTTP header (a line break or control character?); copy it again"
            ))
        })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        match config.kind {
            // GitHub REST: "Getting started" recommends this media type and pinning the version.
            ForgeKind::GitHub => {
                headers.insert(ACCEPT, HeaderValue::from_static("application/vnd.github+json"));
                headers.insert("x-github-api-version", HeaderValue::from_static("2022-11-28"));
            }
            ForgeKind::Gitea => {
                headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            }
        }
        let http = reqwest::Client::builder()
            // GitHub refuses requests without a User-Agent.
            .user_agent("errand")
            .default_headers(headers)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("cannot set up an HTTP client: {e}")))?;
        Ok(Api { kind: config.kind, base, base_text, http, token })
    }

    pub(crate) fn kind(&self) -> ForgeKind {
        self.kind
    }

    /// `{api base}/repos/{owner}/{repo}/{rest…}`, each segment percent-encoded.
    pub(crate) fn repo_url(&self, repo: &RepoRef, rest: &[&str]) -> Url {
        let mut url = self.base.clone();
        // `cannot_be_a_base` was refused in `new`, so the segments are there to extend.
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty();
            segments.extend(["repos", repo.owner.as_str(), repo.name.as_str()]);
            segments.extend(rest);
        }
        url
    }

    /// Sends one request and decodes a successful answer as `T`.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        action: Action,
        repo: &RepoRef,
        method: Method,
        url: Url,
        body: Option<&impl Serialize>,
    ) -> Result<T, ForgeError> {
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.transport_error(action, repo, &e))?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let rate_limited =
            response.headers().get("x-ratelimit-remaining").is_some_and(|v| v.as_bytes() == b"0");
        let limit = if status.is_success() { MAX_RESPONSE_BYTES } else { MAX_ERROR_BYTES };
        let bytes = self.read_bounded(response, limit, action, repo, status.is_success()).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                self.unexpected(
                    action,
                    repo,
                    format!("HTTP {status} with a body that is not the expected JSON ({e})"),
                )
            });
        }
        Err(self.status_error(action, repo, status, &bytes, location, rate_limited))
    }

    /// Reads at most `limit` bytes of the body; past it, a success is an error and an error
    /// body is cut (its message is all we want).
    async fn read_bounded(
        &self,
        mut response: reqwest::Response,
        limit: usize,
        action: Action,
        repo: &RepoRef,
        must_be_whole: bool,
    ) -> Result<Vec<u8>, ForgeError> {
        let too_large =
            || self.unexpected(action, repo, format!("an answer larger than {} MiB", limit >> 20));
        if must_be_whole && response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        loop {
            let chunk =
                response.chunk().await.map_err(|e| self.transport_error(action, repo, &e))?;
            let Some(chunk) = chunk else { return Ok(bytes) };
            if bytes.len() + chunk.len() > limit {
                if must_be_whole {
                    return Err(too_large());
                }
                bytes.extend_from_slice(&chunk[..limit - bytes.len()]);
                return Ok(bytes);
            }
            bytes.extend_from_slice(&chunk);
        }
    }

    fn status_error(
        &self,
        action: Action,
        repo: &RepoRef,
        status: StatusCode,
        body: &[u8],
        location: Option<String>,
        rate_limited: bool,
    ) -> ForgeError {
        let forge = self.kind;
        let api_base = self.base_text.clone();
        let what = action.describe(repo);
        let message = self.scrub(&forge_message(body));
        let quoted = |message: &str| {
            if message.is_empty() { String::new() } else { format!(": {message}") }
        };
        match status.as_u16() {
            401 => ForgeError::TokenRefused { forge, api_base, action: what },
            429 => ForgeError::RateLimited { forge, api_base, action: what, status: 429 },
            // GitHub answers an exhausted rate limit with 403 and x-ratelimit-remaining: 0.
            403 if rate_limited || message.to_ascii_lowercase().contains("rate limit") => {
                ForgeError::RateLimited { forge, api_base, action: what, status: 403 }
            }
            403 => ForgeError::TokenLacksScope {
                forge,
                api_base,
                action: what,
                scope: action.scope(forge).to_string(),
                message: quoted(&message),
            },
            404 => ForgeError::NotFound { what: action.missing(repo), api_base },
            409 | 412 | 422 | 423 => ForgeError::Rejected {
                forge,
                action: what,
                status: status.as_u16(),
                message: if message.is_empty() {
                    status.canonical_reason().unwrap_or("no reason given").to_string()
                } else {
                    message
                },
            },
            300..=399 => ForgeError::Moved {
                forge,
                api_base,
                action: what,
                status: status.as_u16(),
                location: location.map(|l| format!(" to {}", self.scrub(&l))).unwrap_or_default(),
            },
            _ => ForgeError::ServerError {
                forge,
                api_base,
                action: what,
                status: status.as_u16(),
                message: quoted(&message),
            },
        }
    }

    fn transport_error(
        &self,
        action: Action,
        repo: &RepoRef,
        error: &reqwest::Error,
    ) -> ForgeError {
        let api_base = self.base_text.clone();
        let action = action.describe(repo);
        if error.is_timeout() {
            return ForgeError::TimedOut { api_base, action, seconds: REQUEST_TIMEOUT.as_secs() };
        }
        // The innermost cause says the most ("connection refused", "dns error: …"); reqwest's
        // own text repeats the URL, which the message already names.
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        ForgeError::Unreachable { api_base, action, reason: self.scrub(&reason) }
    }

    pub(crate) fn unexpected(&self, action: Action, repo: &RepoRef, problem: String) -> ForgeError {
        ForgeError::UnexpectedResponse {
            forge: self.kind,
            api_base: self.base_text.clone(),
            action: action.describe(repo),
            problem: self.scrub(&problem),
        }
    }

    /// A forge might echo the request back; the token must not ride along into an error.
    fn scrub(&self, text: &str) -> String {
        text.replace(&self.token, "<token>")
    }
}

/// The reason a forge gave. GitHub: `{"message": "Validation Failed", "errors": [{"message":
/// "A pull request already exists for o:b."}]}` (schema `validation-error`); Gitea: `{"message":
/// …, "url": …}` (its swagger declares these as headers, but the server sends them as a JSON
/// body). The detailed messages come first: "Validation Failed" alone helps nobody.
fn forge_message(body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body);
        return cut(text.trim());
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(errors) = value.get("errors").and_then(|e| e.as_array()) {
        for error in errors {
            match error {
                serde_json::Value::String(s) => parts.push(s.clone()),
                serde_json::Value::Object(fields) => {
                    if let Some(message) = fields.get("message").and_then(|m| m.as_str()) {
                        parts.push(message.to_string());
                    } else if let Some(code) = fields.get("code").and_then(|c| c.as_str()) {
                        let field = fields.get("field").and_then(|f| f.as_str()).unwrap_or("?");
                        parts.push(format!("{field}: {code}"));
                    }
                }
                _ => {}
            }
        }
    }
    if parts.is_empty()
        && let Some(message) = value.get("message").and_then(|m| m.as_str())
    {
        parts.push(message.to_string());
    }
    cut(&parts.join("; "))
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_MESSAGE_CHARS).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::forge_message;

    #[test]
    fn the_detailed_message_wins_over_the_summary() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for o:b."}]}"#,
                "A pull request already exists for o:b.",
            ),
            (
                r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"head","code":"invalid"}]}"#,
                "head: invalid",
            ),
            (
                r#"{"message":"pull request already exists for these targets","url":"u"}"#,
                "pull request already exists for these targets",
            ),
            ("plain text", "plain text"),
            ("", ""),
        ];
        for (body, want) in cases {
            assert_eq!(forge_message(body.as_bytes()), *want, "{body}");
        }
    }
}

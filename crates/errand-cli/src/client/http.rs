//! The API over HTTP: a base URL and a bearer token, JSON in and out, and every failure turned
//! into a sentence that says what to do (the server's own `error.message` when it sent one).

use std::fmt;
use std::time::Duration;

use errand_protocol::api::ApiError;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::Config;

/// A request that did not get the answer it wanted.
#[derive(Debug)]
pub enum RequestError {
    /// No connection: nothing listens at the URL, or the name does not resolve.
    Unreachable { url: String, detail: String },
    /// The server answered with an error status.
    Api { status: StatusCode, message: String, retry_after: Option<String> },
    /// The connection broke, timed out, or the answer was not what the API sends.
    Transport { url: String, detail: String },
}

impl RequestError {
    /// Worth trying again later: the server was away, busy or broke the connection.
    pub fn is_transient(&self) -> bool {
        match self {
            RequestError::Unreachable { .. } | RequestError::Transport { .. } => true,
            RequestError::Api { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
            }
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Unreachable { url, detail } => write!(
                f,
                "cannot reach the Errand server at {url} ({detail}): is `errand serve` running? (ERRAND_SERVER)"
            ),
            RequestError::Api { status, message, .. } if *status == StatusCode::UNAUTHORIZED => {
                write!(
                    f,
                    "{message}. Set ERRAND_TOKEN (or [client] token in errand.toml) to a valid token; \
                     `errand user token NAME` on the server's machine prints a new one"
                )
            }
            RequestError::Api { message, retry_after: Some(after), .. } => {
                write!(f, "{message} (retry after {after} s)")
            }
            RequestError::Api { message, .. } => f.write_str(message),
            RequestError::Transport { url, detail } => {
                write!(f, "the request to {url} failed: {detail}")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// The server the client commands talk to.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// The server and token from the configuration (see [`token`]).
    pub fn from_config(config: &Config) -> anyhow::Result<ApiClient> {
        ApiClient::new(config.server_url(), token(config)?)
    }

    pub fn new(base: String, token: String) -> anyhow::Result<ApiClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("errand/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(ApiClient { base: base.trim_end_matches('/').to_string(), token, http })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (which starts with `/api/`), authenticated.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RequestError> {
        let request = self.request(Method::GET, path).timeout(REQUEST_TIMEOUT);
        json(self.send(request).await?).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, RequestError> {
        let request = self.request(Method::POST, path).timeout(REQUEST_TIMEOUT).json(body);
        json(self.send(request).await?).await
    }

    /// A text body (a diff).
    pub async fn get_text(&self, path: &str) -> Result<String, RequestError> {
        let request = self.request(Method::GET, path).timeout(REQUEST_TIMEOUT);
        let response = self.send(request).await?;
        let url = response.url().to_string();
        response.text().await.map_err(|e| transport(&url, &e))
    }

    /// Sends a request; an error status becomes [`RequestError::Api`] with the server's words.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, RequestError> {
        let response = request.send().await.map_err(|e| {
            let url = e.url().map_or_else(|| self.base.clone(), |u| u.to_string());
            if e.is_connect() {
                RequestError::Unreachable { url: self.base.clone(), detail: root_cause(&e) }
            } else {
                transport(&url, &e)
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let url = response.url().to_string();
        let body = response.text().await.unwrap_or_default();
        let message = match serde_json::from_str::<ApiError>(&body) {
            Ok(error) => error.error.message,
            // Not the API (a proxy's page, another service on the port): say what came back.
            Err(_) => {
                let body: String = body.trim().chars().take(200).collect();
                format!("{url} answered {status}: {body}")
            }
        };
        Err(RequestError::Api { status, message, retry_after })
    }
}

/// Ordinary requests; the event stream has none (it lives as long as the attempt).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn json<T: DeserializeOwned>(response: Response) -> Result<T, RequestError> {
    let url = response.url().to_string();
    let bytes = response.bytes().await.map_err(|e| transport(&url, &e))?;
    serde_json::from_slice(&bytes).map_err(|e| RequestError::Transport {
        url,
        detail: format!("the answer is not what this version of errand expects: {e}"),
    })
}

fn transport(url: &str, error: &reqwest::Error) -> RequestError {
    RequestError::Transport { url: url.to_string(), detail: causes(error) }
}

/// reqwest's message and its causes ("error sending request: connection refused").
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The innermost cause alone ("Connection refused (os error 111)"): the layers above it only
/// repeat that a request failed.
fn root_cause(error: &dyn std::error::Error) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// The API token: `client.token` (`ERRAND_TOKEN`), else the one `errand serve` wrote for the
/// local user in the data directory.
pub fn token(config: &Config) -> anyhow::Result<String> {
    if let Some(token) = &config.client.token {
        return Ok(token.clone());
    }
    let path = config.local_token_path();
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
        _ => anyhow::bail!(
            "no API token: set ERRAND_TOKEN (or [client] token in errand.toml); `errand user token \
             NAME` on the server's machine prints one, and a local `errand serve` writes its \
             user's to {}",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_what_to_do() {
        let api = |status: u16, retry_after: Option<&str>| RequestError::Api {
            status: StatusCode::from_u16(status).unwrap(),
            message: "the message".into(),
            retry_after: retry_after.map(String::from),
        };
        assert_eq!(api(404, None).to_string(), "the message");
        assert!(!api(404, None).is_transient());
        let limited = api(429, Some("30"));
        assert_eq!(limited.to_string(), "the message (retry after 30 s)");
        assert!(limited.is_transient());
        let unauthorized = api(401, None).to_string();
        assert!(
            unauthorized.contains("ERRAND_TOKEN") && unauthorized.contains("errand user token"),
            "{unauthorized}"
        );
        assert!(api(503, None).is_transient());
    }

    #[test]
    fn the_token_comes_from_the_config_else_the_local_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.sandbox.data_dir = Some(dir.path().to_path_buf());
        let err = token(&config).unwrap_err().to_string();
        assert!(err.contains("ERRAND_TOKEN") && err.contains("token"), "{err}");
        std::fs::write(dir.path().join("token"), "secret-from-file\n").unwrap();
        assert_eq!(token(&config).unwrap(), "secret-from-file");
        config.client.token = Some("explicit".into());
        assert_eq!(token(&config).unwrap(), "explicit");
    }
}

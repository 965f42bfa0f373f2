//! [`GitHttpServer`]: git's smart HTTP protocol on loopback, for tests of fetching and pushing
//! with a token. Every request goes to the real `git http-backend` (run as a CGI program, as a
//! web server would), behind HTTP Basic authentication the way forges take tokens: without the
//! right `Authorization` header the answer is `401` with `WWW-Authenticate: Basic`.
//!
//! Repositories are the bare repositories under the project root given to
//! [`GitHttpServer::start`]; `url("r.git")` is how a client names `<root>/r.git`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

/// The largest request body accepted (a push of a test repository is far smaller).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A running git smart-HTTP server on `127.0.0.1`. It stops accepting connections when dropped.
pub struct GitHttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHttpRequest {
    pub method: String,
    /// Path and query, e.g. `/r.git/info/refs?service=git-upload-pack`.
    pub target: String,
    /// Whether it carried the right credentials (and so reached `git http-backend`).
    pub authorized: bool,
}

struct Shared {
    project_root: PathBuf,
    user: String,
    /// The `Authorization` header value that lets a request in.
    expected: String,
    requests: Mutex<Vec<GitHttpRequest>>,
}

impl GitHttpServer {
    /// Serves the bare repositories under `project_root` to requests authenticated as `user`
    /// with `token` (HTTP Basic).
    pub async fn start(project_root: &Path, user: &str, token: &str) -> io::Result<GitHttpServer> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            project_root: project_root.to_path_buf(),
            user: user.to_string(),
            expected: format!("Basic {}", base64(format!("{user}:{token}").as_bytes())),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(serve).with_state(shared.clone());
        let (shutdown, mut stop) = watch::channel(false);
        // Owned through `shutdown`: dropping the server flips it, the serve loop drains and ends.
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|stop| *stop).await;
            };
            let _ = axum::serve(listener, app).with_graceful_shutdown(stopped).await;
        });
        Ok(GitHttpServer { addr, shared, shutdown })
    }

    /// The URL of the repository at `relative` under the project root:
    /// `http://127.0.0.1:PORT/<relative>`.
    pub fn url(&self, relative: &str) -> String {
        format!("http://{}/{}", self.addr, relative.trim_start_matches('/'))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<GitHttpRequest> {
        self.shared.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

async fn serve(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let target = parts.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/").to_string();
    let authorized = parts
        .headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == shared.expected.as_bytes());
    shared.requests.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(GitHttpRequest {
        method: parts.method.to_string(),
        target,
        authorized,
    });
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"errand-test\"")],
            "authentication required\n",
        )
            .into_response();
    }
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(error) => return (StatusCode::BAD_REQUEST, error.to_string()).into_response(),
    };
    match run_backend(&shared, &parts.method, &parts.uri, &parts.headers, body.to_vec()).await {
        Ok(response) => response,
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("git http-backend: {error}\n"))
            .into_response(),
    }
}

/// Runs `git http-backend` for one request (CGI/1.1, RFC 3875: the request in environment
/// variables and stdin, the response as header lines, a blank line and the body on stdout).
async fn run_backend(
    shared: &Shared,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> io::Result<Response> {
    let header = |name: header::HeaderName| {
        headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
    };
    let mut command = tokio::process::Command::new("git");
    command.arg("http-backend").env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    command
        .env("HOME", "/nonexistent")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &shared.project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", method.as_str())
        .env("PATH_INFO", uri.path())
        .env("QUERY_STRING", uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header(header::CONTENT_ENCODING))
        .env("REMOTE_ADDR", "127.0.0.1")
        // An authenticated user: http-backend then also allows pushes (receive-pack).
        .env("REMOTE_USER", &shared.user)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(protocol) = headers.get("git-protocol").and_then(|v| v.to_str().ok()) {
        command.env("HTTP_GIT_PROTOCOL", protocol);
    }
    let mut child = command.spawn()?;
    let mut stdin = child.stdin.take();
    let feed = async move {
        if let Some(pipe) = stdin.as_mut() {
            // A backend that stops early closes its stdin; its output says why.
            let _ = pipe.write_all(&body).await;
        }
        drop(stdin);
    };
    let (output, ()) = tokio::join!(child.wait_with_output(), feed);
    let output = output?;
    if !output.status.success() && output.stdout.is_empty() {
        return Err(io::Error::other(String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    cgi_response(&output.stdout)
}

/// Turns a CGI program's output into a response: `Status:` sets the status, the other header
/// lines are passed on.
fn cgi_response(output: &[u8]) -> io::Result<Response> {
    let (head, body) = match find(output, b"\r\n\r\n") {
        Some(at) => (&output[..at], &output[at + 4..]),
        None => match find(output, b"\n\n") {
            Some(at) => (&output[..at], &output[at + 2..]),
            None => return Err(io::Error::other("no blank line after the CGI headers")),
        },
    };
    let mut response = Response::new(Body::from(body.to_vec()));
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split(' ').next().and_then(|code| code.parse::<u16>().ok());
            *response.status_mut() = code
                .and_then(|code| StatusCode::from_u16(code).ok())
                .ok_or_else(|| io::Error::other(format!("bad CGI status `{value}`")))?;
        } else if let (Ok(name), Ok(value)) =
            (header::HeaderName::try_from(name.trim()), HeaderValue::from_str(value))
        {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Standard base64 with padding (RFC 4648 §4), for the expected `Authorization` value.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let group = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            let sextet = (group >> (18 - 6 * i)) as usize & 63;
            out.push(if i <= chunk.len() { char::from(ALPHABET[sextet]) } else { '=' });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foobar", "Zm9vYmFy")] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn cgi_output_becomes_a_response() {
        let response =
            cgi_response(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope").unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain");
        let response = cgi_response(b"Content-Type: application/x-git\n\nbody").unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(cgi_response(b"Content-Type: x").is_err());
    }
}

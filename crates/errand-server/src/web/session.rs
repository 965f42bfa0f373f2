//! Signing in to the web UI with an API token, and the session that follows.
//!
//! - Sign-in takes a token (from `errand user token NAME`, or the local user's
//!   `<data_dir>/token`) and mints a fresh token of the same user labelled `web session`, whose
//!   secret becomes the session cookie: `HttpOnly`, `SameSite=Lax`, `Secure` when the server is
//!   configured as served over HTTPS. The token typed in is never stored in the browser; signing
//!   out revokes the session's token, and `errand`'s token list shows (and can revoke) sessions.
//! - Every form that changes something carries a CSRF token derived from the session secret
//!   (SHA-256 of a fixed label and the secret), so a page on another site, which cannot read the
//!   cookie, cannot produce it. Requests a browser marks as cross-site (`Sec-Fetch-Site`, or an
//!   `Origin` other than this host) are refused before the token is even looked at.
//! - The sign-in form itself uses a double-submit token (a random cookie repeated in the form),
//!   so another site cannot sign a visitor in as someone else.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use errand_store::{Scope, TokenId, User, UserId};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::WebState;
use super::page::PageError;

/// The session cookie: `<token id>:<secret>`.
pub const SESSION_COOKIE: &str = "errand_session";
/// The sign-in form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "errand_login";
/// How long a browser keeps a session (the token itself lives until it is revoked).
const SESSION_MAX_AGE_SECS: u64 = 30 * 24 * 3600;

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    /// The session's own token, revoked at sign-out.
    pub token: TokenId,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

impl Session {
    pub fn id(&self) -> UserId {
        self.user.id
    }

    pub fn scope(&self) -> Scope {
        Scope::User(self.user.id)
    }

    /// Refuses a state-changing request whose form does not carry this session's CSRF token.
    pub fn check_csrf(&self, sent: &str) -> Result<(), PageError> {
        if constant_time_eq(sent.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(PageError::forbidden(
                "this form has expired or did not come from this site: reload the page and try again",
            ))
        }
    }

    /// The API's view of this user, for calling the API's handlers.
    pub fn caller(&self) -> crate::api::Caller {
        crate::api::Caller(self.user.clone())
    }
}

impl FromRequestParts<WebState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        let sign_in = || {
            let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let next = if parts.method == axum::http::Method::GET { next } else { "/" };
            Redirect::to(&format!("/login?next={}", super::html::url_segment(next))).into_response()
        };
        let Some((token, secret)) =
            cookie(&parts.headers, SESSION_COOKIE).and_then(|value| parse_session(&value))
        else {
            return Err(sign_in());
        };
        match state.api.store.authenticate(&secret).await {
            Ok(Some(user)) => Ok(Session { user, token, csrf: csrf_token(&secret) }),
            Ok(None) => Err(sign_in()),
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

fn parse_session(value: &str) -> Option<(TokenId, String)> {
    let (id, secret) = value.split_once(':')?;
    Some((id.parse().ok()?, secret.to_string()))
}

/// The CSRF token of a session secret.
pub fn csrf_token(secret: &str) -> String {
    hex(&Sha256::digest(format!("errand web csrf\0{secret}").as_bytes()))
}

/// A random value for the sign-in form's double-submit cookie.
pub fn login_nonce() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(token: TokenId, secret: &str, secure: bool) -> HeaderValue {
    cookie_header(SESSION_COOKIE, &format!("{token}:{secret}"), SESSION_MAX_AGE_SECS, secure)
}

/// `Set-Cookie` that removes `name`.
pub fn expired_cookie(name: &str, secure: bool) -> HeaderValue {
    cookie_header(name, "", 0, secure)
}

/// `Set-Cookie` for the sign-in form's nonce (an hour is plenty to type a token).
pub fn login_cookie(nonce: &str, secure: bool) -> HeaderValue {
    cookie_header(LOGIN_COOKIE, nonce, 3600, secure)
}

fn cookie_header(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    // The names are constants and the values hex, digits, `:` and `errand_`: always a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// Whether the browser says this request came from another site. Browsers send
/// `Sec-Fetch-Site` on every request (Fetch Metadata); `Origin` accompanies every POST. Either
/// naming another site is enough to refuse a state-changing request.
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()), host) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => {
            let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            authority != host
        }
        _ => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Only same-site paths are followed after sign-in: `/x`, never `//evil` or `https://…`.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.starts_with("/\\")
                && !next.chars().any(char::is_control) =>
        {
            next
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; errand_session=x:y; b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("x:y"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                map.insert(*k, HeaderValue::from_static(v));
            }
            map
        };
        assert!(!is_cross_site(&headers(&[("host", "127.0.0.1:7878")])));
        assert!(!is_cross_site(&headers(&[
            ("host", "127.0.0.1:7878"),
            ("origin", "http://127.0.0.1:7878"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(is_cross_site(&headers(&[
            ("host", "127.0.0.1:7878"),
            ("origin", "http://evil.example")
        ])));
        assert!(is_cross_site(&headers(&[("host", "127.0.0.1:7878"), ("origin", "null")])));
    }

    #[test]
    fn only_local_paths_are_followed() {
        for (next, want) in [
            (Some("/tasks/x"), "/tasks/x"),
            (Some("//evil.example"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("https://evil.example"), "/"),
            (Some("javascript:alert(1)"), "/"),
            (Some("/a\nb"), "/"),
            (None, "/"),
        ] {
            assert_eq!(safe_next(next), want, "{next:?}");
        }
    }

    #[test]
    fn csrf_tokens_depend_on_the_secret() {
        assert_eq!(csrf_token("a"), csrf_token("a"));
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}

//! What every page shares: the layout's data, errors rendered as pages, the security headers,
//! and signing in and out.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, middleware::Next};
use errand_store::StoreError;
use serde::Deserialize;

use super::WebState;
use super::assets;
use super::session::{self, Session};
use crate::api::ApiFailure;

/// The strictest policy the pages work under: scripts and styles only from our own embedded
/// files (no inline script, no inline style, no `eval`), no plugins, no framing, forms only to
/// ourselves. An escaping mistake in a page can then still run nothing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Adds the security headers to every web response.
pub async fn security_headers(request: axum::extract::Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages show private data: never kept by shared caches, revalidated on back/forward.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    }
    response
}

/// What the layout shows around every page.
pub struct Layout {
    pub title: String,
    /// The signed-in user's name; empty on the sign-in page.
    pub user: String,
    pub csrf: String,
    /// Which navigation entry is current: `tasks`, `new`, `environments` or empty.
    pub nav: &'static str,
    pub css: &'static str,
    pub js: &'static str,
}

impl Layout {
    pub fn new(title: impl Into<String>, session: &Session, nav: &'static str) -> Layout {
        Layout {
            title: title.into(),
            user: session.user.name.clone(),
            csrf: session.csrf.clone(),
            nav,
            css: assets::css_path(),
            js: assets::js_path(),
        }
    }

    fn anonymous(title: &str) -> Layout {
        Layout {
            title: title.into(),
            user: String::new(),
            csrf: String::new(),
            nav: "",
            css: assets::css_path(),
            js: assets::js_path(),
        }
    }
}

/// Renders a page, or a plain 500 if a template fails (it cannot with our own data, but a page
/// must never panic).
pub fn render(page: &impl Template) -> Response {
    render_with(StatusCode::OK, page)
}

pub fn render_with(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!("a page failed to render: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page failed to render").into_response()
        }
    }
}

pub type PageResult<T = Response> = Result<T, PageError>;

/// A failure shown as a page with a sentence that says what to do.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError { status, message: message.into() }
    }

    pub fn forbidden(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn bad_request(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<ApiFailure> for PageError {
    fn from(failure: ApiFailure) -> PageError {
        PageError { status: failure.status, message: failure.message }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> PageError {
        ApiFailure::from(e).into()
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error").to_string();
        let page = ErrorPage {
            layout: Layout::anonymous(&title),
            status: self.status.as_u16(),
            message: self.message,
        };
        render_with(self.status, &page)
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    nonce: String,
    error: String,
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// The sign-in form, with a fresh double-submit nonce.
pub async fn login_form(State(state): State<WebState>, Query(query): Query<NextQuery>) -> Response {
    login_page(&state, session::safe_next(query.next.as_deref()), StatusCode::OK, String::new())
}

fn login_page(state: &WebState, next: &str, status: StatusCode, error: String) -> Response {
    let nonce = session::login_nonce();
    let page = LoginPage {
        layout: Layout::anonymous("Sign in"),
        next: next.into(),
        nonce: nonce.clone(),
        error,
    };
    let mut response = render_with(status, &page);
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::login_cookie(&nonce, state.config.secure_cookies));
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
    nonce: String,
    next: Option<String>,
}

/// Checks the token and starts a session: a new token of the same user, in a cookie.
pub async fn login(
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> PageResult {
    let next = session::safe_next(form.next.as_deref()).to_string();
    let nonce_ok = session::cookie(&headers, session::LOGIN_COOKIE)
        .is_some_and(|c| !c.is_empty() && c == form.nonce);
    if session::is_cross_site(&headers) || !nonce_ok {
        return Ok(login_page(
            &state,
            &next,
            StatusCode::FORBIDDEN,
            "The sign-in form expired or came from another site; try again.".into(),
        ));
    }
    let store = &state.api.store;
    let Some(user) = store.authenticate(form.token.trim()).await? else {
        return Ok(login_page(
            &state,
            &next,
            StatusCode::UNAUTHORIZED,
            "That token is unknown or revoked. On the server, `errand user token NAME` makes one."
                .into(),
        ));
    };
    let created = store.create_token(user.id, "web session").await?;
    tracing::info!(user = %user.name, "signed in to the web UI");
    let secure = state.config.secure_cookies;
    let mut response = Redirect::to(&next).into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        session::session_cookie(created.token.id, &created.secret, secure),
    );
    cookies.append(header::SET_COOKIE, session::expired_cookie(session::LOGIN_COOKIE, secure));
    Ok(response)
}

/// A form that carries nothing but its CSRF token (sign out, cancel, delete).
#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

/// Ends the session: its token is revoked, the cookie dropped.
pub async fn logout(
    State(state): State<WebState>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> PageResult {
    check_form(&session, &headers, &form.csrf)?;
    state.api.store.revoke_token(session.id(), session.token).await?;
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::expired_cookie(session::SESSION_COOKIE, state.config.secure_cookies),
    );
    Ok(response)
}

/// Every state-changing form passes here: same site, and this session's CSRF token.
pub fn check_form(session: &Session, headers: &HeaderMap, csrf: &str) -> PageResult<()> {
    if session::is_cross_site(headers) {
        return Err(PageError::forbidden("requests from other sites are refused"));
    }
    session.check_csrf(csrf)
}

/// A 303 to `path` (after a form, so that reloading does not post again).
pub fn see_other(path: &str) -> Response {
    Redirect::to(path).into_response()
}

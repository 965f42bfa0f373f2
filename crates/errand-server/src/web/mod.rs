//! The web UI (design: "Interfaces people touch"): server-rendered pages over the same store and
//! the same handlers as the API, a little plain JavaScript for live updates (EventSource) and
//! conveniences, and the stylesheet and script embedded in the binary. No build step, no
//! framework; every page works at 390 px wide, and without JavaScript except for live updates.
//!
//! - `session.rs`: sign-in with an API token, the session cookie, CSRF tokens.
//! - `page.rs`: what every page shares: the layout, errors as pages, security headers.
//! - `assets.rs`: the embedded stylesheet and script, under content-hashed names.
//! - `html.rs`: escaping (every untrusted byte reaches a page through it), terminal text.
//! - `markdown.rs`: the report's description and agent messages: a small safe Markdown subset
//!   whose citations become links.
//! - `log.rs`: the work log as HTML: the whole page and, live, one update per event.
//! - `diff.rs`, `highlight.rs`: the diff as a reviewer reads it, syntax-highlighted.
//! - `tasks.rs`, `attempt.rs`, `review.rs`, `environments.rs`: the pages.
//!
//! Invariant: text from the model, the repository and the logs is untrusted. Templates escape
//! by default; HTML built in Rust goes through `html.rs`; nothing untrusted is ever put in a
//! `<script>`, a `style`, an event-handler attribute or a URL scheme position, and the
//! Content-Security-Policy forbids inline script and style, so an escaping mistake still runs
//! nothing.

mod assets;
mod attempt;
mod diff;
mod environments;
mod highlight;
pub mod html;
mod log;
mod markdown;
mod page;
mod review;
mod session;
mod tasks;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{get, post};

use crate::api::AppState;

/// How the web UI is set up.
#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// Mark cookies `Secure`: set when browsers reach the server over HTTPS (a TLS proxy).
    pub secure_cookies: bool,
}

/// What every page handler shares: the API's state and the web's own settings.
#[derive(Clone)]
pub struct WebState {
    pub api: AppState,
    pub config: Arc<WebConfig>,
}

impl FromRef<WebState> for AppState {
    fn from_ref(state: &WebState) -> AppState {
        state.api.clone()
    }
}

/// Every page of the web UI, with its security headers.
pub fn router(api: AppState, config: WebConfig) -> Router {
    let state = WebState { api, config: Arc::new(config) };
    Router::new()
        .route("/", get(tasks::list))
        .route("/login", get(page::login_form).post(page::login))
        .route("/logout", post(page::logout))
        .route("/tasks", post(tasks::create))
        .route("/tasks/new", get(tasks::new_form))
        .route("/tasks/{id}", get(tasks::show))
        .route("/tasks/{id}/cancel", post(tasks::cancel))
        .route("/tasks/{id}/pick", post(tasks::pick))
        .route("/attempts/{id}", get(attempt::show))
        .route("/attempts/{id}/live", get(attempt::live))
        .route("/attempts/{id}/messages", post(attempt::message))
        .route("/attempts/{id}/cancel", post(attempt::cancel))
        .route("/attempts/{id}/followup", post(attempt::followup))
        .route("/attempts/{id}/review", get(review::show))
        .route("/attempts/{id}/patch", get(review::patch))
        .route("/attempts/{id}/pull-request", post(review::pull_request))
        .route("/attempts/{id}/files/{*path}", get(review::file))
        .route("/environments", get(environments::list).post(environments::create))
        .route("/environments/new", get(environments::new_form))
        .route("/environments/{name}", get(environments::show).post(environments::update))
        .route("/environments/{name}/delete", post(environments::delete))
        .route("/assets/{name}", get(assets::serve))
        .layer(axum::middleware::from_fn(page::security_headers))
        .with_state(state)
}

//! The HTTP API (design: "Interfaces people touch"): JSON under `/api`, bearer-token auth, SSE
//! for an attempt's events, an OpenAPI document generated from the handlers at
//! `/api/openapi.json`, health at `/api/health` and Prometheus metrics at `/metrics`.
//!
//! - `error.rs`: every failure as one JSON shape with a status code; store errors mapped once.
//! - `auth.rs`: the [`Caller`] extractor (a bearer token → a user).
//! - `tasks.rs`: tasks and attempts: create (with limits), list, show, cancel, follow up,
//!   message, diff, report.
//! - `events.rs` and `hub.rs`: the event log as pages and as an SSE stream that resumes with
//!   `Last-Event-ID`; one store reader per watched attempt fans out to every client.
//! - `environments.rs`, `users.rs`: the caller's environments, their logs, the caller and their
//!   tokens.
//! - `ops.rs`: health, metrics, the OpenAPI document.
//!
//! Invariant: every handler reads and writes through the [`Store`] with the caller's
//! [`errand_store::Scope::User`], so another user's rows are "not found", never "forbidden".

mod auth;
mod environments;
mod error;
mod events;
mod hub;
mod ops;
mod tasks;
mod users;

use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use errand_store::Store;

pub use auth::Caller;
pub(crate) use environments::lookup as lookup_environment;
pub use error::ApiFailure;
pub(crate) use events::Follow;
pub use hub::{EventHub, HubNotifier, NotifyingStore};
pub use ops::{Metrics, openapi_json};
pub(crate) use tasks::{
    cancel_unfinished, create as create_task, create_followup, deliver, pick_attempt, send_message,
};

/// What the API allows, per user and in total. Limits are data (design: "Limits are data"): a
/// refusal is an HTTP 429 with `Retry-After` and a sentence naming the limit.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Tasks a user may create in any rolling hour.
    pub tasks_per_hour: u32,
    /// Attempts of one user that may be unfinished (queued, preparing or running) at once.
    pub attempts_per_user: u32,
    /// Attempts of everyone that may be unfinished at once.
    pub attempts_total: u32,
    /// The largest prompt, follow-up or message accepted, in bytes.
    pub max_prompt_bytes: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            tasks_per_hour: 60,
            attempts_per_user: 24,
            attempts_total: 1000,
            max_prompt_bytes: errand_store::NewTask::MAX_PROMPT_BYTES,
        }
    }
}

/// How the API is set up.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub limits: ApiLimits,
    /// Repositories a task may name must be under one of these directories; empty allows any
    /// absolute path on this machine (the single-user default).
    pub repository_roots: Vec<PathBuf>,
    /// How often an event stream checks the store for events written by other processes
    /// (workers on other machines); events of this process's workers arrive at once.
    pub event_poll: Duration,
    /// Request bodies above this are refused with 413.
    pub max_body_bytes: usize,
    /// The web UI served beside the API.
    pub web: crate::web::WebConfig,
    /// Mirrors and credentials for repositories named by URL; `None`: only paths on this
    /// machine are accepted.
    pub remotes: Option<crate::remotes::Remotes>,
    /// Forges pull requests may be opened on (and tasks started from, with triggers).
    pub forges: crate::delivery::Forges,
    /// Where people reach this server (links in comments on forges).
    pub public_url: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            limits: ApiLimits::default(),
            repository_roots: Vec::new(),
            event_poll: Duration::from_millis(250),
            max_body_bytes: 2 << 20,
            web: crate::web::WebConfig::default(),
            remotes: None,
            forges: crate::delivery::Forges::default(),
            public_url: "http://127.0.0.1:7878".into(),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub hub: Arc<EventHub>,
    pub config: Arc<ApiConfig>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// The API over `store`. Workers in the same process must append through
    /// [`AppState::store`] (a [`NotifyingStore`]) so that streams see their events at once.
    pub fn new(store: Arc<dyn Store>, config: ApiConfig) -> AppState {
        let hub = EventHub::new(store.clone(), config.event_poll);
        let store: Arc<dyn Store> = Arc::new(NotifyingStore::new(store, HubNotifier(hub.clone())));
        AppState { store, hub, config: Arc::new(config), metrics: Arc::new(Metrics::default()) }
    }
}

/// Every route of the API.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    Router::new()
        .merge(tasks::routes())
        .merge(events::routes())
        .merge(environments::routes())
        .merge(users::routes())
        .merge(ops::routes())
        .route("/hooks/{host}", axum::routing::post(crate::triggers::webhook))
        .fallback(error::not_a_route)
        .layer(axum::middleware::from_fn_with_state(state.clone(), ops::count_responses))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// The API and the web UI, as `errand serve` serves them.
pub fn app(state: AppState) -> Router {
    let web = state.config.web.clone();
    router(state.clone())
        .merge(crate::web::router(state, web))
        .layer(tower_http::compression::CompressionLayer::new())
}

/// Serves the API and the web UI on `listener` until `shutdown` resolves, then stops accepting and gives open
/// requests a few seconds: event streams that are still open after that are cut (their clients
/// resume with `Last-Event-ID` elsewhere).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let graceful = async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(graceful);
    let mut server = tokio::spawn(server.into_future());
    tokio::select! {
        joined = &mut server => return joined.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        () = shutdown => {}
    }
    let _ = stop.send(true);
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(joined) => joined.unwrap_or_else(|e| Err(std::io::Error::other(e))),
        Err(_) => Ok(()),
    }
}

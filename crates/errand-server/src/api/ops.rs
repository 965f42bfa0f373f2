//! What operators and tools read: `/api/health`, Prometheus `/metrics`, and the OpenAPI
//! document at `/api/openapi.json`, generated from the handlers' annotations and the
//! errand-protocol types (so it cannot drift from the code).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use errand_protocol::api::Health;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{AppState, environments, events, tasks, users};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
}

/// Counters since the process started (gauges are read when scraped).
#[derive(Debug, Default)]
pub struct Metrics {
    pub tasks_created: AtomicU64,
    pub rate_limited: AtomicU64,
    pub sse_clients: AtomicU64,
    pub events_streamed: AtomicU64,
    /// Responses by status class: 2xx, 3xx, 4xx, 5xx.
    pub responses: [AtomicU64; 4],
}

/// Counts every response by its status class.
pub(super) async fn count_responses(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let class = (response.status().as_u16() / 100).clamp(2, 5) as usize - 2;
    state.metrics.responses[class].fetch_add(1, Ordering::Relaxed);
    response
}

/// Whether the server and its database answer. No token needed.
#[utoipa::path(get, path = "/api/health", tag = "ops",
    responses((status = 200, body = Health), (status = 503, description = "The database does not answer", body = Health)))]
pub(super) async fn health(State(state): State<AppState>) -> Response {
    let ok = state.store.attempt_counts(None).await.is_ok();
    let health = Health {
        status: if ok { "ok" } else { "degraded" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, axum::Json(health)).into_response()
}

/// Prometheus text format. No token needed; it carries counts only.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, content_type = "text/plain", description = "Prometheus metrics", body = String)))]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let m = &state.metrics;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
    };
    counter(
        "errand_tasks_created_total",
        "Tasks created.",
        m.tasks_created.load(Ordering::Relaxed),
    );
    counter(
        "errand_rate_limited_total",
        "Requests refused by a limit (HTTP 429).",
        m.rate_limited.load(Ordering::Relaxed),
    );
    counter(
        "errand_events_streamed_total",
        "Events sent to SSE clients.",
        m.events_streamed.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP errand_http_responses_total HTTP responses by status class.\n# TYPE errand_http_responses_total counter"
    );
    for (i, class) in ["2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
        let value = m.responses[i].load(Ordering::Relaxed);
        let _ = writeln!(out, "errand_http_responses_total{{class=\"{class}\"}} {value}");
    }
    let _ = writeln!(
        out,
        "# HELP errand_sse_clients Event streams open now.\n# TYPE errand_sse_clients gauge\nerrand_sse_clients {}",
        m.sse_clients.load(Ordering::Relaxed)
    );
    match state.store.attempt_counts(None).await {
        Ok(counts) => {
            let _ = writeln!(
                out,
                "# HELP errand_attempts Unfinished attempts by state.\n# TYPE errand_attempts gauge"
            );
            for (name, value) in [
                ("queued", counts.queued),
                ("preparing", counts.preparing),
                ("running", counts.running),
            ] {
                let _ = writeln!(out, "errand_attempts{{state=\"{name}\"}} {value}");
            }
            let _ = writeln!(out, "# TYPE errand_store_up gauge\nerrand_store_up 1");
        }
        Err(_) => {
            let _ = writeln!(out, "# TYPE errand_store_up gauge\nerrand_store_up 0");
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "ops",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)))]
pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json()).into_response()
}

/// The OpenAPI document as JSON text.
pub fn openapi_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Errand API", description = "Delegate software tasks to sandboxed coding agents: tasks, attempts, their live work logs, diffs and reports."),
    paths(
        tasks::create_task, tasks::list_tasks, tasks::get_task, tasks::delete_task,
        tasks::cancel_task, tasks::pick, tasks::get_attempt, tasks::cancel_attempt, tasks::followup,
        tasks::message, tasks::diff, tasks::report, tasks::pull_request,
        events::list_events, events::stream_events,
        environments::list_environments, environments::create_environment,
        environments::get_environment, environments::update_environment,
        environments::delete_environment, environments::environment_logs,
        users::me, users::list_tokens, users::create_token, users::revoke_token,
        health, metrics, openapi,
    ),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    /// The bearer scheme, and the answers every route shares, written once instead of on each
    /// handler: 401 wherever a token is needed; 400, 413 and 415 wherever a JSON body is read.
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let error = |description: &str| {
            let body = ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ApiError"))))
                .build();
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", body)
                    .build(),
            )
        };
        for item in openapi.paths.paths.values_mut() {
            let operations =
                [&mut item.get, &mut item.post, &mut item.put, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                if operation.security.is_some() {
                    responses
                        .entry("401".into())
                        .or_insert_with(|| error("No token, or an unknown or revoked one"));
                }
                if operation.request_body.is_some() {
                    responses
                        .entry("400".into())
                        .or_insert_with(|| error("The body is not valid JSON of this shape"));
                    responses
                        .entry("413".into())
                        .or_insert_with(|| error("The body is larger than the server accepts"));
                    responses
                        .entry("415".into())
                        .or_insert_with(|| error("The body is not sent as application/json"));
                }
                if !operation.parameters.as_ref().is_none_or(Vec::is_empty) {
                    responses
                        .entry("400".into())
                        .or_insert_with(|| error("A query parameter or header is invalid"));
                }
            }
        }
    }
}

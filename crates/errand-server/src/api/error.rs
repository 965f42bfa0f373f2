//! Every failure the API answers with: a status, a stable `code` and a sentence, as
//! [`errand_protocol::api::ApiError`] JSON. Store errors map here once, so no handler decides a
//! status code on its own.

use axum::Json;
use axum::extract::FromRequest;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use errand_protocol::api::{ApiError, ErrorBody};
use errand_store::{ConflictKind, StoreError};

/// A failed request.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiFailure>;

impl ApiFailure {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn rate_limited(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut failure = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        failure.retry_after = Some(retry_after_secs.max(1));
        failure
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<StoreError> for ApiFailure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(_) => ApiFailure::not_found(e.to_string()),
            StoreError::Invalid(message) => ApiFailure::bad_request(message),
            StoreError::Conflict { kind, message } => match kind {
                ConflictKind::AlreadyExists
                | ConflictKind::InvalidTransition
                | ConflictKind::InUse
                | ConflictKind::LogClosed
                | ConflictKind::LeaseLost => ApiFailure::conflict(message),
            },
            StoreError::Backend(message) => {
                // The driver's words may name tables and hosts: they go to the log, not the
                // caller.
                tracing::error!("store failure behind an API request: {message}");
                let mut failure = ApiFailure::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database did not answer; try again shortly",
                );
                failure.retry_after = Some(5);
                failure
            }
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let body = ApiError { error: ErrorBody { code: self.code.into(), message: self.message } };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<JsonRejection> for ApiFailure {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiFailure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiFailure::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than this server accepts",
                )
            }
            // serde's message names the field and the position ("unknown field `attempt`,
            // expected one of ... at line 1 column 12").
            other => ApiFailure::bad_request(format!("invalid JSON body: {}", other.body_text())),
        }
    }
}

impl From<QueryRejection> for ApiFailure {
    fn from(rejection: QueryRejection) -> Self {
        ApiFailure::bad_request(format!("invalid query: {}", rejection.body_text()))
    }
}

/// A JSON body whose rejection is an [`ApiFailure`], so a malformed body gets the same error
/// shape as everything else.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiFailure))]
pub struct Body<T>(pub T);

/// A query string whose rejection is an [`ApiFailure`].
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiFailure))]
pub struct Query<T>(pub T);

/// Answers paths that are no route at all (as opposed to a route whose row is missing).
pub async fn not_a_route() -> ApiFailure {
    ApiFailure::not_found("no such API route; see /api/openapi.json")
}

/// Parses a typed id from a path segment, answering 404 for anything malformed: a bad id names
/// nothing, exactly like an id of another user's row.
pub fn parse_id<T: std::str::FromStr>(text: &str, what: &str) -> ApiResult<T> {
    text.parse().map_err(|_| ApiFailure::not_found(format!("{what} {text} not found")))
}

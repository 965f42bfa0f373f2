//! The caller and their API tokens. Users themselves are created by the operator on the server
//! machine (`errand user add`), not over the API.

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use errand_protocol::api::{ApiError, CreateToken, CreatedTokenView, TokenView, UserView};
use errand_store::{ApiToken, TokenId};

use super::AppState;
use super::auth::Caller;
use super::error::{ApiFailure, ApiResult, Body, parse_id};

use axum::Json;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/tokens", get(list_tokens).post(create_token))
        .route("/api/tokens/{id}", delete(revoke_token))
}

/// Who the token belongs to.
#[utoipa::path(get, path = "/api/me", tag = "users",
    responses((status = 200, body = UserView), (status = 401, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn me(caller: Caller) -> Json<UserView> {
    let user = caller.0;
    Json(UserView { id: user.id.to_string(), name: user.name, created_at_ms: user.created_at_ms })
}

/// The caller's tokens (revoked ones included), oldest first. Secrets are never shown again.
#[utoipa::path(get, path = "/api/tokens", tag = "users",
    responses((status = 200, body = Vec<TokenView>), (status = 401, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<TokenView>>> {
    let tokens = state.store.list_tokens(caller.id()).await?;
    Ok(Json(tokens.into_iter().map(token_view).collect()))
}

/// A new token for the caller; its secret is in this response only.
#[utoipa::path(post, path = "/api/tokens", tag = "users", request_body = CreateToken,
    responses((status = 201, body = CreatedTokenView), (status = 400, body = ApiError), (status = 401, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Body(request): Body<CreateToken>,
) -> ApiResult<(StatusCode, Json<CreatedTokenView>)> {
    let label = request.label.trim();
    if label.is_empty() || label.len() > 100 || label.chars().any(char::is_control) {
        return Err(ApiFailure::bad_request(
            "label must be 1 to 100 printable characters (e.g. \"laptop\")",
        ));
    }
    let created = state.store.create_token(caller.id(), label).await?;
    let view = CreatedTokenView { token: token_view(created.token), secret: created.secret };
    Ok((StatusCode::CREATED, Json(view)))
}

/// Revokes one of the caller's tokens (idempotent); it stops working at once.
#[utoipa::path(delete, path = "/api/tokens/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<StatusCode> {
    let id: TokenId = parse_id(&id, "token")?;
    state.store.revoke_token(caller.id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn token_view(token: ApiToken) -> TokenView {
    TokenView {
        id: token.id.to_string(),
        label: token.label,
        created_at_ms: token.created_at_ms,
        revoked_at_ms: token.revoked_at_ms,
    }
}

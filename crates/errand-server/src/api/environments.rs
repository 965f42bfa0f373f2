//! The caller's environments (setup and maintenance scripts, variables, secrets) and the logs
//! of their setup runs. Documents are checked by the same rules as `errand env create`
//! (`errand_sandbox::stored_document`) and shown redacted: a secret given as a value is never
//! sent back.

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::get;
use errand_protocol::api::{
    ApiError, CreateEnvironment, EnvironmentLogView, EnvironmentView, UpdateEnvironment,
};
use errand_sandbox::{DocumentError, is_environment_name, redacted_document, stored_document};
use errand_store::{Environment, EnvironmentId, UserId};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiFailure, ApiResult, Body, Query};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/environments", get(list_environments).post(create_environment))
        .route(
            "/api/environments/{name}",
            get(get_environment).put(update_environment).delete(delete_environment),
        )
        .route("/api/environments/{name}/logs", get(environment_logs))
}

/// The caller's environments, by name.
#[utoipa::path(get, path = "/api/environments", tag = "environments",
    responses((status = 200, body = Vec<EnvironmentView>), (status = 401, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn list_environments(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<EnvironmentView>>> {
    let environments = state.store.list_environments(caller.id()).await?;
    Ok(Json(environments.into_iter().map(environment_view).collect::<ApiResult<_>>()?))
}

/// Stores a new environment. The document is the JSON form of an environment file.
#[utoipa::path(post, path = "/api/environments", tag = "environments", request_body = CreateEnvironment,
    responses((status = 201, body = EnvironmentView), (status = 400, body = ApiError),
        (status = 409, description = "The name is taken", body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn create_environment(
    State(state): State<AppState>,
    caller: Caller,
    Body(request): Body<CreateEnvironment>,
) -> ApiResult<(StatusCode, Json<EnvironmentView>)> {
    if !is_environment_name(&request.name) {
        return Err(ApiFailure::bad_request(format!(
            "`{}` is not an environment name: use letters, digits, `-` and `_` (at most 64, starting with a letter or digit)",
            request.name.chars().take(80).collect::<String>().escape_debug()
        )));
    }
    let document = stored_document(request.config).map_err(document_failure)?;
    let environment = state.store.create_environment(caller.id(), &request.name, &document).await?;
    Ok((StatusCode::CREATED, Json(environment_view(environment)?)))
}

/// One environment, by name or id.
#[utoipa::path(get, path = "/api/environments/{name}", tag = "environments",
    params(("name" = String, Path, description = "The environment's name or id")),
    responses((status = 200, body = EnvironmentView), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn get_environment(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Json<EnvironmentView>> {
    let environment = find(&state, caller.id(), &name).await?;
    Ok(Json(environment_view(environment)?))
}

/// Replaces an environment's document. Snapshots built from the old one are not reused.
#[utoipa::path(put, path = "/api/environments/{name}", tag = "environments",
    params(("name" = String, Path, description = "The environment's name or id")),
    request_body = UpdateEnvironment,
    responses((status = 200, body = EnvironmentView), (status = 400, body = ApiError), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn update_environment(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(name): UrlPath<String>,
    Body(request): Body<UpdateEnvironment>,
) -> ApiResult<Json<EnvironmentView>> {
    let environment = find(&state, caller.id(), &name).await?;
    let document = stored_document(request.config).map_err(document_failure)?;
    let updated = state.store.update_environment(caller.id(), environment.id, &document).await?;
    Ok(Json(environment_view(updated)?))
}

/// Deletes an environment; refused while a task refers to it (tasks keep their history).
#[utoipa::path(delete, path = "/api/environments/{name}", tag = "environments",
    params(("name" = String, Path, description = "The environment's name or id")),
    responses((status = 204), (status = 404, body = ApiError), (status = 409, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn delete_environment(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<StatusCode> {
    let environment = find(&state, caller.id(), &name).await?;
    state.store.delete_environment(caller.id(), environment.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct LogsQuery {
    /// At most this many runs, newest first, 1 to 20 (default 5).
    limit: Option<u32>,
}

/// The latest setup and maintenance runs of an environment, newest first, secrets redacted.
#[utoipa::path(get, path = "/api/environments/{name}/logs", tag = "environments",
    params(("name" = String, Path, description = "The environment's name or id"), LogsQuery),
    responses((status = 200, body = Vec<EnvironmentLogView>), (status = 400, body = ApiError), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn environment_logs(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(name): UrlPath<String>,
    Query(query): Query<LogsQuery>,
) -> ApiResult<Json<Vec<EnvironmentLogView>>> {
    let limit = query.limit.unwrap_or(5);
    if !(1..=20).contains(&limit) {
        return Err(ApiFailure::bad_request("limit must be between 1 and 20"));
    }
    let environment = find(&state, caller.id(), &name).await?;
    let logs = state.store.environment_logs(caller.id(), environment.id, limit).await?;
    let views = logs
        .into_iter()
        .map(|log| EnvironmentLogView {
            id: log.id,
            phase: log.phase,
            snapshot: log.snapshot,
            exit_code: log.exit_code,
            duration_ms: log.duration_ms,
            content: log.content,
            created_at_ms: log.created_at_ms,
        })
        .collect();
    Ok(Json(views))
}

/// The user's environment named `name`, or with that id (a task names one either way).
pub(crate) async fn lookup(
    state: &AppState,
    user: UserId,
    name: &str,
) -> errand_store::Result<Environment> {
    match name.parse::<EnvironmentId>() {
        Ok(id) => state.store.get_environment(user, id).await,
        Err(_) => state.store.environment_by_name(user, name).await,
    }
}

/// The caller's environment named `name` (or with that id); 404 if there is none.
async fn find(state: &AppState, user: UserId, name: &str) -> ApiResult<Environment> {
    lookup(state, user, name).await.map_err(|e| match e {
        errand_store::StoreError::NotFound(_) => ApiFailure::not_found(format!(
            "environment `{}` not found",
            name.chars().take(80).collect::<String>().escape_debug()
        )),
        e => e.into(),
    })
}

fn environment_view(environment: Environment) -> ApiResult<EnvironmentView> {
    let config = redacted_document(&environment.config_json).map_err(|e| {
        tracing::error!(environment = %environment.id, "a stored environment is unreadable: {e}");
        ApiFailure::internal("the stored environment cannot be read")
    })?;
    Ok(EnvironmentView {
        id: environment.id.to_string(),
        name: environment.name,
        config: serde_json::Value::Object(config),
        config_hash: environment.config_hash,
        created_at_ms: environment.created_at_ms,
        updated_at_ms: environment.updated_at_ms,
    })
}

fn document_failure(e: DocumentError) -> ApiFailure {
    ApiFailure::bad_request(format!("invalid environment: {e}"))
}

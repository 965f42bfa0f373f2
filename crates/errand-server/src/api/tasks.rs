//! Tasks and their attempts: create (within the caller's limits), list, show, delete, cancel,
//! follow up, message a running attempt, and read an attempt's diff and report.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use errand_protocol::api::{
    ApiError, AttemptView, CancelRequest, CreateTask, FollowupRequest, MessageRequest, MessageView,
    PickRequest, PullRequestView, TaskList, TaskMode, TaskState, TaskView,
};
use errand_protocol::{AttemptId, TaskId};
use errand_store::{
    ArtifactKind, Attempt, EnvironmentId, NewTask, Page, StoreError, Task, UserId, now_ms,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiFailure, ApiResult, Body, Query, parse_id};
use crate::remotes::RepositorySource;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/tasks", post(create_task).get(list_tasks))
        .route("/api/tasks/{id}", get(get_task).delete(delete_task))
        .route("/api/tasks/{id}/cancel", post(cancel_task))
        .route("/api/tasks/{id}/pick", post(pick))
        .route("/api/attempts/{id}", get(get_attempt))
        .route("/api/attempts/{id}/cancel", post(cancel_attempt))
        .route("/api/attempts/{id}/followup", post(followup))
        .route("/api/attempts/{id}/messages", post(message))
        .route("/api/attempts/{id}/diff", get(diff))
        .route("/api/attempts/{id}/report", get(report))
        .route("/api/attempts/{id}/pull-request", post(pull_request))
}

use axum::Json;

/// The longest ref name accepted (git's own limit is far above any real one).
const MAX_REF_BYTES: usize = 256;

/// Creates a task with its attempts, queued for the workers. The ref is resolved now, so every
/// attempt starts from the same commit and a bad ref is refused before anything is stored.
#[utoipa::path(post, path = "/api/tasks", tag = "tasks", request_body = CreateTask,
    responses(
        (status = 201, description = "The task and its queued attempts", body = TaskView),
        (status = 400, description = "Invalid input: nothing was created", body = ApiError),
        (status = 401, body = ApiError),
        (status = 413, body = ApiError),
        (status = 429, description = "A limit was reached; see `Retry-After`", body = ApiError),
    ),
    security(("bearer" = [])))]
pub(super) async fn create_task(
    State(state): State<AppState>,
    caller: Caller,
    Body(request): Body<CreateTask>,
) -> ApiResult<(StatusCode, Json<TaskView>)> {
    Ok((StatusCode::CREATED, Json(create(state, caller, request).await?)))
}

/// Creates a task for `caller`: what `POST /api/tasks` and the web UI's form both do.
pub(crate) async fn create(
    state: AppState,
    caller: Caller,
    request: CreateTask,
) -> ApiResult<TaskView> {
    check_text("prompt", &request.prompt, state.config.limits.max_prompt_bytes)?;
    if !(1..=NewTask::MAX_ATTEMPTS).contains(&request.attempts) {
        return Err(ApiFailure::bad_request(format!(
            "attempts must be between 1 and {}, not {}",
            NewTask::MAX_ATTEMPTS,
            request.attempts
        )));
    }
    let git_ref = request.git_ref.clone().unwrap_or_else(|| "HEAD".into());
    check_ref(&git_ref)?;
    let environment_id = match &request.environment {
        Some(name) => Some(environment_of(&state, caller.id(), name).await?),
        None => None,
    };
    let (repository, stored) = repository(&state.config, &request.repository).await?;
    let commit = resolve_ref(&repository, &git_ref, &stored).await?;
    check_limits(&state, caller.id(), request.attempts, true).await?;
    let new = NewTask {
        environment_id,
        repository: stored,
        git_ref,
        base_commit: Some(commit),
        prompt: request.prompt,
        mode: request.mode,
        attempts: request.attempts,
    };
    let (task, attempts) = state.store.create_task(caller.id(), new).await?;
    state.metrics.tasks_created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(task_id = %task.id, attempts = attempts.len(), user = %caller.0.name, "task created");
    Ok(task_view(task, attempts))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// The `next_before` of the previous page.
    before: Option<String>,
    /// Tasks per page, 1 to 100 (default 20).
    limit: Option<u32>,
}

/// The caller's tasks, newest first.
#[utoipa::path(get, path = "/api/tasks", tag = "tasks", params(ListQuery),
    responses((status = 200, body = TaskList), (status = 400, body = ApiError), (status = 401, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn list_tasks(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<TaskList>> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiFailure::bad_request("limit must be between 1 and 100"));
    }
    let before = match &query.before {
        Some(text) => Some(
            text.parse::<TaskId>()
                .map_err(|e| ApiFailure::bad_request(format!("before must be a task id: {e}")))?,
        ),
        None => None,
    };
    let tasks = state.store.list_tasks(caller.id(), Page { before, limit }).await?;
    let next_before = if tasks.len() == limit as usize { tasks.last().map(|t| t.id) } else { None };
    let mut views = Vec::with_capacity(tasks.len());
    for task in tasks {
        let attempts = state.store.list_attempts(caller.scope(), task.id).await?;
        views.push(task_view(task, attempts));
    }
    Ok(Json(TaskList { tasks: views, next_before }))
}

/// One task with its attempts.
#[utoipa::path(get, path = "/api/tasks/{id}", tag = "tasks", params(("id" = String, Path, description = "A task id")),
    responses((status = 200, body = TaskView), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<TaskView>> {
    let id: TaskId = parse_id(&id, "task")?;
    let task = state.store.get_task(caller.scope(), id).await?;
    let attempts = state.store.list_attempts(caller.scope(), id).await?;
    let ranking = crate::ranking::rank_attempts(&*state.store, caller.scope(), &attempts).await?;
    Ok(Json(TaskView { ranking, ..task_view(task, attempts) }))
}

/// Deletes a task with its attempts, events and artifacts; refused while an attempt is held by
/// a worker (cancel it first).
#[utoipa::path(delete, path = "/api/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ApiError), (status = 409, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn delete_task(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<StatusCode> {
    let id: TaskId = parse_id(&id, "task")?;
    state.store.delete_task(caller.id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Cancels every unfinished attempt of the task: queued ones at once, running ones at their
/// worker's next heartbeat.
#[utoipa::path(post, path = "/api/tasks/{id}/cancel", tag = "tasks", params(("id" = String, Path)),
    request_body(content = Option<CancelRequest>, description = "Optional"),
    responses((status = 200, body = TaskView), (status = 400, body = ApiError), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn cancel_task(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult<Json<TaskView>> {
    let id: TaskId = parse_id(&id, "task")?;
    let reason = cancel_reason(&body)?;
    let task = state.store.get_task(caller.scope(), id).await?;
    cancel_unfinished(&state, &caller, id, &reason).await?;
    let attempts = state.store.list_attempts(caller.scope(), id).await?;
    Ok(Json(task_view(task, attempts)))
}

/// Asks every unfinished attempt of `caller`'s task `id` to stop, with `reason` (the API and
/// the web UI).
pub(crate) async fn cancel_unfinished(
    state: &AppState,
    caller: &Caller,
    id: TaskId,
    reason: &str,
) -> ApiResult<()> {
    for attempt in state.store.list_attempts(caller.scope(), id).await? {
        if !attempt.state.is_terminal() {
            state.store.request_cancel(caller.scope(), attempt.id, reason).await?;
        }
    }
    Ok(())
}

/// Picks a finished attempt as the task's result, overriding the ranking: what `errand apply`
/// and `errand task pr` take when no attempt is named.
#[utoipa::path(post, path = "/api/tasks/{id}/pick", tag = "tasks", params(("id" = String, Path)),
    request_body = PickRequest,
    responses((status = 200, body = TaskView), (status = 400, body = ApiError), (status = 404, body = ApiError),
        (status = 409, description = "The attempt has not finished", body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn pick(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    Body(request): Body<PickRequest>,
) -> ApiResult<Json<TaskView>> {
    let id: TaskId = parse_id(&id, "task")?;
    Ok(Json(pick_attempt(&state, &caller, id, request.attempt).await?))
}

/// Records `caller`'s pick (the API and the web UI).
pub(crate) async fn pick_attempt(
    state: &AppState,
    caller: &Caller,
    task: TaskId,
    attempt: AttemptId,
) -> ApiResult<TaskView> {
    let task = state.store.pick_attempt(caller.id(), task, attempt).await?;
    let attempts = state.store.list_attempts(caller.scope(), task.id).await?;
    Ok(task_view(task, attempts))
}

/// One attempt.
#[utoipa::path(get, path = "/api/attempts/{id}", tag = "attempts", params(("id" = String, Path, description = "An attempt id")),
    responses((status = 200, body = AttemptView), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn get_attempt(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<AttemptView>> {
    let id: AttemptId = parse_id(&id, "attempt")?;
    Ok(Json(attempt_view(state.store.get_attempt(caller.scope(), id).await?)))
}

/// Cancels one attempt: a queued one at once, a running one at its worker's next heartbeat.
/// A finished attempt is returned unchanged.
#[utoipa::path(post, path = "/api/attempts/{id}/cancel", tag = "attempts", params(("id" = String, Path)),
    request_body(content = Option<CancelRequest>, description = "Optional"),
    responses((status = 200, body = AttemptView), (status = 400, body = ApiError), (status = 404, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn cancel_attempt(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> ApiResult<Json<AttemptView>> {
    let id: AttemptId = parse_id(&id, "attempt")?;
    let reason = cancel_reason(&body)?;
    let attempt = state.store.request_cancel(caller.scope(), id, &reason).await?;
    Ok(Json(attempt_view(attempt)))
}

/// A follow-up: a new attempt of the same task that continues this finished attempt's final
/// state and conversation with a new instruction.
#[utoipa::path(post, path = "/api/attempts/{id}/followup", tag = "attempts", params(("id" = String, Path)),
    request_body = FollowupRequest,
    responses((status = 201, body = AttemptView), (status = 400, body = ApiError), (status = 404, body = ApiError),
        (status = 409, description = "The attempt has not finished", body = ApiError), (status = 429, body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn followup(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    Body(request): Body<FollowupRequest>,
) -> ApiResult<(StatusCode, Json<AttemptView>)> {
    let id: AttemptId = parse_id(&id, "attempt")?;
    Ok((StatusCode::CREATED, Json(create_followup(&state, &caller, id, &request.prompt).await?)))
}

/// A follow-up of attempt `id` for `caller`, within their limits (the API and the web UI).
pub(crate) async fn create_followup(
    state: &AppState,
    caller: &Caller,
    id: AttemptId,
    prompt: &str,
) -> ApiResult<AttemptView> {
    check_text("prompt", prompt, state.config.limits.max_prompt_bytes)?;
    // Not found before limited: the caller learns nothing from a 429 about others' attempts.
    state.store.get_attempt(caller.scope(), id).await?;
    check_limits(state, caller.id(), 1, false).await?;
    let attempt = state.store.create_followup(caller.id(), id, prompt).await?;
    Ok(attempt_view(attempt))
}

/// Sends a message to a running (or queued) attempt; the model reads it at its next turn.
#[utoipa::path(post, path = "/api/attempts/{id}/messages", tag = "attempts", params(("id" = String, Path)),
    request_body = MessageRequest,
    responses((status = 202, body = MessageView), (status = 400, body = ApiError), (status = 404, body = ApiError),
        (status = 409, description = "The attempt has finished", body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn message(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    Body(request): Body<MessageRequest>,
) -> ApiResult<(StatusCode, Json<MessageView>)> {
    let id: AttemptId = parse_id(&id, "attempt")?;
    Ok((StatusCode::ACCEPTED, Json(send_message(&state, &caller, id, &request.text).await?)))
}

/// Queues a message for a running attempt of `caller` (the API and the web UI).
pub(crate) async fn send_message(
    state: &AppState,
    caller: &Caller,
    id: AttemptId,
    text: &str,
) -> ApiResult<MessageView> {
    check_text("text", text, state.config.limits.max_prompt_bytes)?;
    let message = state.store.enqueue_message(caller.scope(), id, text).await?;
    let view = MessageView {
        id: message.id,
        attempt_id: message.attempt_id,
        text: message.text,
        created_at_ms: message.created_at_ms,
        delivered_at_ms: message.delivered_at_ms,
    };
    Ok(view)
}

/// The attempt's diff against the task's base commit, as `git apply` takes it.
#[utoipa::path(get, path = "/api/attempts/{id}/diff", tag = "attempts", params(("id" = String, Path)),
    responses((status = 200, content_type = "text/x-diff", body = String),
        (status = 404, description = "No such attempt, or no diff (yet)", body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Response> {
    let id: AttemptId = parse_id(&id, "attempt")?;
    let text = artifact(&state, &caller, id, ArtifactKind::Diff, "diff").await?;
    Ok(([(header::CONTENT_TYPE, "text/x-diff; charset=utf-8")], text).into_response())
}

/// The attempt's report: title, description with checked citations, and its checks.
#[utoipa::path(get, path = "/api/attempts/{id}/report", tag = "attempts", params(("id" = String, Path)),
    responses((status = 200, body = errand_protocol::Report),
        (status = 404, description = "No such attempt, or no report (yet)", body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn report(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Response> {
    let id: AttemptId = parse_id(&id, "attempt")?;
    let json = artifact(&state, &caller, id, ArtifactKind::Report, "report").await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// Delivers the attempt as its task's pull request: opens one, or updates the task's existing
/// one (its branch replaced). Needs a task on a forge URL with a forge configured.
#[utoipa::path(post, path = "/api/attempts/{id}/pull-request", tag = "attempts", params(("id" = String, Path)),
    responses((status = 200, body = PullRequestView),
        (status = 400, description = "Nothing to deliver, no forge for this repository, a branch that is not Errand's", body = ApiError),
        (status = 404, body = ApiError),
        (status = 503, description = "The forge or the remote failed; a retry resumes", body = ApiError)),
    security(("bearer" = [])))]
pub(super) async fn pull_request(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> ApiResult<Json<PullRequestView>> {
    let id: AttemptId = parse_id(&id, "attempt")?;
    Ok(Json(deliver(&state, &caller, id).await?))
}

/// Delivers attempt `id` of `caller` as a pull request (the API and the web UI).
pub(crate) async fn deliver(
    state: &AppState,
    caller: &Caller,
    id: AttemptId,
) -> ApiResult<PullRequestView> {
    use crate::delivery::DeliveryError;
    let record = crate::delivery::deliver(
        &*state.store,
        state.config.remotes.as_ref(),
        &state.config.forges,
        caller.scope(),
        id,
    )
    .await
    .map_err(|e| match e {
        DeliveryError::Refused(message) => ApiFailure::bad_request(message),
        DeliveryError::NotFound(message) => ApiFailure::not_found(message),
        DeliveryError::Failed(message) => {
            ApiFailure::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    })?;
    Ok(PullRequestView {
        task_id: record.task_id,
        attempt_id: record.attempt_id,
        repository: record.repository,
        branch: record.branch,
        commit: record.commit_id,
        state: record.state,
        number: record.number,
        url: record.url,
    })
}

/// An artifact, or a 404 that says why there is none.
async fn artifact(
    state: &AppState,
    caller: &Caller,
    id: AttemptId,
    kind: ArtifactKind,
    what: &str,
) -> ApiResult<String> {
    if let Some(content) = state.store.get_artifact(caller.scope(), id, kind).await? {
        return Ok(content);
    }
    let attempt = state.store.get_attempt(caller.scope(), id).await?;
    let task = state.store.get_task(caller.scope(), attempt.task_id).await?;
    let why = if kind == ArtifactKind::Diff && task.mode == TaskMode::Ask {
        "ask tasks answer questions and change nothing".to_string()
    } else if attempt.state.is_terminal() {
        format!(
            "the attempt ended {} without one{}",
            serde_json::to_value(attempt.state)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default(),
            attempt.reason.map(|r| format!(" ({r})")).unwrap_or_default()
        )
    } else {
        "the attempt has not finished yet".to_string()
    };
    Err(ApiFailure::not_found(format!("attempt {id} has no {what}: {why}")))
}

pub(super) fn task_view(task: Task, attempts: Vec<Attempt>) -> TaskView {
    TaskView {
        id: task.id,
        state: TaskState::derive(attempts.iter().map(|a| a.state)),
        repository: task.repository,
        git_ref: task.git_ref,
        base_commit: task.base_commit,
        environment_id: task.environment_id.map(|id| id.to_string()),
        prompt: task.prompt,
        mode: task.mode,
        created_at_ms: task.created_at_ms,
        attempts: attempts.into_iter().map(attempt_view).collect(),
        ranking: Vec::new(),
        picked_attempt: task.picked_attempt,
    }
}

pub(super) fn attempt_view(attempt: Attempt) -> AttemptView {
    AttemptView {
        id: attempt.id,
        task_id: attempt.task_id,
        index: attempt.index,
        state: attempt.state,
        reason: attempt.reason,
        parent_id: attempt.parent_id,
        prompt: attempt.prompt,
        created_at_ms: attempt.created_at_ms,
        started_at_ms: attempt.started_at_ms,
        finished_at_ms: attempt.finished_at_ms,
        cancel_requested: attempt.cancel_requested,
        last_seq: attempt.last_seq,
    }
}

/// A non-empty text within `max` bytes.
fn check_text(field: &str, text: &str, max: usize) -> ApiResult<()> {
    if text.trim().is_empty() {
        return Err(ApiFailure::bad_request(format!("{field} must not be empty")));
    }
    if text.len() > max {
        return Err(ApiFailure::bad_request(format!(
            "{field} is {} bytes; the limit is {max}",
            text.len()
        )));
    }
    if text.contains('\0') {
        return Err(ApiFailure::bad_request(format!("{field} must not contain NUL bytes")));
    }
    Ok(())
}

/// A ref as a person types it: not an option, no control characters, of sane length. git
/// itself decides whether it names a commit.
fn check_ref(git_ref: &str) -> ApiResult<()> {
    let bad = git_ref.is_empty()
        || git_ref.len() > MAX_REF_BYTES
        || git_ref.starts_with('-')
        || git_ref.chars().any(|c| c.is_control() || c == ' ');
    if bad {
        return Err(ApiFailure::bad_request(format!(
            "ref `{}` is not a branch, tag or commit name",
            git_ref.escape_debug()
        )));
    }
    Ok(())
}

async fn environment_of(state: &AppState, user: UserId, name: &str) -> ApiResult<EnvironmentId> {
    match super::environments::lookup(state, user, name).await {
        Ok(env) => Ok(env.id),
        Err(StoreError::NotFound(_)) => Err(ApiFailure::bad_request(format!(
            "environment `{}` does not exist (see GET /api/environments)",
            name.escape_debug()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// The repository a task names, as a repository to resolve its ref in and as the text to
/// store: an absolute path to a git repository on this machine, inside the configured roots
/// (symlinks resolved first, so a link cannot lead out of them); or, when the server has
/// mirrors configured, a URL, whose mirror is fetched now (a `file://` URL is a path and stays
/// inside the roots too).
async fn repository(
    config: &super::ApiConfig,
    repository: &str,
) -> ApiResult<(errand_git::Repo, String)> {
    let roots = &config.repository_roots;
    match RepositorySource::parse(repository).map_err(|e| {
        ApiFailure::bad_request(format!("repository `{}`: {e}", repository.escape_debug()))
    })? {
        RepositorySource::Local(path) => {
            let repo = local_repository(roots, &path, repository).await?;
            let stored = repo.root().display().to_string();
            Ok((repo, stored))
        }
        RepositorySource::Remote(url) => {
            let Some(remotes) = &config.remotes else {
                return Err(ApiFailure::bad_request(
                    "this server takes repositories on its own machine only: give an absolute path",
                ));
            };
            if url.transport() == errand_git::Transport::File {
                local_repository(roots, Path::new(url.path()), repository).await?;
            }
            let repo = remotes.fetch(&url).await.map_err(ApiFailure::bad_request)?;
            Ok((repo, url.display()))
        }
    }
}

/// A repository at `path` on this machine, inside `roots` when there are any.
async fn local_repository(
    roots: &[PathBuf],
    path: &Path,
    repository: &str,
) -> ApiResult<errand_git::Repo> {
    if !path.is_absolute() {
        return Err(ApiFailure::bad_request(format!(
            "repository must be an absolute path on the server's machine or a URL, not `{}`",
            repository.escape_debug()
        )));
    }
    // With roots configured, every refusal reads the same: the caller learns nothing about
    // paths outside them.
    let outside = || {
        ApiFailure::bad_request(format!(
            "{} is not a git repository under this server's repository roots",
            repository.escape_debug()
        ))
    };
    let within = |p: &Path| roots.is_empty() || roots.iter().any(|root| p.starts_with(root));
    let canonical = match tokio::fs::canonicalize(path).await {
        Ok(canonical) if within(&canonical) => canonical,
        Ok(_) => return Err(outside()),
        Err(_) if !roots.is_empty() => return Err(outside()),
        Err(e) => {
            return Err(ApiFailure::bad_request(format!(
                "cannot open the repository {}: {e}",
                repository.escape_debug()
            )));
        }
    };
    let repo = errand_git::Repo::discover(&canonical).await.map_err(|e| {
        if roots.is_empty() {
            ApiFailure::bad_request(format!("{} is not a git repository: {e}", canonical.display()))
        } else {
            outside()
        }
    })?;
    if !within(repo.root()) {
        return Err(outside());
    }
    Ok(repo)
}

async fn resolve_ref(repo: &errand_git::Repo, git_ref: &str, named: &str) -> ApiResult<String> {
    repo.resolve_commit(git_ref).await.map_err(|_| {
        ApiFailure::bad_request(format!(
            "ref `{}` names no commit in {named}",
            git_ref.escape_debug()
        ))
    })
}

/// Refuses work beyond the caller's and the installation's limits, with the wait in
/// `Retry-After`. Counted before creating, so two racing requests may both pass by one: the
/// limits bound load, they are not a ledger.
async fn check_limits(
    state: &AppState,
    user: UserId,
    attempts: u32,
    new_task: bool,
) -> ApiResult<()> {
    let limits = &state.config.limits;
    let refused = |message: String, retry: u64| {
        state.metrics.rate_limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(ApiFailure::rate_limited(message, retry))
    };
    if new_task {
        let hour_ms = 3_600_000;
        let since = now_ms() - hour_ms;
        let count = state.store.count_tasks_since(user, since).await?;
        if count >= u64::from(limits.tasks_per_hour) {
            // The wait is until the oldest task of the window leaves it.
            let recent = state
                .store
                .list_tasks(
                    user,
                    Page::first(limits.tasks_per_hour.clamp(1, Page::<TaskId>::MAX_LIMIT)),
                )
                .await?;
            let oldest = recent.iter().map(|t| t.created_at_ms).filter(|&at| at >= since).min();
            let wait_ms = oldest.map_or(hour_ms, |at| at + hour_ms - now_ms());
            return refused(
                format!(
                    "you created {count} tasks in the last hour; the limit is {} per hour",
                    limits.tasks_per_hour
                ),
                (wait_ms.max(0) as u64).div_ceil(1000),
            );
        }
    }
    let unfinished = |c: errand_store::AttemptCounts| c.queued + c.in_flight();
    let mine = unfinished(state.store.attempt_counts(Some(user)).await?);
    if mine + u64::from(attempts) > u64::from(limits.attempts_per_user) {
        return refused(
            format!(
                "you have {mine} unfinished attempts and asked for {attempts} more; the limit is {} at once: wait for some to finish or cancel them",
                limits.attempts_per_user
            ),
            30,
        );
    }
    let everyone = unfinished(state.store.attempt_counts(None).await?);
    if everyone + u64::from(attempts) > u64::from(limits.attempts_total) {
        return refused(
            format!(
                "the server has {everyone} unfinished attempts, its limit is {}: try again later",
                limits.attempts_total
            ),
            30,
        );
    }
    Ok(())
}

/// The reason of an optional `CancelRequest` body.
fn cancel_reason(body: &Bytes) -> ApiResult<String> {
    let request: CancelRequest = if body.iter().all(u8::is_ascii_whitespace) {
        CancelRequest::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiFailure::bad_request(format!("invalid JSON body: {e}")))?
    };
    let reason = request.reason.unwrap_or_else(|| "cancelled by the user".into());
    check_text("reason", &reason, 1000)?;
    Ok(reason)
}

//! Delivering an attempt as a pull request (design: "Delivery"): its diff becomes one commit on
//! the task's base commit, pushed from the remote's mirror as a branch (`errand/<task id>` by
//! default), and a pull request on the forge whose title and body are the report's, code
//! citations rendered as links to those lines on the forge. A task has at most one pull
//! request: delivering another attempt of it (a follow-up, or a different pick) replaces the
//! branch and updates that pull request instead of opening a second.
//!
//! Nothing is left half-done: the store's row is written before the push (`pushing`), so a
//! delivery cut short (a crash, the forge down) resumes when asked again: the branch is found
//! where Errand left it, an open pull request for it is adopted rather than duplicated, and a
//! branch someone else moved is reported, never overwritten.

use errand_git::forge::{
    ForgeClient, ForgeConfig, ForgeKind, NewPullRequest, RepoRef, citation_link,
};
use errand_git::{BranchExpectation, PushError, RemoteUrl};
use errand_protocol::{AttemptId, AttemptState, CitationTarget, Report};
use errand_store::{ArtifactKind, PullRequestRecord, Scope, Store};

use crate::remotes::{Remotes, RepositorySource};

/// One forge Errand may open pull requests on.
#[derive(Clone)]
pub struct Forge {
    /// The host its repositories' URLs name (`github.com`, `git.example.com`).
    pub host: String,
    pub kind: ForgeKind,
    /// Where its pages are (`https://github.com`), for links in pull request bodies.
    pub web_base: String,
    pub config: ForgeConfig,
    /// Branches are named `<prefix><task id>`.
    pub branch_prefix: String,
    /// Tasks started from this forge's issues and pull requests, when configured.
    pub trigger: Option<crate::triggers::TriggerConfig>,
}

impl std::fmt::Debug for Forge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forge")
            .field("host", &self.host)
            .field("kind", &self.kind)
            .field("web_base", &self.web_base)
            .field("config", &self.config)
            .field("trigger", &self.trigger)
            .finish_non_exhaustive()
    }
}

/// The forges configured on this server.
#[derive(Debug, Clone, Default)]
pub struct Forges(pub Vec<Forge>);

impl Forges {
    /// The forge named by its host.
    pub fn for_host(&self, host: &str) -> Option<&Forge> {
        self.0.iter().find(|forge| forge.host.eq_ignore_ascii_case(host))
    }

    /// The forge for a repository URL's host.
    pub fn for_url(&self, url: &RemoteUrl) -> Option<&Forge> {
        let host = url.host()?.to_ascii_lowercase();
        self.0.iter().find(|forge| forge.host.eq_ignore_ascii_case(&host))
    }
}

/// Why an attempt could not be delivered, in the user's terms.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The request cannot be carried out as asked (no forge, nothing to deliver, …).
    #[error("{0}")]
    Refused(String),
    /// The attempt or task is not the caller's.
    #[error("{0}")]
    NotFound(String),
    /// The forge or the remote failed; what was done so far is recorded and a retry resumes.
    #[error("{0}")]
    Failed(String),
}

impl From<errand_store::StoreError> for DeliveryError {
    fn from(e: errand_store::StoreError) -> DeliveryError {
        match e {
            errand_store::StoreError::NotFound(what) => {
                DeliveryError::NotFound(format!("{what} not found"))
            }
            e => DeliveryError::Failed(format!("the store failed: {e}")),
        }
    }
}

/// Delivers `attempt` (the caller's, finished with a diff) as its task's pull request, opening
/// it or updating the task's existing one. Returns the stored record.
pub async fn deliver(
    store: &dyn Store,
    remotes: Option<&Remotes>,
    forges: &Forges,
    scope: Scope,
    attempt: AttemptId,
) -> Result<PullRequestRecord, DeliveryError> {
    let refused = |s: String| Err(DeliveryError::Refused(s));
    let attempt = store.get_attempt(scope, attempt).await?;
    let task = store.get_task(scope, attempt.task_id).await?;
    if attempt.state != AttemptState::Succeeded {
        return refused(format!(
            "attempt {} has not succeeded; deliver an attempt that did",
            attempt.id
        ));
    }
    let url = match RepositorySource::parse(&task.repository) {
        Ok(RepositorySource::Remote(url)) => url,
        _ => {
            return refused(
                "pull requests need a task whose repository is a forge URL (this one is a path on the server: use `errand apply` or the patch)".into(),
            );
        }
    };
    let Some(forge) = forges.for_url(&url) else {
        return refused(format!(
            "no forge is configured for {}: add a [[forges]] entry to errand.toml",
            url.host().unwrap_or("this repository")
        ));
    };
    let Some(remotes) = remotes else {
        return refused("this server has no mirrors configured".into());
    };
    let Some(repo_ref) = RepoRef::from_url(&url) else {
        return refused(format!(
            "{} does not name an owner/repository on the forge",
            url.display()
        ));
    };
    let base = task
        .base_commit
        .clone()
        .ok_or_else(|| DeliveryError::Refused("the task has no base commit".into()))?;
    let diff = store.get_artifact(scope, attempt.id, ArtifactKind::Diff).await?.unwrap_or_default();
    if diff.trim().is_empty() {
        return refused(format!(
            "attempt {} changed nothing: there is nothing to deliver",
            attempt.id
        ));
    }
    let report: Option<Report> = store
        .get_artifact(scope, attempt.id, ArtifactKind::Report)
        .await?
        .and_then(|json| serde_json::from_str(&json).ok());
    let title = report
        .as_ref()
        .map(|r| r.title.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| first_line(&task.prompt));

    // The commit, built in the mirror (which has the base commit).
    let failed =
        |what: &str, e: &dyn std::fmt::Display| DeliveryError::Failed(format!("{what}: {e}"));
    remotes.with_commit(&url, &base).await.map_err(DeliveryError::Failed)?;
    let mirror = remotes.mirror(&url);
    let credentials = remotes.credentials_for(&url);
    let message = format!(
        "{title}\n\n{}\n\nErrand {} ({})\n",
        report.as_ref().map(|r| r.description.trim()).unwrap_or(""),
        task.id,
        attempt.id
    );
    let commit = mirror
        .commit_patch(&base, &diff, &message)
        .await
        .map_err(|e| failed("cannot build the commit", &e))?;

    let existing = store.get_pull_request(scope, task.id).await?;
    let branch = existing
        .as_ref()
        .map(|r| r.branch.clone())
        .unwrap_or_else(|| format!("{}{}", forge.branch_prefix, task.id));
    let now = errand_store::now_ms();
    let mut record = PullRequestRecord {
        task_id: task.id,
        attempt_id: attempt.id,
        forge: forge.config.api_base.clone(),
        repository: repo_ref.to_string(),
        branch: branch.clone(),
        commit_id: commit.clone(),
        state: existing.as_ref().map_or("pushing".to_string(), |r| r.state.clone()),
        number: existing.as_ref().and_then(|r| r.number),
        url: existing.as_ref().and_then(|r| r.url.clone()),
        created_at_ms: now,
        updated_at_ms: now,
    };
    // Where the branch is decides how to push: absent, or where Errand left it (replaced under
    // a lease); anywhere else, someone else moved it and it is theirs.
    let on_remote = mirror
        .remote_branch(&credentials, &branch)
        .await
        .map_err(|e| failed("cannot read the remote's branches", &e))?;
    let expect = match (&on_remote, &existing) {
        (None, _) => BranchExpectation::Absent,
        (Some(head), Some(previous)) if *head == previous.commit_id => {
            BranchExpectation::At(head.clone())
        }
        (Some(head), _) => {
            return refused(format!(
                "branch {branch} exists on {} at {} and Errand did not put it there: rename it or set a different branch_prefix",
                url.display(),
                &head[..head.len().min(12)]
            ));
        }
    };
    if existing.is_none() {
        store.save_pull_request(&record).await?;
    }
    match mirror.push_branch(&credentials, &commit, &branch, expect).await {
        Ok(_) => {}
        Err(PushError::LeaseMismatch { .. } | PushError::BranchExists { .. }) => {
            return refused(format!(
                "branch {branch} changed on the remote while Errand pushed it; try again"
            ));
        }
        Err(e) => return Err(failed(&format!("cannot push {branch}"), &e)),
    }
    record.state = "pushed".into();
    store.save_pull_request(&record).await?;

    let client = ForgeClient::new(forge.config.clone())
        .map_err(|e| failed("the forge's configuration", &e))?;
    let body = pull_request_body(report.as_ref(), forge, &repo_ref, &commit, &task.prompt);
    let number = match record.number {
        Some(number) => Some(number as u64),
        // Opened before the record was: adopt it instead of opening a second.
        None => client
            .find_open_pull_request(&repo_ref, &branch)
            .await
            .map_err(|e| failed("cannot list the forge's pull requests", &e))?
            .map(|pr| pr.number),
    };
    let pull = match number {
        Some(number) => client
            .update_pull_request(&repo_ref, number, &title, &body)
            .await
            .map_err(|e| failed("cannot update the pull request", &e))?,
        None => {
            let base_branch = client
                .default_branch(&repo_ref)
                .await
                .map_err(|e| failed("cannot read the repository on the forge", &e))?;
            let base_branch = if task.git_ref != "HEAD" && !looks_like_commit(&task.git_ref) {
                task.git_ref.clone()
            } else {
                base_branch
            };
            client
                .open_pull_request(
                    &repo_ref,
                    &NewPullRequest {
                        title: title.clone(),
                        body,
                        head: branch.clone(),
                        base: base_branch,
                    },
                )
                .await
                .map_err(|e| failed("cannot open the pull request", &e))?
        }
    };
    record.state = "open".into();
    record.number = Some(pull.number as i64);
    record.url = Some(pull.url.clone());
    store.save_pull_request(&record).await?;
    tracing::info!(task_id = %task.id, attempt_id = %attempt.id, url = %pull.url, "delivered as a pull request");
    Ok(store.get_pull_request(scope, task.id).await?.unwrap_or(record))
}

fn looks_like_commit(git_ref: &str) -> bool {
    git_ref.len() >= 7 && git_ref.len() <= 64 && git_ref.bytes().all(|b| b.is_ascii_hexdigit())
}

fn first_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or("Errand");
    line.chars().take(72).collect()
}

/// The report as a pull request body: the description with every code citation a link to those
/// lines at the pushed commit on the forge, then the testing checklist.
fn pull_request_body(
    report: Option<&Report>,
    forge: &Forge,
    repo: &RepoRef,
    commit: &str,
    prompt: &str,
) -> String {
    let Some(report) = report else {
        return format!("Errand's attempt at:\n\n> {}\n", prompt.trim().replace('\n', "\n> "));
    };
    let mut markdown = report.to_markdown();
    // The title is the pull request's own.
    if let Some(rest) = markdown.strip_prefix(&format!("# {}\n\n", report.title)) {
        markdown = rest.to_string();
    }
    for citation in &report.citations {
        if citation.problem.is_some() {
            continue;
        }
        if let CitationTarget::Code { path, start, end } = &citation.target {
            let (start, end) = (
                u32::try_from(*start).unwrap_or(u32::MAX),
                u32::try_from(*end).unwrap_or(u32::MAX),
            );
            let link = citation_link(forge.kind, &forge.web_base, repo, commit, path, start, end);
            markdown = markdown.replace(&citation.raw, &format!("[{}]({link})", citation.raw));
        }
    }
    markdown
}

//! `errand task pull TASK[/ATTEMPT]`: an attempt as a local branch (`errand/<task id>` unless
//! `--branch`), one commit on the task's base commit with the attempt's diff and the report's
//! title and description as its message. The branch is made without touching the work tree or
//! the index; it is checked out when the work tree is clean, and otherwise named so the user
//! can switch when ready.

use anyhow::Context;
use errand_git::{GitError, Repo};
use errand_protocol::Report;
use serde::Serialize;

use super::http::ApiClient;
use super::target::{Purpose, pick};
use super::tasks::{first_line, print_json, resolve};

#[derive(Serialize)]
struct Pulled {
    task: String,
    attempt: String,
    branch: String,
    commit: String,
    base_commit: String,
    checked_out: bool,
}

pub async fn run(
    api: &ApiClient,
    target: &str,
    branch: Option<String>,
    force: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let (task, selector) = resolve(api, target).await?;
    let attempt = pick(&task, selector, Purpose::Result).map_err(anyhow::Error::msg)?[0];
    let name = format!("{}/{}", task.id, attempt.index);
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let repo = Repo::discover(&cwd).await.map_err(|e| {
        anyhow::anyhow!("{e}; run `errand task pull` inside a clone of the task's repository")
    })?;
    let base = task.base_commit.clone().context("the task has no base commit yet")?;
    if repo.resolve_commit(&base).await.is_err() {
        anyhow::bail!(
            "this repository does not have the task's base commit {base}: fetch it first (git fetch), then pull again"
        );
    }
    let diff = api.get_text(&format!("/api/attempts/{}/diff", attempt.id)).await?;
    let report: Option<Report> =
        api.get(&format!("/api/attempts/{}/report", attempt.id)).await.ok();
    let message = match &report {
        Some(report) if !report.title.trim().is_empty() => {
            format!(
                "{}\n\n{}\n\nErrand {name} ({})\n",
                report.title.trim(),
                report.description.trim(),
                attempt.id
            )
        }
        _ => format!("Errand {name}: {}\n", first_line(&task.prompt, 72)),
    };
    let commit = match repo.commit_patch(&base, &diff, &message).await {
        Ok(commit) => commit,
        Err(GitError::PatchDoesNotApply(problems)) => {
            anyhow::bail!(
                "the diff of {name} does not apply to its base commit {base}:\n{problems}"
            )
        }
        Err(e) => return Err(e.into()),
    };
    let branch = branch.unwrap_or_else(|| format!("errand/{}", task.id));
    let commit = match repo.resolve_commit(&format!("refs/heads/{branch}")).await {
        // Pulled before: the branch already holds exactly this attempt.
        Ok(existing)
            if repo.resolve_commit(&format!("{existing}^")).await.ok().as_deref()
                == Some(base.as_str())
                && repo.same_tree(&existing, &commit).await? =>
        {
            existing
        }
        Ok(existing) if !force => anyhow::bail!(
            "branch {branch} exists and points elsewhere ({}); pass --force to move it, or --branch NAME",
            &existing[..existing.len().min(12)]
        ),
        _ => {
            repo.set_branch(&branch, &commit, true).await?;
            commit
        }
    };
    let clean = repo.is_clean().await.unwrap_or(false);
    if clean {
        repo.switch(&branch).await?;
    }
    if json {
        print_json(&Pulled {
            task: task.id.to_string(),
            attempt: attempt.id.to_string(),
            branch,
            commit,
            base_commit: base,
            checked_out: clean,
        })?;
        return Ok(0);
    }
    let short = &commit[..12.min(commit.len())];
    if clean {
        println!("{name} is now branch {branch} ({short}), checked out");
    } else {
        println!("{name} is now branch {branch} ({short})");
        eprintln!(
            "your work tree has changes, so it stays as it is: `git switch {branch}` when ready"
        );
    }
    Ok(0)
}

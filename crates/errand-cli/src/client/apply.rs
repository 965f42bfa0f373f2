//! `errand apply TASK[/ATTEMPT] [--check]`: an attempt's diff onto the checkout containing the
//! current directory.
//!
//! The diff is applied all or nothing (errand-git `Repo::apply`, `git apply` without `--3way`):
//! either every hunk lands or no file is touched, and the hunks that do not apply are listed.
//! A local HEAD other than the task's base commit is not refused: a diff usually still applies
//! to a branch that moved on elsewhere, which is what someone who pulled since expects (Codex's
//! `codex apply` does not refuse either). It is said, so a conflict can be understood.

use anyhow::Context;
use errand_git::{GitError, Repo};
use serde::Serialize;

use super::ApplyArgs;
use super::http::ApiClient;
use super::target::{Purpose, pick};
use super::tasks::{print_json, resolve};
use crate::config::Config;

/// What `--json` prints.
#[derive(Serialize)]
struct Outcome<'a> {
    task: String,
    attempt: String,
    repository: String,
    check: bool,
    /// The diff applies (with `--check`) or was applied.
    applies: bool,
    /// Files the diff touches.
    files: Vec<String>,
    /// `git apply`'s words for each file and hunk that did not apply.
    conflicts: Vec<&'a str>,
    base_commit: Option<&'a str>,
    head: Option<&'a str>,
}

pub async fn run(args: ApplyArgs, config: Config) -> anyhow::Result<i32> {
    let api = ApiClient::from_config(&config)?;
    let (task, selector) = resolve(&api, &args.target).await?;
    let attempt = pick(&task, selector, Purpose::Result).map_err(anyhow::Error::msg)?[0];
    let name = format!("{}/{}", task.id, attempt.index);
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let repo = Repo::discover(&cwd).await.map_err(|e| {
        anyhow::anyhow!("{e}; run `errand apply` inside the checkout the diff is for")
    })?;
    let diff = api.get_text(&format!("/api/attempts/{}/diff", attempt.id)).await?;
    let files = changed_files(&diff);
    let head = repo.head_commit().await.ok();
    let base = task.base_commit.as_deref();
    let root = repo.root().display().to_string();

    let conflicts = match repo.apply(&diff, args.check).await {
        Ok(()) => String::new(),
        Err(GitError::PatchDoesNotApply(problems)) => problems,
        Err(e) => return Err(e.into()),
    };
    let applies = conflicts.is_empty();
    if args.json {
        print_json(&Outcome {
            task: task.id.to_string(),
            attempt: attempt.id.to_string(),
            repository: root,
            check: args.check,
            applies,
            files,
            conflicts: conflicts.lines().map(str::trim).collect(),
            base_commit: base,
            head: head.as_deref(),
        })?;
        return Ok(if applies { 0 } else { 1 });
    }

    if let (Some(head), Some(base)) = (&head, base)
        && head != base
    {
        let known = if repo.resolve_commit(base).await.is_ok() {
            ""
        } else {
            ", a commit this repository does not have (fetch it first to compare)"
        };
        eprintln!(
            "note: {name} was made against {}{known}; your HEAD is {}",
            short(base),
            short(head)
        );
    }
    if diff.trim().is_empty() {
        eprintln!("{name} ({}) changed nothing: there is nothing to apply", attempt.id);
        return Ok(0);
    }
    let listed = files.iter().map(|f| format!("  {f}")).collect::<Vec<_>>().join("\n");
    match (applies, args.check) {
        (true, true) => {
            println!(
                "the diff of {name} applies cleanly to {root} ({} file(s)):\n{listed}",
                files.len()
            );
            Ok(0)
        }
        (true, false) => {
            println!("applied the diff of {name} to {root} ({} file(s)):\n{listed}", files.len());
            Ok(0)
        }
        (false, check) => {
            let changed = if check { "" } else { "; nothing was changed" };
            println!("the diff of {name} does not apply to {root}{changed}:\n{conflicts}");
            eprintln!(
                "commit or stash your local changes to these files (or check out {}) and try again",
                base.map_or("the task's base commit", short)
            );
            Ok(1)
        }
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// The paths a `git diff` touches, in order, by their name after the change.
fn changed_files(diff: &str) -> Vec<String> {
    diff.lines()
        .filter_map(|line| line.strip_prefix("diff --git "))
        .filter_map(|names| {
            // `a/OLD b/NEW`; git quotes names with unusual characters, then the quotes stay.
            let at = names.rfind(" b/").or_else(|| names.rfind(" \"b/"))?;
            let new = names[at + 1..].trim_matches('"');
            Some(new.strip_prefix("b/").unwrap_or(new).to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_files_are_read_from_the_diff_headers() {
        let diff = "diff --git a/calc.py b/calc.py\nindex 1..2 100644\n--- a/calc.py\n+++ b/calc.py\n\
                    @@ -1 +1 @@\n-a\n+b\ndiff --git a/old name.txt b/new name.txt\nsimilarity index 100%\n\
                    diff --git \"a/t\\tab\" \"b/t\\tab\"\n";
        assert_eq!(changed_files(diff), vec!["calc.py", "new name.txt", "t\\tab"]);
        assert!(changed_files("").is_empty());
    }
}

//! `errand task …`: each subcommand is one or two API calls and a way to print the answer, as a
//! table or sentence for people and as one JSON document per line with `--json`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use errand_git::Repo;
use errand_protocol::api::{
    AttemptView, CancelRequest, CreateTask, FollowupRequest, MessageRequest, MessageView, TaskList,
    TaskMode, TaskView,
};
use errand_protocol::{AttemptState, Report};
use serde::Serialize;

use super::events::{Received, Reconnect, follow, read_stored};
use super::http::ApiClient;
use super::target::{AttemptSelector, Purpose, Target, listing, pick, state_word};
use super::{CreateArgs, TaskCommand};
use crate::render::HumanRenderer;

pub async fn run(api: &ApiClient, command: TaskCommand) -> anyhow::Result<i32> {
    match command {
        TaskCommand::Create(args) => create(api, args).await,
        TaskCommand::List { limit, json } => list(api, limit, json).await,
        TaskCommand::Show { task, json } => show(api, &task, json).await,
        TaskCommand::Logs { target, follow, json } => logs(api, &target, follow, json).await,
        TaskCommand::Diff { target, json } => diff(api, &target, json).await,
        TaskCommand::Cancel { target, json } => cancel(api, &target, json).await,
        TaskCommand::Followup { target, prompt, follow, json } => {
            followup(api, &target, prompt, follow, json).await
        }
        TaskCommand::Message { target, text, json } => message(api, &target, text, json).await,
        TaskCommand::Pr { target, json } => pull_request(api, &target, json).await,
        TaskCommand::Pick { target, json } => pick_attempt(api, &target, json).await,
        TaskCommand::Pull { target, branch, force, json } => {
            super::pull::run(api, &target, branch, force, json).await
        }
    }
}

async fn create(api: &ApiClient, args: CreateArgs) -> anyhow::Result<i32> {
    let (repository, git_ref) = repository_and_ref(args.repo.as_deref(), args.git_ref).await?;
    let request = CreateTask {
        repository,
        git_ref,
        environment: args.env,
        prompt: args.prompt,
        mode: if args.ask { TaskMode::Ask } else { TaskMode::Code },
        attempts: args.attempts,
    };
    let task: TaskView = api.post("/api/tasks", &request).await?;
    if args.json {
        print_json(&task)?;
    } else {
        println!("{}", task.id);
        let ids: Vec<String> = task.attempts.iter().map(|a| a.id.to_string()).collect();
        eprintln!(
            "created {} at {} ({}) with {} attempt(s): {}",
            task.id,
            task.git_ref,
            short(task.base_commit.as_deref().unwrap_or("?")),
            ids.len(),
            ids.join(", ")
        );
        if !args.follow {
            eprintln!("follow it with `errand task logs {} --follow`", task.id);
        }
    }
    if !args.follow {
        return Ok(0);
    }
    let first = pick(&task, None, Purpose::Log).map_err(anyhow::Error::msg)?[0];
    if task.attempts.len() > 1 && !args.json {
        eprintln!(
            "following attempt 0 of {}; the others: `errand task logs {}/INDEX --follow`",
            task.attempts.len(),
            task.id
        );
    }
    follow_attempt(api, &task, first, args.json).await
}

/// The repository and ref a new task names. A repository given with `--repo` that is a URL, or
/// not a git repository here, is passed on as is: the server mirrors a URL, and a path may be
/// on the server's machine.
async fn repository_and_ref(
    repo: Option<&Path>,
    git_ref: Option<String>,
) -> anyhow::Result<(String, Option<String>)> {
    if let Some(text) = repo.and_then(Path::to_str)
        && matches!(
            errand_server::remotes::RepositorySource::parse(text),
            Ok(errand_server::remotes::RepositorySource::Remote(_))
        )
    {
        return Ok((text.to_string(), git_ref));
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let local = match repo {
        Some(path) => match Repo::discover(&cwd.join(path)).await {
            Ok(local) => local,
            Err(_) if path.is_absolute() => {
                return Ok((path.display().to_string(), git_ref));
            }
            Err(e) => anyhow::bail!(
                "{e}; --repo takes a git repository here, or an absolute path on the server's machine"
            ),
        },
        None => Repo::discover(&cwd).await.map_err(|e| {
            anyhow::anyhow!("{e}; run this inside a git repository, or name one with --repo PATH")
        })?,
    };
    let root = absolute(local.root());
    if let Some(git_ref) = git_ref {
        return Ok((root.display().to_string(), Some(git_ref)));
    }
    let git_ref = match current_branch(local.root()).await {
        Some(branch) => branch,
        None => local.head_commit().await?,
    };
    if !local.is_clean().await.unwrap_or(true) {
        eprintln!(
            "note: uncommitted changes in {} are not part of the task; it starts from {git_ref} as committed",
            root.display()
        );
    }
    Ok((root.display().to_string(), Some(git_ref)))
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The checked-out branch, or `None` on a detached HEAD.
async fn current_branch(root: &Path) -> Option<String> {
    let output = tokio::process::Command::new("git")
        .args(["symbolic-ref", "--quiet", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .await
        .ok()?;
    let branch = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !branch.is_empty()).then_some(branch)
}

async fn list(api: &ApiClient, limit: u32, json: bool) -> anyhow::Result<i32> {
    let list: TaskList = api.get(&format!("/api/tasks?limit={limit}")).await?;
    if json {
        print_json(&list)?;
        return Ok(0);
    }
    if list.tasks.is_empty() {
        eprintln!("no tasks yet; start one with `errand task create \"what to do\"`");
        return Ok(0);
    }
    let now = now_ms();
    let rows: Vec<[String; 5]> = list
        .tasks
        .iter()
        .map(|task| {
            let states: Vec<&str> = task.attempts.iter().map(|a| state_word(a.state)).collect();
            [
                task.id.to_string(),
                json_word(&task.state),
                states.join(","),
                age(now - task.created_at_ms),
                first_line(&task.prompt, 60),
            ]
        })
        .collect();
    print_table(["TASK", "STATE", "ATTEMPTS", "AGE", "PROMPT"], &rows)?;
    Ok(0)
}

async fn show(api: &ApiClient, task: &str, json: bool) -> anyhow::Result<i32> {
    let (task, _) = resolve(api, task).await?;
    if json {
        print_json(&task)?;
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}  {}", task.id, json_word(&task.state))?;
    writeln!(
        out,
        "{} at {} ({}) · {} · created {} ago",
        task.repository,
        task.git_ref,
        short(task.base_commit.as_deref().unwrap_or("?")),
        task.mode,
        age(now_ms() - task.created_at_ms)
    )?;
    if let Some(environment) = &task.environment_id {
        writeln!(out, "environment {environment}")?;
    }
    writeln!(out, "\n  {}\n", task.prompt.trim().replace('\n', "\n  "))?;
    // Best first: the ranked (finished) attempts in rank order, then the rest by index.
    let rank_of = |id| task.ranking.iter().find(|r| r.attempt_id == id);
    let mut ordered: Vec<_> = task.attempts.iter().collect();
    ordered.sort_by_key(|a| (rank_of(a.id).map_or(u32::MAX, |r| r.rank), a.index));
    for attempt in ordered {
        let reason = attempt.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        writeln!(out, "{}  {}  {}{reason}", attempt.index, attempt.id, state_word(attempt.state))?;
        if let Some(ranked) = rank_of(attempt.id) {
            let best = if ranked.rank == 1 && task.ranking.len() > 1 { " (best)" } else { "" };
            writeln!(out, "   rank {}{best}: {}", ranked.rank, ranked.why)?;
        }
        if let Some(prompt) = &attempt.prompt {
            writeln!(out, "   follow-up: {}", first_line(prompt, 70))?;
        }
        if attempt.state.is_terminal()
            && let Ok(report) =
                api.get::<Report>(&format!("/api/attempts/{}/report", attempt.id)).await
        {
            writeln!(out, "   report: {}", report.title)?;
        }
    }
    Ok(0)
}

async fn logs(api: &ApiClient, target: &str, follow: bool, json: bool) -> anyhow::Result<i32> {
    let (task, selector) = resolve(api, target).await?;
    let attempt = pick(&task, selector, Purpose::Log).map_err(anyhow::Error::msg)?[0];
    if follow {
        return follow_attempt(api, &task, attempt, json).await;
    }
    let mut print = printer(json);
    read_stored(api, attempt.id, 0, &mut print).await?;
    Ok(0)
}

/// Prints the attempt's log from its start until it finishes; 0 if it succeeded, 1 if not.
async fn follow_attempt(
    api: &ApiClient,
    task: &TaskView,
    attempt: &AttemptView,
    json: bool,
) -> anyhow::Result<i32> {
    let mut print = printer(json);
    let outcome = follow(api, attempt.id, 0, &Reconnect::default(), &mut print).await?;
    let succeeded = outcome.state == AttemptState::Succeeded;
    if !json {
        let name = format!("{}/{}", task.id, attempt.index);
        if succeeded {
            eprintln!("✓ {name} succeeded: `errand task diff {name}`, `errand apply {name}`");
        } else {
            eprintln!("✗ {name} {}: {}", state_word(outcome.state), outcome.reason);
        }
    }
    Ok(if succeeded { 0 } else { 1 })
}

/// Prints each event: rendered like `errand exec` does, or as its JSON line.
fn printer(json: bool) -> impl FnMut(Received<'_>) -> anyhow::Result<()> {
    let mut renderer = HumanRenderer::default();
    move |received| {
        let mut out = std::io::stdout().lock();
        if json {
            writeln!(out, "{}", received.json)?;
        } else if let Some(event) = received.event {
            renderer.render(event, &mut out)?;
        }
        out.flush()?;
        Ok(())
    }
}

async fn diff(api: &ApiClient, target: &str, json: bool) -> anyhow::Result<i32> {
    let (task, selector) = resolve(api, target).await?;
    let attempt = pick(&task, selector, Purpose::Result).map_err(anyhow::Error::msg)?[0];
    let diff = api.get_text(&format!("/api/attempts/{}/diff", attempt.id)).await?;
    if json {
        print_json(&serde_json::json!({ "attempt": attempt.id, "diff": diff }))?;
    } else if diff.is_empty() {
        eprintln!("{}/{} ({}) changed nothing", task.id, attempt.index, attempt.id);
    } else {
        print!("{diff}");
    }
    Ok(0)
}

async fn cancel(api: &ApiClient, target: &str, json: bool) -> anyhow::Result<i32> {
    let (task, selector) = resolve(api, target).await?;
    let body = CancelRequest { reason: Some("by `errand task cancel`".into()) };
    let task = match selector {
        None => api.post::<_, TaskView>(&format!("/api/tasks/{}/cancel", task.id), &body).await?,
        Some(_) => {
            let attempt = pick(&task, selector, Purpose::All).map_err(anyhow::Error::msg)?[0];
            let _: AttemptView =
                api.post(&format!("/api/attempts/{}/cancel", attempt.id), &body).await?;
            api.get(&format!("/api/tasks/{}", task.id)).await?
        }
    };
    if json {
        print_json(&task)?;
    } else {
        println!("{}  {}\n{}", task.id, json_word(&task.state), listing(&task));
        let held =
            |a: &AttemptView| matches!(a.state, AttemptState::Preparing | AttemptState::Running);
        if task.attempts.iter().any(held) {
            eprintln!("running attempts stop at their worker's next heartbeat");
        }
    }
    Ok(0)
}

async fn followup(
    api: &ApiClient,
    target: &str,
    prompt: String,
    follow: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let (task, selector) = resolve(api, target).await?;
    let parent = pick(&task, selector, Purpose::Result).map_err(anyhow::Error::msg)?[0];
    let attempt: AttemptView = api
        .post(&format!("/api/attempts/{}/followup", parent.id), &FollowupRequest { prompt })
        .await?;
    if json {
        print_json(&attempt)?;
    } else {
        let name = format!("{}/{}", task.id, attempt.index);
        println!("{name}");
        eprintln!("{name} ({}) continues {}/{}", attempt.id, task.id, parent.index);
        if !follow {
            eprintln!("follow it with `errand task logs {name} --follow`");
        }
    }
    if !follow {
        return Ok(0);
    }
    follow_attempt(api, &task, &attempt, json).await
}

async fn message(api: &ApiClient, target: &str, text: String, json: bool) -> anyhow::Result<i32> {
    let (task, selector) = resolve(api, target).await?;
    let attempt = pick(&task, selector, Purpose::Message).map_err(anyhow::Error::msg)?[0];
    let sent: MessageView = api
        .post(&format!("/api/attempts/{}/messages", attempt.id), &MessageRequest { text })
        .await?;
    if json {
        print_json(&sent)?;
    } else {
        eprintln!(
            "message {} queued for {}/{}; the agent reads it at its next turn",
            sent.id, task.id, attempt.index
        );
    }
    Ok(0)
}

async fn pick_attempt(api: &ApiClient, target: &str, json: bool) -> anyhow::Result<i32> {
    let (task, selector) = resolve(api, target).await?;
    let Some(selector) = selector else {
        anyhow::bail!(
            "name the attempt to pick: `{}/INDEX`; its attempts are:\n{}",
            task.id,
            super::target::listing(&task)
        );
    };
    let attempt = pick(&task, Some(selector), Purpose::Result).map_err(anyhow::Error::msg)?[0];
    let picked: TaskView = api
        .post(
            &format!("/api/tasks/{}/pick", task.id),
            &errand_protocol::api::PickRequest { attempt: attempt.id },
        )
        .await?;
    if json {
        print_json(&picked)?;
    } else {
        eprintln!(
            "{}/{} is the task's pick: `errand apply {}` and `errand task pr {}` take it",
            task.id, attempt.index, task.id, task.id
        );
    }
    Ok(0)
}

async fn pull_request(api: &ApiClient, target: &str, json: bool) -> anyhow::Result<i32> {
    let (task, selector) = resolve(api, target).await?;
    let attempt = pick(&task, selector, Purpose::Result).map_err(anyhow::Error::msg)?[0];
    let pull: errand_protocol::api::PullRequestView = api
        .post(&format!("/api/attempts/{}/pull-request", attempt.id), &serde_json::json!({}))
        .await?;
    if json {
        print_json(&pull)?;
    } else {
        match (&pull.url, pull.number) {
            (Some(url), Some(number)) => {
                println!("{url}");
                eprintln!(
                    "pull request #{number} on {} carries {}/{} (branch {})",
                    pull.repository, task.id, attempt.index, pull.branch
                );
            }
            _ => eprintln!("branch {} pushed; the pull request is not open yet", pull.branch),
        }
    }
    Ok(0)
}

/// The task a target names, and the attempt it names, if any.
pub(super) async fn resolve(
    api: &ApiClient,
    target: &str,
) -> anyhow::Result<(TaskView, Option<AttemptSelector>)> {
    match Target::parse(target).map_err(anyhow::Error::msg)? {
        Target::Task { task, attempt } => {
            Ok((api.get(&format!("/api/tasks/{task}")).await?, attempt))
        }
        Target::Attempt(id) => {
            let attempt: AttemptView = api.get(&format!("/api/attempts/{id}")).await?;
            let task = api.get(&format!("/api/tasks/{}", attempt.task_id)).await?;
            Ok((task, Some(AttemptSelector::Id(id))))
        }
    }
}

/// One JSON document on one line.
pub(super) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// An enum as its JSON spelling (`succeeded`, `timed_out`).
fn json_word(value: &impl Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default()
}

fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> std::io::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> =
            cells.iter().zip(widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        padded.join("  ").trim_end().to_string()
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

pub(super) fn first_line(text: &str, max: usize) -> String {
    let line = text.trim().lines().next().unwrap_or_default();
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max - 1).collect::<String>())
    } else {
        line.to_string()
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// A duration in milliseconds as people say it: `40 s`, `5 min`, `3 h`, `2 d`.
fn age(ms: i64) -> String {
    let secs = (ms / 1000).max(0);
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86_400),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_first_lines_read_well() {
        let cases =
            [(0, "0 s"), (59_999, "59 s"), (60_000, "1 min"), (7_200_000, "2 h"), (-5, "0 s")];
        for (ms, expected) in cases {
            assert_eq!(age(ms), expected, "{ms}");
        }
        assert_eq!(age(3 * 86_400_000), "3 d");
        assert_eq!(first_line("  fix it\nand more", 60), "fix it");
        assert_eq!(first_line("abcdef", 4), "abc…");
        assert_eq!(json_word(&AttemptState::TimedOut), "timed_out");
    }
}

//! An attempt's final diff in a large repository against `git diff` over the same checkout.
//!
//! The repository: `files` small source files, 100 per directory (`src/mod0000/file000.rs` …;
//! 100,000 files are 1,000 directories), plus a `.gitignore`, in one commit written with
//! `git fast-import` (a pack, as a cloned repository has) and checked out. It is generated once
//! under the cache directory and reused by later rounds and runs; so is the attempt's lower
//! checkout (the sandbox's data directory lives there too).
//!
//! The attempt changes 10 files inside the sandbox: modifies 7, deletes 1, adds 2, spread over
//! the tree. [`Sandbox::diff`] then reads only the upper layer (10 entries and their
//! directories) and lets git write the patch. The baseline applies the same 10 changes to the
//! generated repository's own working copy and runs `git diff` there (which must `lstat` every
//! tracked file), and `git status --porcelain` as a second baseline (which also looks for
//! untracked files). Each is run once untimed to warm the caches, then `rounds` times,
//! interleaved. The working copy is restored afterwards (and before, should a run have been
//! interrupted).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::{Stats, stats, unique};
use crate::{ExecRequest, LocalSandbox, LocalSandboxConfig, Sandbox, SandboxError};

/// What [`diff_bench`] measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffBenchOptions {
    /// Files in the generated repository (at least 100).
    pub files: usize,
    /// Timed runs of each diff.
    pub rounds: usize,
    /// Where the generated repository and the sandbox's checkouts are kept between runs.
    pub cache_dir: PathBuf,
}

/// The result of [`diff_bench`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffBench {
    /// Tracked files in the repository (the generated ones and the `.gitignore`).
    pub tracked_files: usize,
    /// How long generating the repository took, when this run generated it.
    pub generated_in: Option<Duration>,
    /// Creating the attempt, including the lower checkout when it was not cached yet.
    pub attempt_created_in: Duration,
    /// Whether the lower checkout had to be made by this run.
    pub checkout_was_cached: bool,
    /// Files the sandbox's diff reports (10 expected).
    pub changed_files: usize,
    pub patch_bytes: usize,
    pub git_diff_bytes: usize,
    pub sandbox_diff: Stats,
    pub git_diff: Stats,
    pub git_status: Stats,
}

/// Generates (or reuses) the repository, changes 10 files in an attempt over it and in its
/// working copy, and times the attempt's diff against `git diff` and `git status --porcelain`.
pub async fn diff_bench(
    config: &LocalSandboxConfig,
    options: &DiffBenchOptions,
) -> Result<DiffBench, SandboxError> {
    if options.files < 100 {
        return Err(SandboxError::Setup(format!(
            "the diff benchmark needs at least 100 files, not {}",
            options.files
        )));
    }
    let rounds = options.rounds.max(1);
    let repo = options.cache_dir.join(format!("repo-{}", options.files));
    let generated_in = generate_once(&repo, options.files).await?;
    let changes = TenChanges::new(options.files);
    changes.restore(&repo).await?;

    let config = LocalSandboxConfig { data_dir: options.cache_dir.join("data"), ..config.clone() };
    let commit =
        String::from_utf8_lossy(&git(&repo, &["rev-parse", "HEAD"]).await?).trim().to_string();
    let checkout_was_cached = config.data_dir.join("checkouts").join(&commit).is_dir();
    let attempt = format!("diff-{}-{}", std::process::id(), unique());
    let started = Instant::now();
    let sandbox = LocalSandbox::create(&config, &repo, &commit, &attempt).await?;
    let attempt_created_in = started.elapsed();

    let result = measure(&sandbox, &repo, &changes, rounds).await;
    let restored = changes.restore(&repo).await;
    sandbox.destroy().await?;
    let mut bench = result?;
    restored?;
    bench.tracked_files = options.files + 1;
    bench.generated_in = generated_in;
    bench.attempt_created_in = attempt_created_in;
    bench.checkout_was_cached = checkout_was_cached;
    Ok(bench)
}

async fn measure(
    sandbox: &LocalSandbox,
    repo: &Path,
    changes: &TenChanges,
    rounds: usize,
) -> Result<DiffBench, SandboxError> {
    let request = ExecRequest {
        command: vec!["sh".into(), "-c".into(), changes.script()],
        workdir: String::new(),
        timeout: Duration::from_secs(60),
        env: Vec::new(),
        stdin: None,
    };
    let mut output = Vec::new();
    let outcome = sandbox.exec(request, &mut |chunk| output.extend_from_slice(chunk)).await?;
    if !outcome.success() {
        return Err(SandboxError::Exec(format!(
            "changing the 10 files in the sandbox failed ({outcome:?}): {}",
            String::from_utf8_lossy(&output)
        )));
    }
    changes.apply(repo).await?;

    // Warm the caches (and check what each sees) once, untimed.
    let diff = sandbox.diff().await?;
    if diff.files.len() != 10 {
        return Err(SandboxError::Diff(format!(
            "the attempt changed 10 files but its diff lists {}: {:?}",
            diff.files.len(),
            diff.files.iter().map(|f| &f.path).collect::<Vec<_>>()
        )));
    }
    let git_diff_bytes = git(repo, &["diff"]).await?.len();
    git(repo, &["status", "--porcelain"]).await?;

    let (mut ours, mut git_diffs, mut statuses) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        sandbox.diff().await?;
        ours.push(started.elapsed());
        let started = Instant::now();
        git(repo, &["diff"]).await?;
        git_diffs.push(started.elapsed());
        let started = Instant::now();
        git(repo, &["status", "--porcelain"]).await?;
        statuses.push(started.elapsed());
    }
    Ok(DiffBench {
        tracked_files: 0,
        generated_in: None,
        attempt_created_in: Duration::ZERO,
        checkout_was_cached: false,
        changed_files: diff.files.len(),
        patch_bytes: diff.patch.len(),
        git_diff_bytes,
        sandbox_diff: stats(&ours)?,
        git_diff: stats(&git_diffs)?,
        git_status: stats(&statuses)?,
    })
}

/// The path of generated file `i`: 100 files per directory.
fn file_path(i: usize) -> String {
    format!("src/mod{:04}/file{:03}.rs", i / 100, i % 100)
}

/// A few lines of plausible source, different in every file.
fn file_contents(i: usize) -> String {
    format!(
        "//! Module {i}.\n\nuse crate::shared::Value;\n\n/// Returns the value of item {i}.\n\
         pub fn item_{i}(input: Value) -> Value {{\n    let base = {i};\n    input.scale(base)\n}}\n\n\
         #[cfg(test)]\nmod tests {{\n    #[test]\n    fn item_{i}_scales() {{}}\n}}\n"
    )
}

const GITIGNORE: &str = "/target/\n*.log\n";
/// Written into `.git` when the repository is complete; without it a directory left by an
/// interrupted generation is removed and made again.
const COMPLETE_MARK: &str = ".git/errand-bench-complete";

/// Makes the repository at `repo` unless a complete one is there; returns how long making took.
async fn generate_once(repo: &Path, files: usize) -> Result<Option<Duration>, SandboxError> {
    if repo.join(COMPLETE_MARK).is_file() {
        return Ok(None);
    }
    let started = Instant::now();
    if repo.exists() {
        let stale = repo.to_path_buf();
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(stale))
            .await
            .map_err(|e| {
                SandboxError::Setup(format!("removing a partial repository stopped: {e}"))
            })?
            .map_err(|source| io(format!("cannot remove {}", repo.display()), source))?;
    }
    tokio::fs::create_dir_all(repo)
        .await
        .map_err(|source| io(format!("cannot create {}", repo.display()), source))?;
    git(repo, &["init", "-q", "-b", "main"]).await?;
    let stream = tokio::task::spawn_blocking(move || fast_import_stream(files))
        .await
        .map_err(|e| SandboxError::Setup(format!("writing the import stream stopped: {e}")))?;
    let mut import = tokio::process::Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(repo)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| io("cannot run git fast-import".into(), source))?;
    let mut stdin = import.stdin.take().ok_or_else(|| {
        SandboxError::Setup("git fast-import was started without a stdin pipe".into())
    })?;
    stdin
        .write_all(&stream)
        .await
        .map_err(|source| io("cannot feed git fast-import".into(), source))?;
    drop(stdin);
    let status = import
        .wait()
        .await
        .map_err(|source| io("git fast-import did not finish".into(), source))?;
    if !status.success() {
        return Err(SandboxError::Setup(format!("git fast-import failed: {status}")));
    }
    git(repo, &["reset", "--hard", "-q"]).await?;
    // git(1) "racy git": files written in the same second as the index are re-read on every
    // `git diff` until the index is rewritten later. Let the clock pass that second, then
    // refresh, so the baseline sees a settled working copy as a user's would be.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    git(repo, &["update-index", "-q", "--really-refresh"]).await?;
    tokio::fs::write(repo.join(COMPLETE_MARK), b"")
        .await
        .map_err(|source| io("cannot mark the repository complete".into(), source))?;
    Ok(Some(started.elapsed()))
}

/// One commit of `files` generated files and a `.gitignore`, with fixed dates so the same size
/// always gives the same commit id (and reuses the same cached checkout).
fn fast_import_stream(files: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(files * 400);
    let message = "A generated repository for errand bench sandbox\n";
    out.extend_from_slice(
        format!(
            "commit refs/heads/main\nauthor Errand Bench <bench@errand.invalid> 1700000000 +0000\n\
             committer Errand Bench <bench@errand.invalid> 1700000000 +0000\ndata {}\n{message}",
            message.len()
        )
        .as_bytes(),
    );
    let mut inline = |path: &str, contents: &str| {
        out.extend_from_slice(
            format!("M 100644 inline {path}\ndata {}\n{contents}\n", contents.len()).as_bytes(),
        );
    };
    inline(".gitignore", GITIGNORE);
    for i in 0..files {
        inline(&file_path(i), &file_contents(i));
    }
    out
}

/// The attempt's 10 changes, spread over the tree: 7 files modified, 1 deleted, 2 added.
struct TenChanges {
    modified: Vec<String>,
    deleted: String,
    added: Vec<String>,
}

impl TenChanges {
    fn new(files: usize) -> TenChanges {
        // Distinct for files >= 100: k * files / 10 are 10 apart at least.
        let pick = |k: usize| (k * files / 10 + 37) % files;
        let added = |k: usize| {
            let i = pick(k);
            format!("src/mod{:04}/added{k}.rs", i / 100)
        };
        TenChanges {
            modified: (0..7).map(|k| file_path(pick(k))).collect(),
            deleted: file_path(pick(7)),
            added: vec![added(8), added(9)],
        }
    }

    /// The shell script making the changes inside the sandbox (paths need no quoting).
    fn script(&self) -> String {
        let mut script = String::from("set -e\n");
        for path in &self.modified {
            script.push_str(&format!("printf '// changed by the attempt\\n' >> {path}\n"));
        }
        script.push_str(&format!("rm {}\n", self.deleted));
        for path in &self.added {
            script.push_str(&format!("printf 'pub fn added() {{}}\\n' > {path}\n"));
        }
        script
    }

    /// The same changes in a plain working copy.
    async fn apply(&self, repo: &Path) -> Result<(), SandboxError> {
        for path in &self.modified {
            let file = repo.join(path);
            let mut contents = tokio::fs::read(&file)
                .await
                .map_err(|source| io(format!("cannot read {}", file.display()), source))?;
            contents.extend_from_slice(b"// changed by the attempt\n");
            write(&file, &contents).await?;
        }
        let deleted = repo.join(&self.deleted);
        tokio::fs::remove_file(&deleted)
            .await
            .map_err(|source| io(format!("cannot remove {}", deleted.display()), source))?;
        for path in &self.added {
            write(&repo.join(path), b"pub fn added() {}\n").await?;
        }
        Ok(())
    }

    /// Undoes [`TenChanges::apply`] (harmless when nothing was applied).
    async fn restore(&self, repo: &Path) -> Result<(), SandboxError> {
        for path in &self.added {
            match tokio::fs::remove_file(repo.join(path)).await {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(format!("cannot remove {path}"), error));
                }
                _ => {}
            }
        }
        let mut args = vec!["checkout", "-q", "HEAD", "--"];
        args.extend(self.modified.iter().map(String::as_str));
        args.push(&self.deleted);
        git(repo, &args).await.map(drop)
    }
}

async fn write(file: &Path, contents: &[u8]) -> Result<(), SandboxError> {
    tokio::fs::write(file, contents)
        .await
        .map_err(|source| io(format!("cannot write {}", file.display()), source))
}

/// Runs git in `repo` as a user would (their configuration applies); its stdout on success.
async fn git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, SandboxError> {
    let output = tokio::process::Command::new("git")
        .args(args)
        .current_dir(repo)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|source| io(format!("cannot run git {}", args.join(" ")), source))?;
    if !output.status.success() {
        return Err(SandboxError::Setup(format!(
            "git {} failed in {}: {}",
            args.join(" "),
            repo.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(output.stdout)
}

fn io(context: String, source: std::io::Error) -> SandboxError {
    SandboxError::Io { context, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ten_changes_are_distinct_files_of_the_repository() {
        for files in [100, 1000, 100_000] {
            let changes = TenChanges::new(files);
            let mut all: Vec<&String> =
                changes.modified.iter().chain([&changes.deleted]).chain(&changes.added).collect();
            all.sort();
            all.dedup();
            assert_eq!(all.len(), 10, "{files} files");
            let last_dir = format!("src/mod{:04}", (files - 1) / 100);
            assert!(all.iter().all(|p| p.as_str() <= format!("{last_dir}/~").as_str()), "{files}");
        }
        assert_eq!(file_path(12_345), "src/mod0123/file045.rs");
    }
}

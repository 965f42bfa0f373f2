//! `errand env …`: environments as stored configuration, and the lookup behind
//! `errand exec --env NAME`.
//!
//! An environment is stored as JSON: the environment file (the format `errand exec --env FILE`
//! reads) as [`errand_sandbox::stored_document`] checks it for every client (this one, the HTTP
//! API), with every default written out. Secrets keep
//! the form the file gave them: a `{ env = "VARIABLE" }` reference is stored as the reference and
//! resolved from the environment of the process that uses it; a value written in the file is
//! stored in the database (docs/security.md). Nothing here prints a secret value: `list`, `show`
//! and `--json` show `[secret]` in its place.
//!
//! Users: until the service hands out tokens, the CLI acts as one built-in local user named
//! after `$USER` (else `local`), created in the store on first use.
//!
//! The store is opened only by the commands that need it (`env …`, and `exec --env NAME`), so
//! `exec` with a file, `apply-patch`, `bench` and `models` never create a database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use errand_protocol::Event;
use errand_sandbox::{EnvironmentSpec, SECRET_SHOWN_AS, redacted_document, resolve_document};
use errand_store::{ConflictKind, Environment, EnvironmentId, Store, StoreError, User, UserId};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::Config;

mod document;
mod shell;

use document::read_file;
pub(crate) use document::spec_from_toml;

#[derive(Debug, clap::Subcommand)]
pub enum EnvCommand {
    /// Store an environment file (the format `errand exec --env FILE` reads) under a name.
    Create {
        name: String,
        #[arg(long, value_name = "FILE.toml")]
        file: PathBuf,
    },
    /// The stored environments (secret values are never shown).
    List {
        #[arg(long)]
        json: bool,
    },
    /// One environment's configuration, every secret value shown as `[secret]`.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Replace an environment's configuration with a file's.
    Update {
        name: String,
        #[arg(long, value_name = "FILE.toml")]
        file: PathBuf,
    },
    /// Delete an environment (refused while tasks use it).
    Rm { name: String },
    /// The most recent setup or maintenance log of an environment (secrets redacted).
    Logs {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// An interactive shell in a fresh sandbox of the environment at HEAD, as its setup script
    /// sees it (network, variables, secrets), for debugging setup. Nothing is kept.
    Shell(shell::ShellArgs),
}

pub async fn run(command: EnvCommand, config: Config) -> anyhow::Result<i32> {
    if let EnvCommand::Shell(args) = command {
        // Opens the store only for a stored environment's name.
        return shell::run(args, &config).await;
    }
    // Read and check the file before the store is opened: a bad file creates nothing.
    let document = match &command {
        EnvCommand::Create { file, .. } | EnvCommand::Update { file, .. } => Some(read_file(file)?),
        _ => None,
    };
    let local = LocalUser::open(&config).await?;
    let (store, user) = (&*local.store, local.user.id);
    match command {
        EnvCommand::Shell(_) => unreachable!("handled before the store opens"),
        EnvCommand::Create { name, .. } => {
            check_name(&name)?;
            let config_json = document.unwrap_or_default();
            let env = store.create_environment(user, &name, &config_json).await.map_err(|e| {
                match e {
                    StoreError::Conflict { kind: ConflictKind::AlreadyExists, .. } => anyhow::anyhow!(
                        "an environment named `{name}` already exists; change it with `errand env update {name} --file …`"
                    ),
                    e => e.into(),
                }
            })?;
            eprintln!("created environment `{name}` ({})", short_hash(&env.config_hash));
        }
        EnvCommand::Update { name, .. } => {
            let env = by_name(store, user, &name).await?;
            let config_json = document.unwrap_or_default();
            let updated = store.update_environment(user, env.id, &config_json).await?;
            eprintln!("updated environment `{name}` ({})", short_hash(&updated.config_hash));
        }
        EnvCommand::Rm { name } => {
            let env = by_name(store, user, &name).await?;
            store.delete_environment(user, env.id).await.map_err(|e| match e {
                StoreError::Conflict { kind: ConflictKind::InUse, .. } => anyhow::anyhow!(
                    "environment `{name}` is used by tasks, which keep their history; it cannot be deleted"
                ),
                e => e.into(),
            })?;
            eprintln!("deleted environment `{name}`");
        }
        EnvCommand::List { json } => {
            let summaries: Vec<Summary> =
                store.list_environments(user).await?.iter().map(Summary::of).collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&summaries)?);
            } else if summaries.is_empty() {
                eprintln!(
                    "no environments yet; store one with `errand env create NAME --file env.toml`"
                );
            } else {
                println!(
                    "{:<24} {:<12} {:<17} {:<6} {:<12} SECRETS",
                    "NAME", "HASH", "UPDATED (UTC)", "SETUP", "MAINTENANCE"
                );
                for s in &summaries {
                    println!(
                        "{:<24} {:<12} {:<17} {:<6} {:<12} {}",
                        s.name,
                        short_hash(&s.config_hash),
                        utc_minutes(s.updated_at_ms),
                        yes_no(s.setup_script),
                        yes_no(s.maintenance_script),
                        s.secrets
                    );
                }
            }
        }
        EnvCommand::Show { name, json } => {
            let env = by_name(store, user, &name).await?;
            let config = redacted_document(&env.config_json)?;
            if json {
                let shown = serde_json::json!({
                    "name": env.name,
                    "id": env.id,
                    "config_hash": env.config_hash,
                    "created_at_ms": env.created_at_ms,
                    "updated_at_ms": env.updated_at_ms,
                    "config": config,
                });
                println!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                println!(
                    "# environment `{}` ({}), updated {} UTC",
                    env.name,
                    env.id,
                    utc_minutes(env.updated_at_ms)
                );
                println!("# secret values are shown as \"{SECRET_SHOWN_AS}\"");
                let table = toml::Value::try_from(Value::Object(config))
                    .context("cannot show the configuration as TOML")?;
                print!("{}", toml::to_string_pretty(&table)?);
            }
        }
        EnvCommand::Logs { name, json } => {
            let env = by_name(store, user, &name).await?;
            let Some(log) = store.environment_logs(user, env.id, 1).await?.into_iter().next()
            else {
                eprintln!(
                    "environment `{name}` has no setup log yet; `errand exec --env {name} …` runs its setup"
                );
                return Ok(if json { print_json(&Value::Null)? } else { 0 });
            };
            if json {
                print_json(&serde_json::to_value(&log)?)?;
            } else {
                let status =
                    log.exit_code.map_or("was killed".to_string(), |c| format!("exited {c}"));
                eprintln!(
                    "{} of `{name}` at {} UTC (snapshot {}): {status} after {:.1} s",
                    log.phase,
                    utc_minutes(log.created_at_ms),
                    log.snapshot.as_deref().unwrap_or("-"),
                    log.duration_ms as f64 / 1000.0
                );
                print!("{}", log.content);
            }
        }
    }
    Ok(0)
}

fn print_json(value: &Value) -> anyhow::Result<i32> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(0)
}

/// The store and the built-in local user the CLI acts as.
struct LocalUser {
    store: Arc<dyn Store>,
    user: User,
}

impl LocalUser {
    async fn open(config: &Config) -> anyhow::Result<LocalUser> {
        let store = crate::service::open_store(&config.store_url()).await?;
        let user = crate::service::local_user(&*store).await?;
        Ok(LocalUser { store, user })
    }
}

async fn by_name(store: &dyn Store, user: UserId, name: &str) -> anyhow::Result<Environment> {
    store.environment_by_name(user, name).await.map_err(|e| match e {
        StoreError::NotFound(_) => {
            anyhow::anyhow!("no environment named `{name}`; see `errand env list`")
        }
        e => e.into(),
    })
}

/// Names are what `errand exec --env` tells apart from file paths: no `/`, no `.`.
fn check_name(name: &str) -> anyhow::Result<()> {
    if !is_name(name) {
        bail!(
            "`{name}` is not an environment name: use letters, digits, `-` and `_` (at most 64, starting with a letter or digit)"
        );
    }
    Ok(())
}

fn is_name(name: &str) -> bool {
    errand_sandbox::is_environment_name(name)
}

/// One line of `errand env list`.
#[derive(Debug, Serialize)]
struct Summary {
    name: String,
    id: EnvironmentId,
    config_hash: String,
    created_at_ms: i64,
    updated_at_ms: i64,
    setup_script: bool,
    maintenance_script: bool,
    /// How many secrets; never their values.
    secrets: usize,
}

impl Summary {
    fn of(env: &Environment) -> Summary {
        // The redacted view has every key of the stored one; a damaged row lists as empty.
        let document = redacted_document(&env.config_json).unwrap_or_default();
        let has = |key: &str| document.get(key).is_some_and(Value::is_string);
        Summary {
            name: env.name.clone(),
            id: env.id,
            config_hash: env.config_hash.clone(),
            created_at_ms: env.created_at_ms,
            updated_at_ms: env.updated_at_ms,
            setup_script: has("setup_script"),
            maintenance_script: has("maintenance_script"),
            secrets: document.get("secrets").and_then(Value::as_object).map_or(0, Map::len),
        }
    }
}

/// A stored environment `errand exec --env NAME` uses: where its setup logs go.
pub struct StoredUse {
    local: LocalUser,
    id: EnvironmentId,
    secrets: BTreeMap<String, String>,
}

/// What `errand exec --env ARG` names: an existing file (read as always), else a stored
/// environment of that name. Only the second opens the store.
pub async fn for_exec(
    arg: Option<&Path>,
    config: &Config,
) -> anyhow::Result<(Option<EnvironmentSpec>, Option<StoredUse>)> {
    let Some(arg) = arg else { return Ok((None, None)) };
    let name = arg.to_str().filter(|name| is_name(name));
    let Some(name) = name.filter(|_| !arg.exists()) else {
        return Ok((Some(crate::exec::load_environment(arg)?), None));
    };
    let local = LocalUser::open(config).await?;
    let env = by_name(&*local.store, local.user.id, name)
        .await
        .with_context(|| format!("--env {name}: there is no such file either"))?;
    let spec = resolve_document(name, &env.config_json, &|var| std::env::var(var).ok())?;
    let secrets = spec.secrets.clone();
    Ok((Some(spec), Some(StoredUse { local, id: env.id, secrets })))
}

/// Saves the setup and maintenance runs among `events` as the stored environment's logs
/// (redacted once more with its secrets). A failure to save is reported, not fatal: the
/// attempt itself does not depend on it.
pub async fn save_setup_logs(stored: Option<&StoredUse>, events: &[Event]) {
    let Some(stored) = stored else { return };
    for log in errand_server::environment_logs(events, &stored.secrets) {
        let saved = stored.local.store.add_environment_log(stored.local.user.id, stored.id, log);
        if let Err(e) = saved.await {
            eprintln!("warning: could not store the environment's setup log: {e}");
        }
    }
}

fn short_hash(hash: &str) -> &str {
    &hash[..12.min(hash.len())]
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// `YYYY-MM-DD HH:MM` in UTC (days to civil date: Howard Hinnant's `civil_from_days`).
fn utc_minutes(ms: i64) -> String {
    let minutes = ms.div_euclid(60_000);
    let (days, minute_of_day) = (minutes.div_euclid(1440), minutes.rem_euclid(1440));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_helpers() {
        for good in ["web", "py-3_12", "A1"] {
            assert!(is_name(good), "{good}");
        }
        for bad in ["", "-x", "env.toml", "a/b", "./x", &"x".repeat(65)] {
            assert!(!is_name(bad), "{bad}");
        }
        assert_eq!(utc_minutes(0), "1970-01-01 00:00");
        assert_eq!(utc_minutes(1_709_210_096_000), "2024-02-29 12:34");
    }
}

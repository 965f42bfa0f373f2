//! `errand serve`, `errand worker` and `errand user`: the service's processes and its operator
//! commands. The logic lives in errand-server; this wires it to the configuration.
//!
//! `errand serve` alone is the embedded default (design: "Embedded by default, distributed when
//! needed"): the API and in-process workers over a SQLite file in the data directory. It also
//! makes sure the local user exists and has a token in `<data_dir>/token`, which the client
//! commands on this machine use when no other token is given. With PostgreSQL, several `errand
//! serve` replicas and any number of `errand worker` processes share one database.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use errand_sandbox::LocalSandboxConfig;
use errand_server::Worker;
use errand_server::api::{AppState, serve as serve_api};
use errand_store::{ConflictKind, Store, StoreError, User};

use crate::config::Config;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (default: server.listen, ERRAND_LISTEN, 127.0.0.1:7878).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Attempts run at once by this process's workers; 0: API only (default: server.workers).
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,
}

#[derive(Args)]
pub struct WorkerArgs {
    /// The store to take attempts from (default: store.url, ERRAND_DATABASE_URL).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Attempts run at once (default: server.workers).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// This worker's name in the store's leases; must be unique among live workers and stable
    /// across restarts of the same worker (default: the host name).
    #[arg(long)]
    pub id: Option<String>,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user and print their first API token (shown once).
    Add {
        name: String,
        /// What the token is for ("laptop", "ci").
        #[arg(long, default_value = "first token")]
        label: String,
    },
    /// Print a new API token for an existing user (shown once).
    Token {
        name: String,
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

/// `errand serve`: the API (and, unless `--workers 0`, workers) until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs, config: Config) -> anyhow::Result<i32> {
    let listen = match args.listen {
        Some(listen) => listen,
        None => config.server.listen.parse().context("server.listen")?,
    };
    let store = open_store(&config.store_url()).await?;
    let local = local_user(&*store).await?;
    let token_path = config.local_token_path();
    ensure_local_token(&*store, &local, &token_path).await?;

    let mut api = config.api_config();
    api.remotes = Some(config.remotes()?);
    api.forges = config.forges()?;
    api.public_url = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", config.server.listen));
    let state = AppState::new(store, api);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let shutdown = Shutdown::new();

    let workers = args.workers.unwrap_or(config.server.workers);
    let worker_task = if workers > 0 {
        // Through the API's store, so that streams see the workers' events at once.
        let worker = build_worker(&config, state.store.clone(), workers, default_worker_id())?;
        let stop = shutdown.clone();
        Some(tokio::spawn(async move { Arc::new(worker).run(stop.wait()).await }))
    } else {
        None
    };
    eprintln!(
        "errand: serving http://{bound} with {workers} in-process worker slot(s); store {}; the local user `{}`'s token is in {}",
        errand_store::redact_url(&config.store_url()),
        local.name,
        token_path.display()
    );
    // Triggered tasks' outcomes go back to their issues, also those a restart interrupted.
    let reporter = {
        let state = state.clone();
        let stop = shutdown.clone();
        let triggers = state.config.forges.0.iter().any(|f| f.trigger.is_some());
        tokio::spawn(async move {
            if !triggers {
                return;
            }
            let mut every = tokio::time::interval(Duration::from_secs(5));
            let stopped = stop.wait();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = every.tick() => { errand_server::triggers::report_finished(&state).await; }
                    () = &mut stopped => break,
                }
            }
        })
    };
    let stop = shutdown.clone();
    serve_api(listener, state, stop.wait()).await.context("the HTTP server failed")?;
    reporter.abort();
    if let Some(task) = worker_task {
        eprintln!("errand: draining the workers");
        task.await.context("the worker panicked")?.context("the worker could not start")?;
    }
    Ok(0)
}

/// `errand worker`: leases attempts from the store and runs them until SIGINT or SIGTERM, then
/// drains.
pub async fn worker(args: WorkerArgs, config: Config) -> anyhow::Result<i32> {
    let url = args.database_url.unwrap_or_else(|| config.store_url());
    let store = open_store(&url).await?;
    let concurrency = args.concurrency.unwrap_or(config.server.workers).max(1);
    let id = args.id.unwrap_or_else(default_worker_id);
    let worker = build_worker(&config, store, concurrency, id.clone())?;
    eprintln!(
        "errand: worker `{id}` running {concurrency} attempt(s) at once from {}",
        errand_store::redact_url(&url)
    );
    let shutdown = Shutdown::new();
    Arc::new(worker).run(shutdown.wait()).await.context("the worker could not start")?;
    Ok(0)
}

/// `errand user …`: run on the server's machine, against its store.
pub async fn user(command: UserCommand, config: Config) -> anyhow::Result<i32> {
    let store = open_store(&config.store_url()).await?;
    let (user, label) = match command {
        UserCommand::Add { name, label } => {
            let user = store.create_user(&name).await.map_err(|e| match e {
                StoreError::Conflict { kind: ConflictKind::AlreadyExists, .. } => anyhow::anyhow!(
                    "a user named `{name}` already exists; `errand user token {name}` gives them another token"
                ),
                e => e.into(),
            })?;
            (user, label)
        }
        UserCommand::Token { name, label } => {
            let user = store.user_by_name(&name).await.map_err(|e| match e {
                StoreError::NotFound(_) => {
                    anyhow::anyhow!(
                        "there is no user `{name}`; create one with `errand user add {name}`"
                    )
                }
                e => e.into(),
            })?;
            (user, label)
        }
    };
    let created = store.create_token(user.id, &label).await?;
    eprintln!("token for `{}` ({label}); it is shown only this once:", user.name);
    println!("{}", created.secret);
    Ok(0)
}

fn build_worker(
    config: &Config,
    store: Arc<dyn Store>,
    concurrency: u32,
    id: String,
) -> anyhow::Result<Worker> {
    let model = errand_model::ModelClient::new(config.model_config())?;
    let sandbox = LocalSandboxConfig {
        data_dir: config.data_dir(),
        helper: std::env::current_exe()
            .context("cannot find the errand binary for the sandbox helper")?,
        bwrap: PathBuf::from("bwrap"),
        sandbox_uid: config.sandbox.uid,
    };
    let mut worker = Worker::new(id, store.clone(), Arc::new(model), sandbox);
    worker.concurrency = concurrency as usize;
    worker.lease_ttl = Duration::from_secs(config.server.lease_secs);
    worker.limits = config.sandbox.limits();
    worker.agent = config.agent_config();
    // Secret references may read only the variables the operator listed.
    let readable = config.server.secret_variables.clone();
    let lookup = move |name: &str| {
        readable.iter().any(|v| v == name).then(|| std::env::var(name).ok()).flatten()
    };
    worker.environments =
        Some(Arc::new(errand_server::StoreEnvironments::with_lookup(store, lookup)));
    worker.remotes = Some(config.remotes()?);
    Ok(worker)
}

/// The store a URL names, its schema brought up to date. A SQLite file is created readable by
/// its owner only: it holds tokens' hashes and environments' secrets (docs/security.md).
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        create_private(Path::new(path))?;
    }
    errand_store::open(url)
        .await
        .context("cannot open the store (store.url in errand.toml, ERRAND_DATABASE_URL)")
}

/// The user this machine's account acts as: `$USER` (else `local`), created on first use.
pub async fn local_user(store: &dyn Store) -> anyhow::Result<User> {
    let name = std::env::var("USER").ok().filter(|n| !n.trim().is_empty());
    let name = name.unwrap_or_else(|| "local".into());
    match store.user_by_name(&name).await {
        Ok(user) => Ok(user),
        Err(StoreError::NotFound(_)) => match store.create_user(&name).await {
            Ok(user) => Ok(user),
            // Another errand process created it first.
            Err(StoreError::Conflict { kind: ConflictKind::AlreadyExists, .. }) => {
                Ok(store.user_by_name(&name).await?)
            }
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Gives the local user a token in `path` unless the one there still works.
async fn ensure_local_token(store: &dyn Store, user: &User, path: &Path) -> anyhow::Result<()> {
    if let Ok(secret) = std::fs::read_to_string(path)
        && let Ok(Some(owner)) = store.authenticate(secret.trim()).await
        && owner.id == user.id
    {
        return Ok(());
    }
    let created = store.create_token(user.id, "errand serve (this machine)").await?;
    write_private(path, &created.secret)
        .with_context(|| format!("cannot write the local token to {}", path.display()))
}

/// Writes `content` to a new file only its owner can read, replacing `path` atomically.
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temp = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}

/// Creates the SQLite file readable by its owner only, before SQLite would create it with the
/// umask's mode. SQLite gives the `-wal` and `-shm` files it creates the database file's mode.
pub fn create_private(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the store's directory {}", dir.display()))?;
    }
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create the store {}", path.display())),
    }
}

/// The host name: stable across restarts, so a restarted worker finds and cleans up what it
/// held before it died.
fn default_worker_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "worker".into())
}

/// SIGINT or SIGTERM, seen by everyone who waits.
#[derive(Clone)]
struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    fn new() -> Shutdown {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            let term = async {
                match term.as_mut() {
                    Some(term) => {
                        term.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = term => {}
            }
            eprintln!("errand: shutting down");
            let _ = tx.send(true);
        });
        Shutdown(rx)
    }

    async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

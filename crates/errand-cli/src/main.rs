//! The `errand` binary: parses arguments and calls the libraries.

mod bench;
mod client;
mod config;
mod env;
mod exec;
mod models;
mod render;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "errand",
    version,
    about = "Delegate software tasks to an agent that works in its own sandbox."
)]
struct Cli {
    /// Configuration file (default: $ERRAND_CONFIG, else ~/.config/errand/errand.toml if it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one task on the repository in the current directory and print the diff and report.
    Exec(exec::ExecArgs),
    /// Store and inspect environments (setup scripts, variables, secrets) by name.
    Env {
        #[command(subcommand)]
        what: env::EnvCommand,
    },
    /// Apply a `*** Begin Patch` patch read from stdin in the current directory.
    ApplyPatch {
        /// Refuse paths outside this directory (default: the current directory).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Print one JSON line with the outcome (used inside the sandbox).
        #[arg(long)]
        json: bool,
    },
    /// Run the service: the HTTP API and in-process workers (the embedded default: SQLite in
    /// the data directory).
    Serve(service::ServeArgs),
    /// Tasks on an Errand server (`errand serve`): create, list, show, follow, diff, cancel,
    /// follow up, message.
    Task {
        #[command(subcommand)]
        what: client::TaskCommand,
    },
    /// Apply a task's diff to the checkout in the current directory.
    Apply(client::ApplyArgs),
    /// Run workers only: lease attempts from a shared store (PostgreSQL) and run them here.
    Worker(service::WorkerArgs),
    /// Manage the service's users and their API tokens (on the server's machine).
    User {
        #[command(subcommand)]
        what: service::UserCommand,
    },
    /// Check the configured model.
    Models {
        #[command(subcommand)]
        what: models::ModelsCommand,
    },
    /// Measure Errand's own performance.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
    /// Inside a sandbox: carry TCP connections on `--listen` to the egress proxy's socket,
    /// then run the command (see errand_sandbox::egress::bridge).
    #[command(hide = true)]
    SandboxBridge {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        socket: PathBuf,
        #[arg(last = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Inside a sandbox: make stdin (the sandbox's pty) the controlling terminal of a new
    /// session, then run the command (see errand_sandbox::terminal; `errand env shell`).
    #[command(hide = true)]
    SandboxTerminal {
        #[arg(last = true)]
        command: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::ApplyPatch { root, json } = &cli.command {
        // Runs inside the sandbox for every patch: no async runtime, no config, no logging.
        return apply_patch(root.clone(), *json);
    }
    if let Command::SandboxBridge { listen, socket, command } = &cli.command {
        // Runs inside the sandbox before every command: it forks, so before any thread starts.
        let code = errand_sandbox::egress::bridge::main(*listen, socket.clone(), command.clone());
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    if let Command::SandboxTerminal { command } = &cli.command {
        // Runs inside the sandbox, then becomes the shell: nothing else to set up.
        let code = errand_sandbox::terminal::take_terminal_and_exec(command);
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ERRAND_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("errand: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("errand: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let config = config::Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Exec(args) => exec::run(args, config).await,
        Command::Env { what } => env::run(what, config).await,
        Command::Bench { what } => bench::run(what, config).await,
        Command::Models { what } => models::run(what, config).await,
        Command::Serve(args) => service::serve(args, config).await,
        Command::Worker(args) => service::worker(args, config).await,
        Command::Task { what } => client::task(what, config).await,
        Command::Apply(args) => client::apply(args, config).await,
        Command::User { what } => service::user(what, config).await,
        Command::ApplyPatch { .. }
        | Command::SandboxBridge { .. }
        | Command::SandboxTerminal { .. } => {
            unreachable!("handled before the runtime starts")
        }
    }
}

fn apply_patch(root: Option<PathBuf>, json: bool) -> ExitCode {
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            eprintln!("apply-patch: cannot read the current directory: {e}");
            return ExitCode::from(2);
        }
    };
    let args = errand_patch::CliArgs { root, cwd, json };
    let code = errand_patch::run_cli(
        &args,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(code.clamp(0, 255) as u8)
}

//! `errand bench service`: the service under load (`errand_server::bench` does the work; this
//! parses the flags and prints).

use std::time::Duration;

use anyhow::bail;
use errand_agent::bench::Percentiles;
use errand_server::bench::{AttemptsBench, AttemptsOptions, FanoutOptions, FanoutRound};

use super::{cores, ms};
use crate::config::Config;

/// The cases of `errand bench service`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceCase {
    /// `--attempts` attempts in flight at once: memory per attempt.
    Attempts,
    /// One attempt's events to `--clients` SSE clients: delay from stored to read.
    Fanout,
}

/// The flags of `errand bench service`.
#[derive(Debug, clap::Args)]
pub struct ServiceBench {
    /// Which cases to run, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "attempts,fanout")]
    cases: Vec<ServiceCase>,
    /// Attempts in flight at once (one worker with as many slots).
    #[arg(long, default_value_t = 100)]
    attempts: usize,
    /// Model turns per attempt: all but the last run `true` in the sandbox.
    #[arg(long, default_value_t = 4)]
    turns: u32,
    /// The model's latency per turn, in milliseconds.
    #[arg(long, default_value_t = 200)]
    latency_ms: u64,
    /// SSE clients following one attempt.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Timed events streamed to the clients.
    #[arg(long, default_value_t = 100)]
    events: usize,
    /// Milliseconds between two timed events.
    #[arg(long, default_value_t = 50)]
    interval_ms: u64,
    /// Give up on a case after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
}

pub async fn run(options: ServiceBench, config: Config) -> anyhow::Result<i32> {
    if options.attempts == 0 || options.turns == 0 || options.clients == 0 || options.events == 0 {
        bail!("--attempts, --turns, --clients and --events must be at least 1");
    }
    let timeout = Duration::from_secs(options.timeout_s.max(1));
    let mut code = 0;
    if options.cases.contains(&ServiceCase::Attempts) {
        let scratch = errand_server::bench::scratch_dir(&std::env::temp_dir(), "service")
            .map_err(anyhow::Error::msg)?;
        let bench_options = AttemptsOptions {
            scratch: scratch.clone(),
            helper: std::env::current_exe()?,
            sandbox_uid: Some(config.sandbox.uid),
            attempts: options.attempts,
            turns: options.turns,
            latency: Duration::from_millis(options.latency_ms),
            timeout,
        };
        let bench = errand_server::bench::attempts(&bench_options).await;
        let _ = std::fs::remove_dir_all(&scratch);
        let bench = bench.map_err(anyhow::Error::msg)?;
        if !print_attempts(&bench_options, &bench) {
            code = 1;
        }
    }
    if options.cases.contains(&ServiceCase::Fanout) {
        // Two descriptors per client (its socket and the server's), plus the store's.
        let wanted = options.clients as u64 * 2 + 256;
        raise_open_files_limit(wanted);
        if let Some(limit) = errand_server::bench::open_files_limit()
            && limit < wanted
        {
            bail!(
                "{} clients need about {wanted} open files, but the limit is {limit}; raise it \
                 (`ulimit -n {wanted}`) or use fewer --clients",
                options.clients
            );
        }
        let scratch = errand_server::bench::scratch_dir(&std::env::temp_dir(), "fanout")
            .map_err(anyhow::Error::msg)?;
        let bench_options = FanoutOptions {
            scratch: scratch.clone(),
            clients: options.clients,
            events: options.events,
            interval: Duration::from_millis(options.interval_ms),
            timeout,
        };
        let bench = errand_server::bench::fanout(&bench_options).await;
        let _ = std::fs::remove_dir_all(&scratch);
        let bench = bench.map_err(anyhow::Error::msg)?;
        if options.cases.len() > 1 {
            println!();
        }
        println!(
            "errand bench service, fan-out: {} timed events {} ms apart to SSE clients over \
             loopback, {} cores",
            options.events,
            options.interval_ms,
            cores()
        );
        print_percentiles_header();
        print_percentiles(
            &format!("stored → read, {} clients", bench.many.clients),
            &bench.many.delay,
        );
        print_percentiles("baseline: stored → read, 1 client", &bench.one.delay);
        print_percentiles("storing one event (the append)", &bench.many.append);
        println!(
            "ratio of p50s ({} clients / 1): {:.2}; of p99s: {:.2}",
            bench.many.clients,
            ratio(bench.many.delay.p50, bench.one.delay.p50),
            ratio(bench.many.delay.p99, bench.one.delay.p99)
        );
        println!(
            "all {} clients connected and reading in {:.0} ms",
            bench.many.clients,
            ms(bench.many.connected_in)
        );
        for round in [&bench.one, &bench.many] {
            if !print_completeness(round) {
                code = 1;
            }
        }
        println!("target: p99 under 50 ms with 1,000 clients");
    }
    Ok(code)
}

/// Prints the attempts case; `false` when some attempt failed.
fn print_attempts(options: &AttemptsOptions, bench: &AttemptsBench) -> bool {
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "errand bench service, attempts: {} attempts at once, {} model turns each ({} × `true`, \
         then a final message) at {} ms per turn, {} cores",
        bench.attempts,
        options.turns,
        options.turns.saturating_sub(1),
        options.latency.as_millis(),
        cores()
    );
    println!(
        "succeeded: {} of {} (model requests: {}, past the plan: {}); all done in {:.1} s",
        bench.succeeded,
        bench.attempts,
        bench.model_requests,
        bench.model_requests_beyond,
        bench.wall.as_secs_f64()
    );
    for failure in &bench.failures {
        println!("  failed: {failure}");
    }
    if let Some(each) = Percentiles::of(&bench.attempt_durations) {
        println!(
            "each attempt, created to finished: p50 {:.2} s, p90 {:.2} s, max {:.2} s",
            each.p50.as_secs_f64(),
            each.p90.as_secs_f64(),
            each.max.as_secs_f64()
        );
    }
    println!(
        "worker process memory (VmRSS; sandbox processes excluded): before anything {:.1} MiB, \
         idle after a warm-up attempt {:.1} MiB (baseline)",
        mib(bench.cold_rss_kib),
        mib(bench.idle_rss_kib)
    );
    println!(
        "at the most attempts in flight ({} of {}): {:.1} MiB; largest sampled {:.1} MiB \
         ({} samples)",
        bench.peak.in_flight,
        bench.attempts,
        mib(bench.peak.rss_kib),
        mib(bench.max_rss_kib),
        bench.samples
    );
    println!(
        "per attempt in flight: {:.2} MiB ((loaded − baseline) / in flight; target: under 4 MB); \
         loaded / baseline: {:.2}",
        bench.per_attempt_kib / 1024.0,
        bench.peak.rss_kib as f64 / (bench.idle_rss_kib as f64).max(1.0)
    );
    bench.failures.is_empty() && bench.succeeded == bench.attempts
}

/// Prints how many clients got every event; `false` when some did not.
fn print_completeness(round: &FanoutRound) -> bool {
    println!(
        "{} of {} clients read every event once, in order, and saw the stream end ({} deliveries \
         timed)",
        round.complete_clients, round.clients, round.deliveries
    );
    for problem in &round.problems {
        println!("  {problem}");
    }
    round.complete_clients == round.clients
}

fn print_percentiles_header() {
    println!("{:<44} {:>9} {:>9} {:>9} {:>9}", "", "p50 ms", "p90 ms", "p99 ms", "max ms");
}

fn print_percentiles(name: &str, p: &Percentiles) {
    println!(
        "{name:<44} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        ms(p.p50),
        ms(p.p90),
        ms(p.p99),
        ms(p.max)
    );
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// Raises this process's soft limit on open files toward `wanted`, up to the hard limit.
fn raise_open_files_limit(wanted: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own; setrlimit only reads it.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= wanted {
            return;
        }
        limit.rlim_cur = wanted.min(limit.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
}

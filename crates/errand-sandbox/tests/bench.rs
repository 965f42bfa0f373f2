//! Start-up timings of the local sandbox. Ignored by default (it measures, it does not check):
//! `cargo test -p errand-sandbox --release --test bench -- --ignored --nocapture`.

mod common;

use common::{Fixture, sandbox_available};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark; run explicitly"]
async fn sandbox_start() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::new(&[("README.md", b"# bench\n")]);
    let runs = std::env::var("ERRAND_BENCH_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(50);
    let bench =
        errand_sandbox::bench::sandbox_start(&fx.config, &fx.repo, "HEAD", runs).await.unwrap();
    for (name, stats) in [
        ("attempt start", bench.attempt_start),
        ("over a snapshot", bench.snapshot_start),
        ("bare bwrap true", bench.bwrap_true),
    ] {
        println!(
            "{name:>16}: runs {} p50 {:?} p95 {:?} min {:?} max {:?}",
            stats.runs, stats.p50, stats.p95, stats.min, stats.max
        );
    }
}

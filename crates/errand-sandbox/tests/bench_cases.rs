//! The benchmark cases run end to end at tiny sizes, so `errand bench sandbox` cannot rot. They
//! check that each case completes and reports what it measured, never how fast.

mod common;

use common::{Fixture, sandbox_available};
use errand_sandbox::bench::{DiffBenchOptions, burst_start, diff_bench};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_attempts_starts_and_every_one_succeeds() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::new(&[("README.md", b"# bench\n")]);
    let bench = burst_start(&fx.config, &fx.repo, "HEAD", 3, 2).await.expect("the burst runs");
    assert_eq!((bench.attempts, bench.rounds), (3, 2));
    assert_eq!(bench.succeeded, 6, "failures: {:?}", bench.failures);
    assert_eq!(bench.bwrap_succeeded, 6, "failures: {:?}", bench.failures);
    assert_eq!(bench.each_start.map(|s| s.runs), Some(6));
    assert_eq!(bench.all_done.runs, 2);
    // Every attempt was removed.
    let left: Vec<_> =
        std::fs::read_dir(fx.data_dir().join("attempts")).expect("attempts dir").collect();
    assert!(left.is_empty(), "attempts left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_diff_case_sees_the_ten_changes_and_reuses_its_repository() {
    if !sandbox_available() {
        return;
    }
    let fx = Fixture::new(&[("README.md", b"# bench\n")]);
    let options =
        DiffBenchOptions { files: 1000, rounds: 2, cache_dir: fx.tmp.path().join("cache") };
    let first = diff_bench(&fx.config, &options).await.expect("the diff case runs");
    assert_eq!(first.changed_files, 10);
    assert_eq!(first.tracked_files, 1001);
    assert!(first.generated_in.is_some() && !first.checkout_was_cached);
    assert_eq!(first.sandbox_diff.runs, 2);
    assert!(first.patch_bytes > first.git_diff_bytes, "the patch holds the added files too");

    let second = diff_bench(&fx.config, &options).await.expect("the diff case runs again");
    assert!(second.generated_in.is_none() && second.checkout_was_cached);
    assert_eq!(second.changed_files, 10);
    // The working copy was restored: nothing is left changed.
    let status = common::git(&options.cache_dir.join("repo-1000"), &["status", "--porcelain"]);
    assert_eq!(status, "");
}

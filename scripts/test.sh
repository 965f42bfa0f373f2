#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, lints, then every test (unit,
# integration against real bubblewrap and overlays, end to end through the `errand` binary).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# nextest ends with its summary line ("N tests run: N passed ..."), so an empty run is visible.
cargo nextest run --workspace --locked --no-fail-fast

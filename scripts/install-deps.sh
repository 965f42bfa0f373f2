#!/usr/bin/env bash
# Installs what Errand and its tests need on Debian 12, as root, and nothing that is already there.
# Idempotent: safe to run before every build.
set -euo pipefail

need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)   # the local sandbox
command -v git >/dev/null 2>&1 || need+=(git)            # checkouts and diffs
[ -x /usr/bin/python3 ] || need+=(python3)               # the demo and test repositories run Python tests
# tests/sdk_conformance.rs installs the official SDKs into a venv; Debian keeps ensurepip apart.
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# errand-store's tests start their own PostgreSQL (initdb + postgres); Debian keeps them in
# /usr/lib/postgresql/<version>/bin, off PATH.
command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
  || need+=(postgresql)
# The web UI's tests drive headless Chromium through chromedriver (errand-testkit's browser module).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing ${need[*]}; run this script as root (or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: installing cargo-nextest from crates.io (a few minutes, once)" >&2
  cargo install --locked cargo-nextest
fi

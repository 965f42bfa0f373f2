#!/usr/bin/env bash
# The tour: builds Errand, makes a small repository with a failing test, and has Errand fix it in
# a real sandbox. Without a model configured it uses the scripted model server (no key, no
# network); with ERRAND_MODEL_BASE_URL (or OPENAI_API_KEY) set it uses your model instead.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
scripts/install-deps.sh
echo "demo: building errand (release; a few minutes the first time)" >&2
cargo build --release --locked --bin errand --bin errand-mock-model
bin="$here/target/release"

work="$(mktemp -d /tmp/errand-demo.XXXXXX)"
chmod 755 "$work"
cp -r examples/demo/repo "$work/calc"
cd "$work/calc"
git init -q -b main
git add -A
git -c user.name=demo -c user.email=demo@localhost commit -qm "calc, with a bug"

mock_pid=""
cleanup() { [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [ -z "${ERRAND_MODEL_BASE_URL:-}" ] && [ -z "${OPENAI_API_KEY:-}" ]; then
  coproc MOCK { "$bin/errand-mock-model" --script "$here/examples/demo/script.toml"; }
  mock_pid=$MOCK_PID
  read -r line <&"${MOCK[0]}"
  export ERRAND_MODEL_BASE_URL="${line##* }" ERRAND_MODEL=scripted OPENAI_API_KEY=none
  echo "demo: using the scripted model at $ERRAND_MODEL_BASE_URL (set OPENAI_API_KEY to use a real one)" >&2
fi

echo "demo: in $work/calc: errand exec \"fix the failing test\"" >&2
status=0
"$bin/errand" exec --output-patch "$work/fix.patch" "fix the failing test" || status=$?
echo >&2
echo "demo: exit status $status; the patch is in $work/fix.patch; the repository itself is unchanged:" >&2
git -C "$work/calc" status --short >&2
echo "demo: apply it with: cd $work/calc && git apply $work/fix.patch  (or rerun with --apply)" >&2
exit $status

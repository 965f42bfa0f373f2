#!/usr/bin/env bash
# Starts Errand for real on the embedded defaults: `errand serve` with its HTTP API and
# in-process workers over SQLite in the data directory (/var/lib/errand as root). Without a
# model configured it also starts the scripted model server (no key, no network) and a small
# repository with a failing test to delegate to; with ERRAND_MODEL_BASE_URL, OPENAI_API_KEY or
# ANTHROPIC_API_KEY set it uses your model. Stop it with Ctrl-C (running attempts drain).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
scripts/install-deps.sh
echo "serve: building errand (release; a few minutes the first time)" >&2
cargo build --release --locked --bin errand --bin errand-mock-model
bin="$here/target/release"

mock_pid=""
cleanup() { [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [ -z "${ERRAND_MODEL_BASE_URL:-}" ] && [ -z "${OPENAI_API_KEY:-}" ] && [ -z "${ANTHROPIC_API_KEY:-}" ]; then
  coproc MOCK { "$bin/errand-mock-model" --script "$here/examples/demo/script.toml"; }
  mock_pid=$MOCK_PID
  read -r line <&"${MOCK[0]}"
  export ERRAND_MODEL_BASE_URL="${line##* }" ERRAND_MODEL=scripted OPENAI_API_KEY=none
  echo "serve: using the scripted model at $ERRAND_MODEL_BASE_URL (set OPENAI_API_KEY to use a real one)" >&2
fi

# A repository to try it on, like the one scripts/demo.sh fixes.
work="$(mktemp -d /tmp/errand-serve.XXXXXX)"
chmod 755 "$work"
cp -r examples/demo/repo "$work/calc"
git -C "$work/calc" init -q -b main
git -C "$work/calc" add -A
git -C "$work/calc" -c user.name=demo -c user.email=demo@localhost commit -qm "calc, with a bug"

cat >&2 <<MSG
serve: Errand starts below. In another terminal, delegate to it:
  export PATH="$bin:\$PATH"
  cd $work/calc
  errand task create --attempts 2 --follow "fix the failing test"
  errand task list
  errand apply <task id>/0 --check && errand apply <task id>/0
Or in a browser: http://127.0.0.1:7878 (sign in with the token in the data directory's
\`token\` file; as root: /var/lib/errand/token), New task, repository $work/calc.
The API is at http://127.0.0.1:7878/api (OpenAPI: /api/openapi.json).
MSG
"$bin/errand" serve

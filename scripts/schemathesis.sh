#!/usr/bin/env bash
# Runs schemathesis against the real `modelwatch serve` binary, from the document it
# serves at /openapi.json: no 5xx, every status code documented, every body matching
# its schema. Bounded by a number of examples per operation, and seeded, so a run
# repeats. Called by scripts/test.sh, which creates the virtual environment.
#
#   MODELWATCH_BIN              the binary (default target/debug/modelwatch)
#   MODELWATCH_VENV             the virtual environment (default .venv)
#   SCHEMATHESIS_MAX_EXAMPLES   examples per operation (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${MODELWATCH_BIN:-target/debug/modelwatch}
venv=${MODELWATCH_VENV:-.venv}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-200}
[ -x "$bin" ] || { echo "error: $bin not found" >&2; echo "hint: cargo build -p modelwatch-cli" >&2; exit 1; }
[ -x "$venv/bin/schemathesis" ] || {
    echo "error: $venv/bin/schemathesis not found" >&2
    echo "hint: $venv/bin/pip install -r scripts/schemathesis/requirements.txt" >&2
    exit 1
}

work=$(mktemp -d)
# Free ports from the kernel; the deadline is raised so a debug build on a busy
# machine answers within it (a 504 is documented, but not what this run looks for).
"$bin" serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --data-dir "$work/data" --request-timeout 10s 2>"$work/serve.log" &
pid=$!
cleanup() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The server prints one line once both listeners are bound; wait at most 120 s.
for _ in $(seq 1 1200); do
    grep -q 'ready in' "$work/serve.log" && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; echo "error: modelwatch serve exited" >&2; exit 1; }
    sleep 0.1
done
url=$(sed -n 's|.* on \(http://[0-9.]*:[0-9]*\) (metrics.*|\1|p' "$work/serve.log")
[ -n "$url" ] || { cat "$work/serve.log" >&2; echo "error: modelwatch serve did not become ready" >&2; exit 1; }

"$venv/bin/schemathesis" run "$url/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$max_examples" --seed 20261202 --workers 1 \
    --request-timeout 20 --no-color

#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh clone (see README.md).
# Installs what the tests need (Debian packages) when it is missing, then checks
# formatting, lints, generated files and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

# CI builds once from a fresh clone: incremental state (2.4 GB for this suite) would
# only take disk that the test binaries need.
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL=0
fi

need_apt=()
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
# The Redis feature store tests start their own redis-server (and use redis-cli).
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || need_apt+=(redis-server)
# The page's browser test drives headless Chromium (crates/modelwatch-cli/tests/ui.rs).
command -v chromium >/dev/null || need_apt+=(chromium)
# The long-retention tests (crates/modelwatch-cli/tests/long_term.rs, the stack's
# local_stack) start VictoriaMetrics and vmalert; Debian's package ships both.
command -v victoria-metrics >/dev/null && command -v vmalert >/dev/null || need_apt+=(victoria-metrics)
# Debian bookworm has no `kubectl` package; `kubernetes-client` provides one whose
# kustomize renders deploy/ identically.
command -v kubectl >/dev/null || need_apt+=(kubernetes-client)
if ((${#need_apt[@]})); then
    step "installing ${need_apt[*]} (Debian packages)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: ${need_apt[*]} missing and not running as root" >&2
        echo "hint: sudo apt-get install -y ${need_apt[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# Debian starts nothing here (no systemd); the tests start their own instances on
# loopback with temporary directories.

# Every pinned Python requirement of the project goes into one virtual environment,
# .venv (git-ignored); the tests run its interpreter. Debian's python3 needs the
# python3-venv package for `python3 -m venv`.
python_requirements=(deploy/tests/requirements.txt scripts/schemathesis/requirements.txt crates/modelwatch-cli/tests/oip/requirements.txt crates/modelwatch-cli/tests/feast/requirements.txt clients/python/requirements-test.txt examples/fastapi-fraud/requirements.txt)
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    step "installing python3-venv (Debian package)"
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: python3-venv missing and not running as root" >&2
        echo "hint: sudo apt-get install -y python3-venv" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
[ -x .venv/bin/python ] || { step "creating .venv"; python3 -m venv .venv; }
# Reinstall only when a requirements file changed since the last install.
stamp=.venv/.requirements.sha256
if ! sha256sum "${python_requirements[@]}" | cmp -s - "$stamp"; then
    step "installing the pinned Python requirements into .venv (${python_requirements[*]})"
    for file in "${python_requirements[@]}"; do
        .venv/bin/python -m pip install -q -r "$file"
    done
    sha256sum "${python_requirements[@]}" >"$stamp"
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "generated files are up to date (mixin, Kubernetes manifests)"
cargo run -q --locked -p modelwatch-cli -- mixin --check
cargo run -q --locked -p modelwatch-cli -- stack k8s-manifests --check

step "cargo test (the drills in a second lane)"
# Most of the suite's time is wall clock, not CPU: the alert drills wait for
# compressed windows to fill. So the two drill binaries (the scenario drills, then
# the false-alarm drill, never both at once) run in a second lane beside the rest of
# the tests. Build every test target once and find the drill binaries' paths.
build_json=target/test-build.json
mkdir -p target
cargo test --workspace --all-targets --locked --no-run --message-format=json >"$build_json"
drill_binaries=$(.venv/bin/python scripts/test-executables.py "$build_json" modelwatch-cli scenarios false_alarm)
drills_log=target/drills.log
(
    cd crates/modelwatch-cli
    for binary in $drill_binaries; do
        "$binary" || exit $?
    done
) >"$drills_log" 2>&1 &
drills_pid=$!
# Stop the drill lane by its own process id if this script stops first.
trap 'kill "$drills_pid" 2>/dev/null || true' EXIT
skip_drills=(--skip each_scenario_fires_its_alert_and_clean_traffic_fires_nothing
    --skip clean_traffic_raises_no_alert_and_after_warm_up_none_is_pending)
# The benches (criterion, `harness = false`) take no --skip, so they run (in test
# mode: each benchmark once) in a cargo test of their own.
tests_rc=0
cargo test --workspace --lib --bins --tests --examples --locked --no-fail-fast -- "${skip_drills[@]}" || tests_rc=$?
cargo test --workspace --benches --locked --no-fail-fast || tests_rc=$?
step "waiting for the drill lane (scenario drills, then the false-alarm drill)"
drills_rc=0
wait "$drills_pid" || drills_rc=$?
trap - EXIT
cat "$drills_log" >&2
if ((tests_rc != 0 || drills_rc != 0)); then
    echo "error: cargo test exited $tests_rc, the drill lane $drills_rc (its output: $drills_log)" >&2
    exit 1
fi

step "doc tests"
cargo test --workspace --doc --locked

step "Python client tests (clients/python, pytest)"
(cd clients/python && ../../.venv/bin/python -m pytest -q -p no:cacheprovider)

step "schemathesis against modelwatch serve (scripts/schemathesis.sh)"
cargo build -q --locked --workspace  # the features of the test build: nothing rebuilds
bash scripts/schemathesis.sh

step "all green"

#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh clone (see README.md).
# Installs what the tests need (Debian packages) when it is missing, then checks
# formatting, lints, generated files and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

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

step "cargo test"
cargo test --workspace --all-targets --locked

step "doc tests"
cargo test --workspace --doc --locked

step "Python client tests (clients/python, pytest)"
(cd clients/python && ../../.venv/bin/python -m pytest -q -p no:cacheprovider)

step "schemathesis against modelwatch serve (scripts/schemathesis.sh)"
cargo build -q --locked --workspace  # the features of the test build: nothing rebuilds
bash scripts/schemathesis.sh

step "all green"

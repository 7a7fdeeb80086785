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
# The page's browser test drives headless Chromium (crates/modelwatch-cli/tests/ui.rs).
command -v chromium >/dev/null || need_apt+=(chromium)
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

if ! python3 -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
    step "installing the manifest validators (deploy/tests/requirements.txt)"
    python3 -m pip install -q -r deploy/tests/requirements.txt \
        || python3 -m pip install -q --break-system-packages -r deploy/tests/requirements.txt
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

step "all green"

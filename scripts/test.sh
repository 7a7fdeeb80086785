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
command -v redis-server >/dev/null || need_apt+=(redis-server)
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

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --all-targets --locked

step "doc tests"
cargo test --workspace --doc --locked

step "all green"

#!/usr/bin/env bash
# The one test command: installs what the tests need when it is missing, then runs every test of the
# workspace (unit, behaviour, contract, property, integration) and every doctest.
#
#   scripts/test.sh            # everything
#   scripts/test.sh -p weir-core   # extra arguments go to the test runner
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "scripts/test.sh: need root to run: $*" >&2; return 1; fi
}

# redis-server: the Redis backend's tests start a real one on a free port.
if [ -d crates/weir-redis ] && ! command -v redis-server >/dev/null 2>&1; then
    echo "==> installing redis-server (apt-get)"
    need_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive need_root apt-get install -y -qq redis-server >/dev/null
fi

# chromium: tests/status_browser.rs opens the gateway's status page in Debian's headless Chromium
# (never a downloaded browser build). Where it cannot be installed, that test fails and says so.
if ! command -v chromium >/dev/null 2>&1; then
    echo "==> installing chromium (apt-get)"
    need_root apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive need_root apt-get install -y -qq chromium >/dev/null ||
        echo "scripts/test.sh: could not install chromium; tests/status_browser.rs will fail" >&2
fi

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

if cargo nextest --version >/dev/null 2>&1; then
    echo "==> cargo nextest run --workspace --all-features --all-targets"
    cargo nextest run --workspace --all-features --all-targets --no-fail-fast "$@"
else
    echo "==> cargo test --workspace --all-features --all-targets (cargo-nextest not installed)"
    cargo test --workspace --all-features --all-targets --no-fail-fast "$@"
fi

echo "==> cargo test --workspace --all-features --doc"
cargo test --workspace --all-features --doc "$@"

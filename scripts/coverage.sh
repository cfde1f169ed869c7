#!/usr/bin/env bash
# Line and branch coverage of weir's crates with cargo-llvm-cov (LLVM source-based coverage,
# rustc's `-C instrument-coverage`), on the machine's own toolchain.
#
#   scripts/coverage.sh                         # weir-core and weir-retry, unit tests (--lib)
#   scripts/coverage.sh -p weir-rate-limit      # other packages (the default list is replaced)
#   COVERAGE_ALL_TARGETS=1 scripts/coverage.sh  # every test target, integration tests too
#   COVERAGE_HTML=1 scripts/coverage.sh         # also an HTML report, target/llvm-cov/html/
#
# Needs the `llvm-tools` component (`rustup component add llvm-tools-preview`, which fetches
# llvm-cov and llvm-profdata for the installed toolchain) and installs cargo-llvm-cov when it is
# missing. Builds into target/llvm-cov-target (instrumented, kept apart from target/debug). The
# per-file table is printed (lines, regions, functions), its TOTAL line over every package asked.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! rustup component list --installed 2>/dev/null | grep -q '^llvm-tools'; then
    echo "==> rustup component add llvm-tools-preview"
    rustup component add llvm-tools-preview
fi
if ! cargo llvm-cov --version >/dev/null 2>&1; then
    echo "==> installing cargo-llvm-cov"
    cargo install cargo-llvm-cov --locked
fi

if [ "$#" -gt 0 ]; then
    packages=("$@")
else
    packages=(-p weir-core -p weir-retry)
fi
targets=(--lib)
[ -n "${COVERAGE_ALL_TARGETS:-}" ] && targets=(--all-targets)

# Branch coverage needs nightly's `-Z coverage-options=branch`; on stable the report has lines,
# regions and functions.
echo "==> cargo llvm-cov ${packages[*]} ${targets[*]} --all-features"
start=$(date +%s)
cargo llvm-cov "${packages[@]}" "${targets[@]}" --all-features --summary-only
if [ -n "${COVERAGE_HTML:-}" ]; then
    cargo llvm-cov report --html
    echo "    HTML report: target/llvm-cov/html/index.html"
fi
echo "    in $(( $(date +%s) - start )) s"

#!/usr/bin/env bash
# Builds weir's cargo-fuzz targets (fuzz/, libFuzzer, nightly) and runs each for SECONDS.
#
#   scripts/fuzz.sh [SECONDS]                          # every target, SECONDS each (default 10)
#   FUZZ_TARGETS="ratelimit forwarded" scripts/fuzz.sh 1200
#   FUZZ_CORE_ONLY=1 scripts/fuzz.sh 5                 # the weir-core targets only (what CI runs)
#   FUZZ_TARGET_DIR=~/.cache/weir/fuzz-target ...      # build there (a cache kept between runs)
#
# Each run starts from the checked-in seeds (fuzz/corpus/<target>, never written to) and keeps
# what it finds in fuzz/target/corpus/<target>, so a later run goes on from there. A crash leaves
# its input in fuzz/artifacts/<target>/ (replay it: cargo +nightly fuzz run <target> <file>).
# Targets are built with debug assertions (`-a`): an integer overflow is a crash too.
# Exits non-zero when a target crashes or fails its property; prints executions per target.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "scripts/fuzz.sh: needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# Targets that need the `patterns` feature (the `weir` crate and every pattern crate).
pattern_targets="config_toml rate_limit idempotency_key breaker retry_budget"
features=()
if [ -n "${FUZZ_CORE_ONLY:-}" ]; then
    features=(--no-default-features)
fi
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
    mkdir -p "$FUZZ_TARGET_DIR"
    features+=(--target-dir "$(cd "$FUZZ_TARGET_DIR" && pwd)")
fi
if [ -n "${FUZZ_TARGETS:-}" ]; then
    targets="$FUZZ_TARGETS"
else
    targets="$(cd fuzz && cargo +nightly fuzz list)"
    if [ -n "${FUZZ_CORE_ONLY:-}" ]; then
        targets="$(printf '%s\n' $targets | grep -vxF $(printf -- "-e %s " $pattern_targets))"
    fi
fi

echo "==> cargo +nightly fuzz build -a ${features[*]:-}"
start=$(date +%s)
(cd fuzz && cargo +nightly fuzz build -a "${features[@]}")
echo "    built in $(( $(date +%s) - start )) s"

mkdir -p fuzz/target/logs
failed=()
for target in $targets; do
    mkdir -p "fuzz/target/corpus/$target" "fuzz/corpus/$target"
    log="fuzz/target/logs/$target.log"
    if (cd fuzz && cargo +nightly fuzz run -a "${features[@]}" "$target" \
        "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$secs" -timeout=10 -print_final_stats=1) >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$target")
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    printf '    %-16s %-6s %12s execs in %s s  (log: %s)\n' "$target" "$status" "$execs" "$secs" "$log"
done

if [ "${#failed[@]}" -gt 0 ]; then
    for target in "${failed[@]}"; do
        echo "==> $target failed; the end of its log:" >&2
        tail -n 40 "fuzz/target/logs/$target.log" >&2
    done
    exit 1
fi

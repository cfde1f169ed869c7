#!/usr/bin/env bash
# Instructions per call of the benchmarked service whose id (or group/id) is ID, counted by
# callgrind (independent of the machine's load): runs the bench binary with N and 2N calls and
# divides the difference by N, so set-up is excluded. One thread: the service is driven on a
# `current_thread` runtime (see `count_only` in benches/support/mod.rs).
#
#   scripts/instructions.sh BENCH ID [N]      e.g. scripts/instructions.sh stacks weir-server
#
# The binary is built with the cargo profile WEIR_BENCH_PROFILE (default `bench`; `bench-lto` is
# the same with thin LTO and one codegen unit, see the root Cargo.toml). cargo builds it once per
# profile; later calls only look its path up, so counting several rows of one bench builds once.
# cargo's errors (and the compiler's diagnostics) are shown on stderr.
set -euo pipefail
usage="usage: [WEIR_BENCH_PROFILE=bench|bench-lto] scripts/instructions.sh BENCH ID [N]"
bench=${1:?$usage}
id_=${2:?$usage}
n=${3:-20000}
profile=${WEIR_BENCH_PROFILE:-bench}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
if ! json=$(cargo bench --profile "$profile" --bench "$bench" --no-run \
  --message-format=json-render-diagnostics); then
  echo "instructions.sh: cargo could not build bench $bench with profile $profile" >&2
  exit 1
fi
binary=$(printf '%s\n' "$json" | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -n "$binary" ] || { echo "instructions.sh: no executable for bench $bench" >&2; exit 1; }
total() {
  local out count
  out=$(WEIR_BENCH_CALLS=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$binary" --bench "$id_" 2>&1) || { printf '%s\n' "$out" >&2; return 1; }
  grep -qF "$id_: $1 calls driven" <<<"$out" ||
    { echo "instructions.sh: no row $id_ in bench $bench" >&2; return 1; }
  count=$(printf '%s\n' "$out" | sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | tail -1)
  [ -n "$count" ] || { printf '%s\n' "$out" >&2; return 1; }
  echo "$count"
}
one=$(total "$n")
two=$(total $((2 * n)))
echo "$bench/$id_ ($profile): $(( (two - one) / n )) instructions per call"

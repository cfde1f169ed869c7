#!/usr/bin/env bash
# Instructions per call of the benchmarked service whose id (or group/id) is ID, counted by
# callgrind (independent of the machine's load): runs the bench binary with N and 2N calls and
# divides the difference by N, so set-up is excluded.
#
#   scripts/instructions.sh BENCH ID [N]      e.g. scripts/instructions.sh stacks weir-server
set -euo pipefail
bench=${1:?usage: scripts/instructions.sh BENCH ID [N]}
id_=${2:?usage: scripts/instructions.sh BENCH ID [N]}
n=${3:-20000}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
binary=$(cargo bench --bench "$bench" --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
total() {
  WEIR_BENCH_CALLS=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$binary" --bench "$id_" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'| tail -1
}
one=$(total "$n")
two=$(total $((2 * n)))
echo "$bench/$id_: $(( (two - one) / n )) instructions per call"

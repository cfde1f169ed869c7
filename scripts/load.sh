#!/usr/bin/env bash
# A real server under load (#18): wrk against an axum hello-world on 127.0.0.1 (the release build
# of examples/load_server.rs) in three modes, one after another with the same wrk settings:
#   bare   the handler alone
#   weir   behind weir::ServerStack with a rate limit keyed by `x-client` (a quota never reached)
#   tower  behind tower's LoadShed + ConcurrencyLimit + Timeout + Buffer + RateLimit (never throttles)
# and prints requests/s and p99 latency per mode, their ratios to bare, and weir ÷ tower.
#
#   scripts/load.sh [SECONDS]      SECONDS per measured run, default 10
#
# Environment: WEIR_LOAD_CONNECTIONS (default 64), WEIR_LOAD_THREADS (wrk threads; default the
# cores wrk gets), WEIR_LOAD_ROUNDS (default 1: each round runs every mode once, in turn; with
# more, each figure is the median over rounds), WEIR_LOAD_WARMUP (seconds of unmeasured load
# before each run, default 1). Every request carries `x-client: load` (one key), in every mode.
#
# Installs wrk with apt-get if it is missing. With two cores or more, the server and wrk are
# pinned with taskset to separate halves of the cores this shell may use (on two cores: one
# each), so they do not compete for a core; with one, both share it (the figures say so).
# Bounded in time: about (WARMUP + SECONDS + 1) x 3 x ROUNDS seconds after the build.
set -euo pipefail
usage="usage: scripts/load.sh [SECONDS]"
seconds=${1:-10}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || { echo "$usage" >&2; exit 2; }
connections=${WEIR_LOAD_CONNECTIONS:-64}
rounds=${WEIR_LOAD_ROUNDS:-1}
warmup=${WEIR_LOAD_WARMUP:-1}
modes=(bare weir tower)
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null; then
  echo "load.sh: installing wrk with apt-get" >&2
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "load.sh: need root to apt-get install wrk" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq wrk >/dev/null
fi

if ! json=$(cargo build --release --example load_server --message-format=json-render-diagnostics); then
  echo "load.sh: cargo could not build examples/load_server.rs" >&2
  exit 1
fi
server=$(printf '%s\n' "$json" | sed -n 's/.*"executable":"\([^"]*load_server\)".*/\1/p' | tail -1)
[ -x "$server" ] || { echo "load.sh: no load_server executable" >&2; exit 1; }

# The cores this shell may use (taskset's list, e.g. "0-3,6"), one per element.
cpus=()
if command -v taskset >/dev/null; then
  list=$(taskset -cp $$ | sed 's/.*: *//')
  IFS=, read -ra ranges <<<"$list"
  for range in "${ranges[@]}"; do
    if [[ $range == *-* ]]; then
      for ((c = ${range%-*}; c <= ${range#*-}; c++)); do cpus+=("$c"); done
    else
      cpus+=("$range")
    fi
  done
fi
server_pin=()
wrk_pin=()
if ((${#cpus[@]} >= 2)); then
  half=$((${#cpus[@]} / 2))
  server_cpus=$(IFS=,; echo "${cpus[*]:0:half}")
  wrk_cpus=$(IFS=,; echo "${cpus[*]:half}")
  server_pin=(taskset -c "$server_cpus")
  wrk_pin=(taskset -c "$wrk_cpus")
  wrk_cores=$((${#cpus[@]} - half))
  placement="server on cpu $server_cpus, wrk on cpu $wrk_cpus"
else
  wrk_cores=1
  placement="server and wrk share the cores (fewer than two, or no taskset)"
fi
threads=${WEIR_LOAD_THREADS:-$wrk_cores}

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Starts the server in mode $1 and sets $addr; waits at most 10 s for its first line.
start() {
  "${server_pin[@]}" "$server" "$1" >"$tmp/server.out" 2>"$tmp/server.err" &
  pid=$!
  addr=
  for _ in $(seq 100); do
    addr=$(sed -n 's/^listening on //p' "$tmp/server.out")
    [ -n "$addr" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "load.sh: the $1 server did not start" >&2
  cat "$tmp/server.err" >&2
  exit 1
}

stop() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}

# p99 from wrk's latency distribution, in microseconds ("1.23ms" -> 1230).
p99_us() {
  awk '$1 == "99%" {
    v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
    f = (unit == "us") ? 1 : (unit == "ms") ? 1000 : (unit == "s") ? 1000000 : -1
    if (f < 0) { print "unit?" } else { printf "%.0f\n", v * f }
  }' "$1"
}

# Median of the numbers on stdin.
median() {
  sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

run() {
  local mode=$1 round=$2 out="$tmp/$1.$2.wrk"
  start "$mode"
  local url="http://$addr/"
  if ((warmup > 0)); then
    "${wrk_pin[@]}" wrk -t"$threads" -c"$connections" -d"${warmup}s" -H "x-client: load" \
      "$url" >/dev/null
  fi
  "${wrk_pin[@]}" wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency \
    -H "x-client: load" "$url" >"$out"
  stop
  if grep -q "Non-2xx or 3xx responses\|Socket errors" "$out"; then
    echo "load.sh: the $mode run had failures; its figures are not a measure:" >&2
    cat "$out" >&2
    exit 1
  fi
  awk '/^Requests\/sec:/ { print $2 }' "$out" >>"$tmp/$mode.rps"
  p99_us "$out" >>"$tmp/$mode.p99"
  printf '  round %d %-5s %10.0f requests/s, p99 %s us\n' "$round" "$mode" \
    "$(tail -1 "$tmp/$mode.rps")" "$(tail -1 "$tmp/$mode.p99")" >&2
}

echo "load.sh: ${seconds}s per run (+${warmup}s warm-up), $threads wrk threads," \
  "$connections connections, $rounds round(s); $placement"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= rounds; r++)); do
  for mode in "${modes[@]}"; do run "$mode" "$r"; done
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A rps p99
for mode in "${modes[@]}"; do
  rps[$mode]=$(median <"$tmp/$mode.rps")
  p99[$mode]=$(median <"$tmp/$mode.p99")
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '%-6s %12s %10s %14s %12s\n' mode requests/s "p99 (us)" "rps / bare" "p99 / bare"
for mode in "${modes[@]}"; do
  printf '%-6s %12.0f %10s %14s %12s\n' "$mode" "${rps[$mode]}" "${p99[$mode]}" \
    "$(ratio "${rps[$mode]}" "${rps[bare]}")" "$(ratio "${p99[$mode]}" "${p99[bare]}")"
done
echo "weir / tower: requests/s $(ratio "${rps[weir]}" "${rps[tower]}")," \
  "p99 $(ratio "${p99[weir]}" "${p99[tower]}")"

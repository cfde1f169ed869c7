#!/usr/bin/env bash
# Mutation testing of weir's pure algorithm modules with cargo-mutants: each module's mutants
# (a `+` made `-`, a `<` made `<=`, a body replaced by `Default::default()`, ...) are built and
# its crate's unit tests run against each; a mutant the tests still pass is a gap (or an
# equivalent mutant, listed with its reason in mutants-equivalent.txt).
#
#   scripts/mutants.sh                       # every module below
#   scripts/mutants.sh core-wire retry-budget  # some of them, by name
#   MUTANTS_TIMEOUT=120 MUTANTS_JOBS=2 scripts/mutants.sh core-backoff
#   MUTANTS_SHARD=1/4 scripts/mutants.sh core-wire   # one mutant in four (round-robin)
#   MUTANTS_SKIP=29 scripts/mutants.sh core-backoff  # all but the first 29 in file order (the
#                                              # rest of a run that stopped; before any shard)
#   MUTANTS_IN_PLACE=1 scripts/mutants.sh ...  # mutate this tree's files (restored after each
#                                              # mutant) and reuse its target/: no copy, no
#                                              # cold build; edit nothing in the tree meanwhile
#
# Each module's results land in target/mutants/<name>/mutants.out/ (caught.txt, missed.txt,
# unviable.txt, timeout.txt, outcomes.json); the last line per module is its count.
# Exits non-zero when a module has a missed mutant that mutants-equivalent.txt does not list.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

if ! cargo mutants --version >/dev/null 2>&1; then
    echo "==> installing cargo-mutants"
    cargo install cargo-mutants --locked
fi

# name | package | files (--file globs, relative to the package) | cargo test arguments
# Only the crate's unit tests (--lib) are built and run: they are the tests of these modules,
# and the crate's integration tests over real servers would multiply the run time by ten.
modules=(
    "core-wire|weir-core|src/wire/*.rs|--lib"
    "core-backoff|weir-core|src/backoff.rs|--lib"
    "core-deadline|weir-core|src/deadline.rs|--lib"
    "core-keyed|weir-core|src/keyed/*.rs|--lib"
    "retry-budget|weir-retry|src/budget/*.rs|--lib"
    "breaker-state|weir-circuit-breaker|src/state/*.rs|--lib"
    "load-shed-limit|weir-load-shed|src/limit/*.rs|--lib"
)

timeout="${MUTANTS_TIMEOUT:-60}"
jobs="${MUTANTS_JOBS:-1}"
wanted=("$@")
failed=()
summary=()
for entry in "${modules[@]}"; do
    IFS='|' read -r name package files test_args <<<"$entry"
    if [ "${#wanted[@]}" -gt 0 ] && ! printf '%s\n' "${wanted[@]}" | grep -qxF "$name"; then
        continue
    fi
    dir="crates/$package"
    out="target/mutants/$name"
    mkdir -p "$out"
    args=(--package "$package" --timeout "$timeout" --output "$out"
        --no-shuffle --exclude-re 'impl (Debug|Display)')
    for glob in $files; do
        args+=(--file "$dir/$glob")
    done
    for arg in $test_args; do
        args+=(--cargo-test-arg="$arg")
    done
    if [ -n "${MUTANTS_SKIP:-}" ]; then
        # The module's first MUTANTS_SKIP mutants in file order (as --list names them),
        # excluded by name, each escaped and the whole anchored.
        skipped=$(cargo mutants "${args[@]}" --list | sed -n "1,${MUTANTS_SKIP}p" |
            sed 's/[][\\.*+?(){}|^$]/\\&/g' | paste -sd'|')
        [ -z "$skipped" ] || args+=(--exclude-re "^($skipped)\$")
    fi
    # In place, one mutant at a time (cargo-mutants refuses --jobs there).
    if [ -n "${MUTANTS_IN_PLACE:-}" ]; then args+=(--in-place); else args+=(--jobs "$jobs"); fi
    [ -n "${MUTANTS_SHARD:-}" ] && args+=(--shard "$MUTANTS_SHARD" --sharding round-robin)
    echo "==> cargo mutants ${args[*]}"
    start=$(date +%s)
    # cargo-mutants exits 2 when a mutant is missed, 3 on a timeout: read its files instead.
    cargo mutants "${args[@]}" || true
    dir_out="$out/mutants.out"
    if [ ! -f "$dir_out/outcomes.json" ]; then
        echo "    $name: cargo-mutants did not run" >&2
        failed+=("$name")
        continue
    fi
    count() {
        local n
        n=$(grep -c . "$dir_out/$1.txt" 2>/dev/null) || true
        echo "${n:-0}"
    }
    caught=$(count caught) missed=$(count missed) unviable=$(count unviable) timeouts=$(count timeout)
    # A missed mutant is explained when mutants-equivalent.txt lists it (its line in missed.txt,
    # file:line:col and the replacement, before the `#` of the reason).
    unexplained=0
    if [ -f "$dir_out/missed.txt" ]; then
        while IFS= read -r line; do
            grep -qF -- "$line" mutants-equivalent.txt 2>/dev/null || {
                echo "    missed: $line"
                unexplained=$((unexplained + 1))
            }
        done <"$dir_out/missed.txt"
    fi
    line=$(printf '%-16s caught %4s  missed %3s (%s unexplained)  unviable %3s  timeout %2s  in %s s' \
        "$name" "$caught" "$missed" "$unexplained" "$unviable" "$timeouts" "$(( $(date +%s) - start ))")
    echo "    $line"
    summary+=("$line")
    [ "$unexplained" -eq 0 ] || failed+=("$name")
done

echo "==> summary"
printf '    %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "==> modules with unexplained survivors: ${failed[*]}" >&2
    exit 1
fi

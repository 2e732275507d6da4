#!/usr/bin/env bash
# Runs the cargo-fuzz (libFuzzer) targets in fuzz/, one after another, each for a given time.
#
#   scripts/fuzz.sh [seconds-per-target] [target...]
#
# Defaults: 60 seconds, every target. FUZZ_RUNS=N also stops a target after N executions
# (whichever comes first). Each target starts from its committed seeds (fuzz/corpus/<target>/)
# plus what earlier runs on this machine found (fuzz/scratch/<target>/, git-ignored; libFuzzer
# writes new inputs only there). Prints each target's execution count and coverage and exits
# non-zero if any target found a crash; reproducers land in fuzz/artifacts/<target>/.
#
# Stable Rust: cargo-fuzz's default AddressSanitizer build passes `-Zsanitizer=address`, which
# only a nightly rustc accepts, and this machine has only the stable toolchain. `--sanitizer
# none` (`-s none`) drops just that flag; the SanitizerCoverage instrumentation libFuzzer is
# guided by (`-Cpasses=sancov-module`, `-Cllvm-args=-sanitizer-coverage-*`) is made of stable
# codegen options, so coverage-guided fuzzing works unchanged. Losing ASan costs nothing here:
# the code under test is safe Rust (the only `unsafe` is the wasm host glue, which is not built
# natively), so bounds and overflow errors already panic, and cargo-fuzz's default build keeps
# debug assertions and overflow checks on. No RUSTC_BOOTSTRAP is needed.
#
# One fuzzer runs at a time, single job: the machine has two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
  echo "usage: scripts/fuzz.sh [seconds-per-target] [target...]" >&2
  exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

all_targets=$(cargo fuzz list)
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets <<<"$all_targets"
fi
for target in "${targets[@]}"; do
  if ! grep -qx "$target" <<<"$all_targets"; then
    echo "unknown fuzz target: $target (have: $(tr '\n' ' ' <<<"$all_targets"))" >&2
    exit 2
  fi
done

# Longest input per target: room for bodies and baggage past their limits (8192 bytes).
max_len() {
  case "$1" in
    baggage) echo 20000 ;;
    scan_body | request_plan) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

# Tokens that help libFuzzer build MCP bodies and W3C values quickly.
dict() {
  case "$1" in
    scan_body | request_plan) echo fuzz/dict/json.dict ;;
    traceparent | tracestate | baggage) echo fuzz/dict/w3c.dict ;;
    *) echo fuzz/dict/json.dict ;;
  esac
}

echo "== building fuzz targets"
cargo fuzz build -s none

summary=()
failed=()
for target in "${targets[@]}"; do
  scratch="fuzz/scratch/$target"
  log="fuzz/scratch/$target.log"
  mkdir -p "$scratch" "fuzz/artifacts/$target"
  runs=()
  if [ -n "${FUZZ_RUNS:-}" ]; then
    runs=("-runs=$FUZZ_RUNS")
  fi
  echo "== fuzzing $target for ${seconds}s${FUZZ_RUNS:+ or $FUZZ_RUNS runs} (log: $log)"
  start=$(date +%s)
  status=0
  cargo fuzz run -s none "$target" "$scratch" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" "${runs[@]}" -max_len="$(max_len "$target")" \
    -dict="$(dict "$target")" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  coverage=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)
  line="$target: ${execs:-?} execs in ${elapsed}s, ${coverage:-cov: ?}"
  if [ "$status" -ne 0 ]; then
    line="$line, FAILED (exit $status)"
    failed+=("$target")
    grep -E 'panicked at|^SUMMARY|Test unit written to|ERROR: libFuzzer' "$log" | head -n 8 || true
  fi
  echo "$line"
  summary+=("$line")
done

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "findings in: ${failed[*]} (reproducers in fuzz/artifacts/<target>/)" >&2
  exit 1
fi

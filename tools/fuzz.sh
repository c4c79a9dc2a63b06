#!/usr/bin/env bash
# Fuzzes every parser with libFuzzer: tools/fuzz.sh [SECONDS] [TARGET ...]
# Builds tests/fuzz/fuzz_<target>.cpp with clang (-fsanitize=fuzzer,address,undefined, the whole
# library instrumented) in build-fuzz (FUZZ_BUILD_DIR), then runs each target for SECONDS (default
# 60) from a copy of its seed corpus tests/fuzz/corpus/<target>/, with a memory cap
# (-rss_limit_mb, also the cap on one allocation) and a cap on input size (-max_len). New inputs
# stay in build-fuzz/corpus/<target>; a crash, a sanitizer report, a leak, an out-of-memory or a
# timeout leaves its input in build-fuzz/artifacts/<target>/ (add it to the seed corpus as
# crash-<what> once the parser is fixed). Prints runs, coverage (cov, ft) and findings per target;
# exits non-zero when any target found something.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-60}"
shift || true
BUILD="${FUZZ_BUILD_DIR:-build-fuzz}"
JOBS="${JOBS:-$(nproc)}"
RSS_MB="${FUZZ_RSS_MB:-2048}"
ALL=(safetensors config glue_tsv glue_export vocab wordpiece args trainer_state manifest rng_state)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL[@]}")
max_len() {
  case "$1" in
    wordpiece) echo 1024 ;;   # the tokenizer is linear; longer texts only slow each run
    args) echo 2048 ;;
    *) echo 8192 ;;
  esac
}
dict() {
  case "$1" in
    config | trainer_state | manifest | rng_state | args | glue_export) echo "-dict=tests/fuzz/json.dict" ;;
  esac
}

CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DBERTRAZOR_FUZZ=ON -DBERTRAZOR_CUDA=OFF \
  -DBERTRAZOR_BENCHMARKS=OFF -DBERTRAZOR_MPI=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target $(printf 'fuzz_%s ' "${TARGETS[@]}")

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
found=0
summary=()
for t in "${TARGETS[@]}"; do
  work="$BUILD/corpus/$t" art="$BUILD/artifacts/$t"
  mkdir -p "$work" "$art"
  log="$BUILD/fuzz_$t.log"
  set +e
  "$BUILD/tests/fuzz_$t" -max_total_time="$SECONDS_EACH" -rss_limit_mb="$RSS_MB" \
    -malloc_limit_mb="$RSS_MB" -max_len="$(max_len "$t")" -timeout=10 -print_final_stats=1 \
    $(dict "$t") -artifact_prefix="$art/" "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
  n_art=$(find "$art" -type f | wc -l)
  [ "$rc" -ne 0 ] || [ "$n_art" -ne 0 ] && found=1
  line=$(printf '%-14s %10s runs in %ss  %-22s exit %d  findings %d' "$t" "${runs:-?}" \
    "$SECONDS_EACH" "${cov:-cov: ?}" "$rc" "$n_art")
  echo "$line"
  summary+=("$line")
  if [ "$rc" -ne 0 ]; then grep -m 5 -E 'ERROR|runtime error|invariant|SUMMARY' "$log" || true; fi
done
echo "fuzz.sh: summary ($BUILD/fuzz_<target>.log has each run)"
printf '  %s\n' "${summary[@]}"
exit "$found"

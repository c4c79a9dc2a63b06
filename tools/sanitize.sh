#!/usr/bin/env bash
# The CPU test suite under AddressSanitizer + UndefinedBehaviorSanitizer, in one command:
#   tools/sanitize.sh            (or tools/test.sh --sanitize)
# Builds -DBERTRAZOR_CUDA=OFF with -fsanitize=address,undefined -fno-sanitize-recover=all in its own
# folder (SANITIZE_BUILD_DIR, default build-sanitize) and runs every ctest entry. Any ASan or UBSan
# report aborts the test that triggers it, so a passing run means zero reports. Leak reports are
# on; tools/lsan.supp suppresses only leaks whose stack runs through OpenMPI's own libraries.
# Extra arguments go to ctest (e.g. -R 'train:').
#
#   tools/sanitize.sh --thread   ThreadSanitizer instead, over the threaded code: test_kernels (the
# OpenMP CPU kernels, every op of the table) and test_train's [communicator] cases (the TCP
# collectives between threads and the GradientReducer on them). Built with clang in build-tsan
# (TSAN_BUILD_DIR): OpenMP is LLVM's libomp there, whose synchronisation TSan sees through the
# Archer tool (OMP_TOOL_LIBRARIES=libarcher.so). GCC's libgomp is not instrumented, so under
# g++ every OpenMP barrier would look like a race (docs/DEVELOPING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--thread" ]; then
  shift
  BUILD="${TSAN_BUILD_DIR:-build-tsan}"
  JOBS="${JOBS:-$(nproc)}"
  start=$(date +%s)
  CC=clang CXX=clang++ cmake -S . -B "$BUILD" -DBERTRAZOR_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBERTRAZOR_BENCHMARKS=OFF -DBERTRAZOR_FUZZ=OFF -DBERTRAZOR_MPI=OFF \
    -DCMAKE_CXX_FLAGS="-fsanitize=thread" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null
  cmake --build "$BUILD" -j "$JOBS" --target test_kernels test_train
  built=$(date +%s)
  archer="$(clang -print-file-name=libarcher.so)"
  [ -f "$archer" ] || archer="$(llvm-config --libdir 2>/dev/null)/libarcher.so"
  [ -f "$archer" ] || { echo "sanitize.sh: libarcher.so not found (Debian: libomp-dev)"; exit 1; }
  export OMP_TOOL_LIBRARIES="$archer" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
  # ignore_noninstrumented_modules: Debian's libomp is not built with TSan annotations, so its own
  # mutexes (pthread_mutex_init in one thread, lock in another, ordered by its barrier) read as races;
  # Archer asks for this option. Accesses in our instrumented code are still all checked.
  export TSAN_OPTIONS="halt_on_error=1:abort_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
  "$BUILD/tests/test_kernels" "$@"
  "$BUILD/tests/test_train" "[communicator]" "$@"
  end=$(date +%s)
  echo "sanitize.sh: ThreadSanitizer runs passed (build $((built - start)) s, tests $((end - built)) s)"
  exit 0
fi
BUILD="${SANITIZE_BUILD_DIR:-build-sanitize}"
JOBS="${JOBS:-$(nproc)}"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
start=$(date +%s)
cmake -S . -B "$BUILD" -DBERTRAZOR_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DBERTRAZOR_BENCHMARKS=OFF -DBERTRAZOR_FUZZ=OFF \
  -DCMAKE_CXX_FLAGS="$SAN" -DCMAKE_EXE_LINKER_FLAGS="$SAN" >/dev/null
cmake --build "$BUILD" -j "$JOBS"
built=$(date +%s)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
# halt_on_error + abort: the first report fails the test; LSan runs at every process exit.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# The ranks mpirun starts unwind malloc stacks with DWARF (fast_unwind_on_malloc=0): OpenMPI
# dlcloses its mca_ components in MPI_Finalize, so a leak they allocated has its top frames in
# "<unknown module>", where the frame-pointer unwinder stops (OpenMPI has no frame pointers); the
# slow unwinder reaches the libmpi.so / libopen-pal.so frames below, which tools/lsan.supp names.
# Only there: it made a test of the whole suite 12x slower (docs/RESULTS.md, 2026-12-03).
export OMPI_MCA_mca_base_env_list="ASAN_OPTIONS=$ASAN_OPTIONS:fast_unwind_on_malloc=0${OMPI_MCA_mca_base_env_list:+;$OMPI_MCA_mca_base_env_list}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$PWD/tools/lsan.supp:print_suppressions=1${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" "$@"
end=$(date +%s)
echo "sanitize.sh: ASan + UBSan suite passed (build $((built - start)) s, tests $((end - built)) s)"

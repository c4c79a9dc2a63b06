#!/usr/bin/env bash
# The whole test suite, as CI runs it: dependencies, build (CPU and CUDA code), ctest, install, and
# the example trainer built against the installed package.
#   tools/test.sh --sanitize [--thread]   instead: the CPU suite under ASan + UBSan (tools/sanitize.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--sanitize" ]; then
  shift
  tools/install_deps.sh
  exec tools/sanitize.sh "$@"
fi
tools/install_deps.sh
BUILD="${BUILD_DIR:-build}"
JOBS="${JOBS:-$(nproc)}"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBERTRAZOR_BENCHMARKS=ON >/dev/null
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"  # spinning OpenMP threads starve parallel tests on 2 cores
cmake --build "$BUILD" -j "$JOBS"
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS"
cmake --install "$BUILD" --prefix "$BUILD/install" >/dev/null
cmake -S examples/minimal_trainer -B "$BUILD/example" -DCMAKE_PREFIX_PATH="$PWD/$BUILD/install" >/dev/null
cmake --build "$BUILD/example" -j "$JOBS"
"$BUILD/example/minimal_trainer"
echo "test.sh: all tests passed"

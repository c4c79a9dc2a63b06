#!/usr/bin/env bash
# Proves that a model bertrazor writes loads in transformers with identical logits: fine-tunes
# all-MiniLM-L6-v2 on RTE for a few steps, dumps our logits for a fixed batch, and has
# tools/check_hf_model.py compare them with transformers' (tolerance 1e-5).
#   tools/check_roundtrip.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
PY="$(tools/setup_python.sh | tail -1)"
MODEL="$(tools/get_model.sh all-MiniLM-L6-v2 | tail -1)"
OUT="$(mktemp -d)/roundtrip"
OMP_WAIT_POLICY=PASSIVE "$BUILD/bertrazor" train --model_name_or_path "$MODEL" --task_name rte \
  --data_dir "${DATA_DIR:-../shared/data/glue/RTE}" --output_dir "$OUT" --do_train --max_seq_length 64 \
  --per_device_train_batch_size 8 --max_steps 3 --device cpu --disable_tqdm True >/dev/null
BERTRAZOR_ROUNDTRIP_DIR="$OUT" "$BUILD/tests/test_models" "[hf_roundtrip]" >/dev/null
"$PY" tools/check_hf_model.py "$OUT" --logits "$OUT/our_logits.safetensors"

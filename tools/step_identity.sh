#!/usr/bin/env bash
# Prints, for each Back Razor preset, 3 logged training steps of all-MiniLM-L6-v2 on RTE (CPU,
# dropout on) and the SHA-256 of the weights after them. Run it with two binaries (before and after a
# refactor) and diff the outputs: equal text means bit-identical steps.
# Usage: tools/step_identity.sh BERTRAZOR_BINARY [PRESETS...]   (default presets: none seed all balanced)
# EXTRA="--gradient_checkpointing" adds flags to every run (e.g. to diff a plan against none).
set -euo pipefail
bin="$(realpath "$1")"; shift
presets=("$@"); ((${#presets[@]})) || presets=(none seed all balanced)
root="$(cd "$(dirname "$0")/.." && pwd)"
model="$("$root/tools/get_model.sh" | tail -1)"
data="${DATA_DIR:-$root/../shared/data/glue/RTE}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
for p in "${presets[@]}"; do
  "$bin" train --model_name_or_path "$model" --task_name rte --data_dir "$data" --do_train \
    --max_seq_length 64 --per_device_train_batch_size 8 --learning_rate 5e-5 --max_steps 3 \
    --logging_steps 1 --save_strategy no --seed 42 --backRazor True --backrazor_preset "$p" \
    --output_dir "$work/$p" --report_to none ${EXTRA:-} >"$work/$p.log" 2>&1 || { cat "$work/$p.log"; exit 1; }
  python3 - "$work/$p" "$p" <<'PY'
import hashlib, json, sys
out, preset = sys.argv[1], sys.argv[2]
state = json.load(open(f"{out}/trainer_state.json"))
for e in state["log_history"]:
    if "loss" in e:
        print(f"{preset:9s} step {e['step']}: loss {e['loss']!r} grad_norm {e['grad_norm']!r} "
              f"learning_rate {e['learning_rate']!r}")
print(f"{preset:9s} weights sha256 {hashlib.sha256(open(f'{out}/model.safetensors','rb').read()).hexdigest()}")
PY
done

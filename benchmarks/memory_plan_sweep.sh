#!/usr/bin/env bash
# The memory planner's sweep (docs/RESULTS.md): the dense step's measured peak, then for budgets of
# 75/50/30/15% of it the plan `bertrazor memory --max_memory` chooses, its predicted peak and the
# allocator's measured peak of the real step under it. One markdown row per budget. Then the same
# for budgets of the persistent bytes (parameters, gradients, AdamW state, batch) plus 75/50/30/15%
# of the rest of the dense peak (the activations' part), which small models need to show anything.
#   benchmarks/memory_plan_sweep.sh BUILD_DIR MODEL SEQ BATCH [extra memory flags...]
set -euo pipefail
build=$1 model=$2 seq=$3 batch=$4
shift 4
extra=("$@")
run() {  # budget -> JSON of one memory run
  "$build/bertrazor" memory --model_name_or_path "$model" --max_seq_length "$seq" \
    --per_device_train_batch_size "$batch" --device cpu --max_memory "$1" --json ${extra[@]+"${extra[@]}"}
}
read -r dense fixed < <(run 1000TB | python3 -c 'import json,sys; j=json.load(sys.stdin); b=j["memory_plan"]["predicted_bytes"]; print(j["peak_bytes"], b["parameters"]+b["gradients"]+b["optimizer_state"]+b["inputs"])')
echo "dense step: measured peak $dense bytes, of which $fixed persistent"
echo "| budget | bytes | plan | predicted peak | measured peak | measured / budget | extra FLOPs |"
echo "|---|---|---|---|---|---|---|"
for row in 75 50 30 15 a75 a50 a30 a15; do
  pct=${row#a}
  if [[ $row == a* ]]; then
    budget=$((fixed + (dense - fixed) * pct / 100)); label="persistent + ${pct}% of activations"
  else
    budget=$((dense * pct / 100)); label="${pct}%"
  fi
  if ! out=$(run "${budget}B" 2>&1); then
    echo "| $label | $budget | no plan: ${out//$'\n'/ } | | | | |"
    continue
  fi
  python3 - "$label" "$budget" "$out" <<'PY'
import json, sys
label, budget, j = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
p = j["memory_plan"]
desc = p["description"].strip().replace("\n", "; ")
print(f"| {label} | {budget} | {p['kind']}: {desc} | {p['predicted_bytes']['peak']} | {j['peak_bytes']} "
      f"| {j['peak_bytes'] / budget:.3f} | {100 * p['extra_flops'] / p['dense_step_flops']:.1f}% |")
PY
done

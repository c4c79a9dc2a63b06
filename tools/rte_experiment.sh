#!/usr/bin/env bash
# RTE with all-MiniLM-L6-v2 on the CPU: dense vs Back Razor presets, for the given seeds.
# POLICIES picks them (default "dense seed all"; "balanced" too; "memSIZE" is the planner's plan under
# --max_memory SIZE, e.g. mem432000000B; "bf16" is dense with --bf16). Writes OUT/<policy>-seed<N>/ (the
# usual output folders) and prints a markdown table of dev accuracy, saved-activation bytes and
# training time over every run in OUT. The numbers in docs/RESULTS.md come from it.
#   tools/rte_experiment.sh OUT [SEEDS...]      (env: EPOCHS=3 MAX_SEQ=128 BATCH=16 LR=5e-5 BIN=...)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:?usage: tools/rte_experiment.sh OUT [SEEDS...]}"
shift
SEEDS=("${@:-42}")
EPOCHS="${EPOCHS:-3}"; MAX_SEQ="${MAX_SEQ:-128}"; BATCH="${BATCH:-16}"; LR="${LR:-5e-5}"
BIN="${BIN:-build/bertrazor}"
DATA="${DATA_DIR:-../shared/data/glue/RTE}"
POLICIES="${POLICIES:-dense seed all}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
MODEL="$(tools/get_model.sh all-MiniLM-L6-v2 | tail -1)"
echo "model: $MODEL"
mkdir -p "$OUT"
for seed in "${SEEDS[@]}"; do
  for policy in $POLICIES; do
    dir="$OUT/$policy-seed$seed"
    [ -f "$dir/all_results.json" ] && continue
    br=()
    case "$policy" in
      dense) ;;
      mem*) br=(--max_memory "${policy#mem}") ;;  # the planner's plan under that budget
      bf16) br=(--bf16 True) ;;  # dense, bf16 products (CPU) or bf16 compute (CUDA)
      *) br=(--backRazor True --backrazor_preset "$policy") ;;
    esac
    "$BIN" train --model_name_or_path "$MODEL" --task_name rte --data_dir "$DATA" \
      --output_dir "$dir" --overwrite_output_dir --do_train --do_eval --max_seq_length "$MAX_SEQ" \
      --pad_to_max_length False --per_device_train_batch_size "$BATCH" --learning_rate "$LR" \
      --num_train_epochs "$EPOCHS" --evaluation_strategy epoch --save_strategy no \
      --logging_steps 50 --seed "$seed" --device cpu --disable_tqdm True "${br[@]}" \
      > "$dir.log" 2>&1 || { echo "run $dir failed; see $dir.log" >&2; tail -5 "$dir.log" >&2; exit 1; }
    echo "$policy seed $seed: $(grep -o "eval_accuracy[^,}]*" "$dir/all_results.json" | tail -1)"
  done
done
python3 - "$OUT" <<'PY'
import json, os, sys, statistics as st
out = sys.argv[1]
rows = {}
for d in sorted(os.listdir(out)):
    p = os.path.join(out, d, "all_results.json")
    if not os.path.isfile(p): continue
    policy, seed = d.rsplit("-seed", 1)
    r = json.load(open(p))
    rows.setdefault(policy, []).append(r)
dense_bytes = st.mean(r["train_saved_activation_bytes"] for r in rows.get("dense", [{"train_saved_activation_bytes": float("nan")}]))
print("| policy | runs | dev accuracy mean | min..max | saved-activation bytes per step | vs dense | train time s (mean) |")
print("|---|---|---|---|---|---|---|")
for policy in ["dense", "seed", "all", "balanced", "bf16"] + sorted(p for p in rows if p.startswith("mem")):
    if policy not in rows: continue
    rs = rows[policy]
    acc = [r["eval_accuracy"] for r in rs]
    b = st.mean(r["train_saved_activation_bytes"] for r in rs)
    t = st.mean(r["train_runtime"] for r in rs)
    print(f"| {policy} | {len(rs)} | {st.mean(acc):.4f} | {min(acc):.4f}..{max(acc):.4f} | {b:,.0f} | {b/dense_bytes:.3f} | {t:.0f} |")
PY

#!/usr/bin/env bash
# The one prepared GPU check (docs/GPU.md). Run from the repository root on the GPU machine with
# the bundle from tools/build_for_gpu.sh carried along:
#   tools/gpu_check.sh OUTDIR            # real run, < 8 minutes on an H200
#   tools/gpu_check.sh OUTDIR --dry-run  # or BERTRAZOR_GPU_CHECK_DRY=1: CPU rehearsal
# Order: environment, ceilings (copy bandwidth, bf16/fp32 matmul), CUDA tests, data-parallel
# training through NCCL (1 and 2 processes on the one GPU), our training step (bf16 and fp32)
# and the PyTorch peers at seq 128/batch 32 and seq 512/batch 8 and 32, peak activation memory
# with and without gradient checkpointing (HF and ours, seq 512/batch 8), largest batch at seq 512
# under 16 GiB, kernel microbenchmarks, CUDA tests under compute-sanitizer memcheck, HF with
# torch.compile. Every step has its own timeout; a failed step is recorded and the next one runs;
# a step that would not fit the global budget (BERTRAZOR_GPU_CHECK_BUDGET_S, default 450 s) is
# skipped and recorded. OUTDIR gets one file per step, steps.tsv and summary.md.
# Environment: BERTRAZOR_BUNDLE (default build-gpu-bundle), PYTHON (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

OUTDIR="${1:-}"
[ -n "$OUTDIR" ] || { echo "usage: tools/gpu_check.sh OUTDIR [--dry-run]" >&2; exit 2; }
DRY="${BERTRAZOR_GPU_CHECK_DRY:-0}"
[ "${2:-}" = "--dry-run" ] && DRY=1
BUDGET="${BERTRAZOR_GPU_CHECK_BUDGET_S:-450}"
BUNDLE="${BERTRAZOR_BUNDLE:-build-gpu-bundle}"
case "$BUNDLE" in /*) ;; *) BUNDLE="$PWD/$BUNDLE" ;; esac
BIN="$BUNDLE/bin"
PY="${PYTHON:-python3}"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
STEPS="$OUTDIR/steps.tsv"
: >"$STEPS"
START=$(date +%s)

have_gpu=0
if [ "$DRY" != 1 ] && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then have_gpu=1; fi
if [ "$DRY" != 1 ] && [ "$have_gpu" = 0 ]; then
  echo "gpu_check: no GPU answers nvidia-smi; use --dry-run for a CPU rehearsal" >&2
  printf 'gpu\tfailed\t0\tnvidia-smi found no GPU\n' >>"$STEPS"
  printf 'dry=0\nerror=no GPU\n' >"$OUTDIR/meta.txt"
  "$PY" tools/gpu_summary.py "$OUTDIR"
  exit 1
fi

# The shapes and sizes of the real run; the dry run shrinks them to the tiny config on the CPU.
if [ "$DRY" = 1 ]; then
  DEV=cpu; CONFIG=benchmarks/configs/bert-tiny-check.json
  SHAPES="64x4 32x2"; MAXSEQ=64; CAP=$((64 << 20)); MAXB=8; STEPS_N=2; WARM=1
else
  DEV=cuda; CONFIG=benchmarks/configs/bert-base-uncased.json
  SHAPES="128x32 512x8 512x32"; MAXSEQ=512; CAP=$((16 << 30)); MAXB=512; STEPS_N=10; WARM=3
fi
PY_SHAPES=$(echo "$SHAPES" | tr ' ' ',')

remaining() { echo $((BUDGET - ($(date +%s) - START))); }

# step NAME TIMEOUT MIN_LEFT LOGFILE CMD...: runs CMD with a timeout (shrunk to the budget left),
# output to OUTDIR/LOGFILE; records status, seconds and the command in steps.tsv.
step() {
  local name="$1" limit="$2" need="$3" log="$4"; shift 4
  local left; left=$(remaining)
  local cmd="$*"
  if [ "$left" -lt "$need" ]; then
    printf '%s\tskipped (budget: %ss left, needs %ss)\t0\t%s\n' "$name" "$left" "$need" "$cmd" >>"$STEPS"
    echo "gpu_check: skip $name (budget)"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit="$left"
  echo "gpu_check: [$((BUDGET - left))s] $name (limit ${limit}s)"
  local t0; t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" >>"$OUTDIR/$log" 2>>"$OUTDIR/${log%.*}.err"
  local rc=$?
  local dt=$(($(date +%s) - t0))
  local status=ok
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then status="timeout after ${limit}s"; elif [ "$rc" != 0 ]; then status="failed rc=$rc"; fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$dt" "$cmd" >>"$STEPS"
  return 0
}
note() { printf '%s\t%s\t0\t%s\n' "$1" "$2" "$3" >>"$STEPS"; }

# ---- environment ----
{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "dry=$DRY"
  echo "commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "host=$(uname -srm)"
  echo "device=$DEV config=$CONFIG shapes=$SHAPES budget_s=$BUDGET bundle=$BUNDLE"
} >"$OUTDIR/meta.txt"

# Libraries: the bundle's own (fmt, utf8proc, OpenMP, cudart), then the toolkit's and PyTorch's
# cuBLAS. Tests read data under the source dir compiled in (/work/main): link it if absent.
pylibs=$("$PY" -c 'import glob,os,site; print(":".join(sorted({os.path.dirname(p) for d in site.getsitepackages() for p in glob.glob(d+"/nvidia/**/libcublas*.so*", recursive=True)})))' 2>/dev/null || true)
export LD_LIBRARY_PATH="$BUNDLE/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:/usr/local/cuda/targets/x86_64-linux/lib:${pylibs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ ! -e /work/main ] && [ "$REPO" != /work/main ] && [ "$DRY" != 1 ]; then
  mkdir -p /work && ln -s "$REPO" /work/main && echo "linked /work/main -> $REPO" >>"$OUTDIR/meta.txt"
fi
{
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  if [ "$have_gpu" = 1 ]; then
    nvidia-smi
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit,temperature.gpu --format=csv
  else
    echo "no GPU (dry run)"
  fi
  command -v nvcc && nvcc --version | tail -1
  command -v compute-sanitizer || echo "compute-sanitizer: not found"
  "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())'
  ls -la "$BIN" 2>&1 | head -30
  for b in "$BIN"/bench_bert_step "$BIN"/test_kernels; do echo "== ldd $b"; ldd "$b" 2>&1 | grep -E 'not found|cublas|cudart|fmt|utf8proc|gomp' ; done
} >"$OUTDIR/env.txt" 2>&1
note env ok "env.txt"
if [ ! -x "$BIN/bench_bert_step" ]; then
  note bundle "missing" "$BIN/bench_bert_step not found: run tools/build_for_gpu.sh and carry $BUNDLE"
fi

# ---- ceilings ----
step ceilings 60 20 ceilings.jsonl "$PY" benchmarks/peer/ceilings.py --device "$DEV"

# ---- CUDA tests, plain (pass/fail) ----
TEST_SPEC='*CUDA*,[cuda]'
for t in "$BIN"/test_*; do
  [ -x "$t" ] || continue
  n=$(basename "$t")
  step "tests $n" 90 30 "tests_${n}.log" "$t" "$TEST_SPEC" --reporter compact
done

# ---- data-parallel training through NCCL (issue 6): 1 process, then 2 sharing the GPU ----
# The tiny fixture of the CPU data-parallel tests; each run's losses and weights are compared with
# one CPU process at the global batch (CUDA f32 vs CPU: 1e-3). NCCL may refuse two ranks on one
# GPU; the log then says so.
DIST="$OUTDIR/dist_fixture"
DIST_ARGS=(--model_name_or_path "$DIST/model" --task_name rte --data_dir "$DIST/RTE"
  --overwrite_output_dir --do_train --do_eval --max_seq_length 24 --per_device_train_batch_size 4
  --learning_rate 1e-3 --max_steps 4 --logging_steps 1 --evaluation_strategy steps --eval_steps 2
  --seed 7 --device "$DEV" --disable_tqdm True --weight_decay 0.01)
export BERTRAZOR_DIST_FIXTURE="$DIST" BERTRAZOR_DIST_TIMEOUT=60
step "dist fixture" 30 10 dist.log "$BIN/test_train" "[dist_setup]"
step "dist launch 1 process" 60 20 dist.log \
  "$BIN/bertrazor" launch --nproc_per_node 1 train "${DIST_ARGS[@]}" --per_device_train_batch_size 8 \
  --output_dir "$DIST/nccl1"
step "dist launch 2 processes" 60 20 dist.log \
  "$BIN/bertrazor" launch --nproc_per_node 2 train "${DIST_ARGS[@]}" --output_dir "$DIST/nccl2"
for run in nccl1 nccl2; do
  if [ -f "$DIST/$run/trainer_state.json" ]; then
    step "dist compare $run" 60 10 dist.log env BERTRAZOR_DIST_RUNS="$run" BERTRAZOR_DIST_RTOL=1e-3 \
      "$BIN/test_train" "[dist_compare]"
  else
    note "dist compare $run" "skipped (the run wrote no trainer_state.json)" "dist.log"
  fi
done
rm -rf "$DIST"/*/checkpoint-* 2>/dev/null || true

# ---- our training step and the PyTorch peers, same shapes ----
# bf16 compute (fp32 master weights) for every preset: the comparison with HF's bf16 autocast;
# fp32 for dense as the reference point. The CPU rehearsal has no bf16 compute.
if [ "$DRY" = 1 ]; then MODES="f32:none f32:seed f32:all f32:balanced"; else MODES="bf16:none bf16:seed bf16:all bf16:balanced f32:none"; fi
for shape in $SHAPES; do
  s=${shape%x*}; b=${shape#*x}
  for mode in $MODES; do
    dt=${mode%%:*}; preset=${mode#*:}
    step "ours $dt $preset ${s}x$b" 90 20 ours.jsonl \
      "$BIN/bench_bert_step" --config "$CONFIG" --device "$DEV" --seq "$s" --batch "$b" \
      --preset "$preset" --steps "$STEPS_N" --warmup "$WARM" --json $([ "$dt" = bf16 ] && echo --bf16)
  done
done
step "hf eager bf16/fp32 sdpa/eager" 150 40 hf.jsonl \
  "$PY" benchmarks/peer/hf_step.py --config "$CONFIG" --device "$DEV" --shapes "$PY_SHAPES" \
  --dtypes bf16,fp32 --attn sdpa,eager --steps "$STEPS_N" --warmup "$WARM"
step "torch reference Back Razor none/seed" 120 40 backrazor_ref.jsonl \
  "$PY" benchmarks/peer/backrazor_ref.py --config "$CONFIG" --device "$DEV" --shapes "$PY_SHAPES" \
  --dtypes fp32,bf16 --backrazor none,seed --steps "$STEPS_N" --warmup "$WARM"

# ---- peak activation memory, HF with and without gradient checkpointing vs ours (issue 12 §6) ----
# fp32, one forward+loss+backward per run, alternating HF dense, ours dense, HF checkpointing,
# ours --gradient_checkpointing, ours balanced, ours checkpointing + balanced; HF's peak from
# torch.cuda.max_memory_allocated, ours from our allocator (both above parameters + gradients).
step "hf vs ours activation memory fp32" 120 40 hf_memory.jsonl \
  "$PY" benchmarks/peer/hf_memory.py --config "$CONFIG" --device "$DEV" \
  --shapes "$(echo "$SHAPES" | awk '{print $2}')" --timed_steps "$STEPS_N" \
  --ours "$BIN/bertrazor" --ours_model "$REPO/$CONFIG"

# ---- largest batch at seq 512 under the cap ----
for preset in none all; do
  step "ours max batch $preset" 90 30 ours_maxbatch.jsonl \
    "$BIN/bench_bert_step" --config "$CONFIG" --device "$DEV" --seq "$MAXSEQ" --preset "$preset" \
    --find_max_batch --budget_bytes "$CAP" --max_batch "$MAXB" --json $([ "$DRY" = 1 ] || echo --bf16)
done
step "hf max batch bf16 sdpa" 90 30 hf_maxbatch.jsonl \
  "$PY" benchmarks/peer/hf_step.py --config "$CONFIG" --device "$DEV" --shapes "${MAXSEQ}x1" \
  --dtypes bf16 --attn sdpa --find_max_batch --cap_bytes "$CAP" --max_batch "$MAXB"
step "torch reference Back Razor max batch seed" 60 30 backrazor_ref_maxbatch.jsonl \
  "$PY" benchmarks/peer/backrazor_ref.py --config "$CONFIG" --device "$DEV" --shapes "${MAXSEQ}x1" \
  --dtypes fp32 --backrazor seed --find_max_batch --cap_bytes "$CAP" --max_batch "$MAXB"

# ---- kernel microbenchmarks (each prints its own table against its own ceiling) ----
for bnc in "$BIN"/bench_*; do
  [ -x "$bnc" ] || continue
  n=$(basename "$bnc")
  [ "$n" = bench_bert_step ] && continue
  if [ "$DRY" = 1 ]; then
    # The CPU half of these runs for minutes on two cores: prove the program starts, no more.
    step "$n" 8 5 "${n}.log" "$bnc"
  else
    step "$n" 60 20 "${n}.log" "$bnc"
  fi
done

# ---- CUDA tests under compute-sanitizer memcheck ----
if command -v compute-sanitizer >/dev/null && [ "$have_gpu" = 1 ]; then
  for t in "$BIN"/test_*; do
    [ -x "$t" ] || continue
    n=$(basename "$t")
    step "memcheck $n" 120 40 "memcheck_${n}.log" compute-sanitizer --tool memcheck \
      --error-exitcode 99 --print-limit 20 "$t" "$TEST_SPEC" --reporter compact
  done
else
  note memcheck "skipped (no compute-sanitizer or no GPU)" \
    "compute-sanitizer --tool memcheck --error-exitcode 99 $BIN/test_* '$TEST_SPEC'"
fi

# ---- torch.compile peer (slowest to start; last) ----
step "hf compile bf16 sdpa" $([ "$DRY" = 1 ] && echo 60 || echo 150) 60 hf_compile.jsonl \
  "$PY" benchmarks/peer/hf_step.py --config "$CONFIG" --device "$DEV" \
  --shapes "$(echo "$SHAPES" | awk '{print $NF}')" --dtypes bf16 --attn sdpa --compile \
  --steps "$STEPS_N" --warmup "$WARM"

"$PY" tools/gpu_summary.py "$OUTDIR" || echo "gpu_check: summary failed" >&2
echo "gpu_check: done in $(($(date +%s) - START))s; $OUTDIR/summary.md"
cat "$OUTDIR/summary.md"

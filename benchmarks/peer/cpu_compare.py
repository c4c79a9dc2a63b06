"""Side by side on the CPU, in one run: PyTorch + transformers (hf_step.py, hf_glue.py) against
bertrazor (bench_bert_step, `bertrazor train`). Issue 17's yardstick.

Step part: for every shape, each round runs one PyTorch process and one of ours (the order flips
every round, so drift in the machine's load falls on both), each timing --steps steps after
--warmup; the table gives the median over rounds of each process's median step, the ratio
ours/PyTorch and the achieved GFLOP/s (model FLOPs 6·P·T + 12·L·B·S²·H, docs/GPU.md).

End-to-end part (--e2e): 1 epoch of RTE with all-MiniLM-L6-v2, HF Trainer with dynamic padding
(hf_glue.py) against `bertrazor train --pad_to_max_length false`, same hyperparameters and eval
batch, at --max_seq_length 128 and at a short-input length (--short_len, default 48): training
wall time, evaluation samples/s and dev accuracy, both from the runs' own metrics.

  PY=$(tools/setup_python.sh | tail -1)
  $PY benchmarks/peer/cpu_compare.py --build build [--rounds 3] [--only minilm] [--e2e] [--json out.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
MINILM = os.path.expanduser("~/.cache/bertrazor/models/all-MiniLM-L6-v2")
BERT_BASE = os.path.join(ROOT, "..", "shared", "models", "bert-base-uncased", "config.json")

# (label, config, batch, seq)
SHAPES = [
    ("minilm", f"{MINILM}/config.json", 16, 8),
    ("minilm", f"{MINILM}/config.json", 16, 32),
    ("minilm", f"{MINILM}/config.json", 16, 64),
    ("minilm", f"{MINILM}/config.json", 16, 128),
    ("minilm", f"{MINILM}/config.json", 1, 8),
    ("bert-base", BERT_BASE, 8, 128),
    ("bert-base", BERT_BASE, 2, 512),
]


def run_json(cmd, env=None):
    """Runs cmd, returns its last stdout line parsed as JSON, or {"error": ...}."""
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        err = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
        return {"error": err[:200]}
    return json.loads(lines[-1])


def ours_step(args, cfg, batch, seq, dtype):
    cmd = [os.path.join(args.build, "benchmarks", "bench_bert_step"), "--config", cfg,
           "--batch", str(batch), "--seq", str(seq), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--json"]
    if dtype == "bf16":
        cmd.append("--bf16")
    return run_json(cmd)


def hf_step(args, cfg, batch, seq, dtype):
    cmd = [sys.executable, os.path.join(HERE, "hf_step.py"), "--config", cfg, "--device", "cpu",
           "--shapes", f"{seq}x{batch}", "--dtypes", dtype, "--attn", args.attn,
           "--steps", str(args.steps), "--warmup", str(args.warmup)]
    return run_json(cmd)


def median_of(recs):
    ok = [r["median_step_s"] for r in recs if "median_step_s" in r]
    return statistics.median(ok) if ok else None


def step_part(args):
    rows = []
    shapes = [s for s in SHAPES if not args.only or s[0] in args.only.split(",")]
    for label, cfg, batch, seq in shapes:
        for dtype in args.dtypes.split(","):
            ours, hf = [], []
            for r in range(args.rounds):
                order = [("hf", hf_step, hf), ("ours", ours_step, ours)]
                if r % 2:
                    order.reverse()
                for _, fn, sink in order:
                    sink.append(fn(args, cfg, batch, seq, dtype))
            o, h = median_of(ours), median_of(hf)
            flops = next((x["model_flops_per_step"] for x in ours + hf if "model_flops_per_step" in x), None)
            row = {"model": label, "batch": batch, "seq": seq, "dtype": dtype,
                   "pytorch_s": h, "ours_s": o, "ratio": o / h if o and h else None,
                   "pytorch_gflops": flops / h / 1e9 if flops and h else None,
                   "ours_gflops": flops / o / 1e9 if flops and o else None,
                   "pytorch_rounds": [x.get("median_step_s", x.get("error")) for x in hf],
                   "ours_rounds": [x.get("median_step_s", x.get("error")) for x in ours]}
            rows.append(row)
            print_row(row)
    return rows


def fmt(v, f="%.3f"):
    return f % v if isinstance(v, (int, float)) else "—"


def print_row(r):
    err = ""
    for side in ("pytorch_rounds", "ours_rounds"):
        bad = [x for x in r[side] if isinstance(x, str)]
        if bad:
            err += f" [{side.split('_')[0]}: {bad[0]}]"
    print(f"| {r['model']} | {r['batch']} | {r['seq']} | {r['dtype']} | {fmt(r['pytorch_s'])} | "
          f"{fmt(r['ours_s'])} | {fmt(r['ratio'], '%.2f')} | {fmt(r['pytorch_gflops'], '%.0f')} | "
          f"{fmt(r['ours_gflops'], '%.0f')} |{err}", flush=True)


def ours_train(args, max_len, out):
    cmd = [os.path.join(args.build, "bertrazor"), "train", "--model_name_or_path", MINILM,
           "--task_name", "rte", "--data_dir", args.data_dir, "--do_train", "--do_eval",
           "--max_seq_length", str(max_len), "--pad_to_max_length", "false",
           "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", str(args.eval_batch),
           "--learning_rate", "5e-5", "--num_train_epochs", "1", "--seed", "42",
           "--report_to", "none", "--save_strategy", "no", "--disable_tqdm", "true",
           "--overwrite_output_dir", "true", "--output_dir", out]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1][:200]}
    with open(os.path.join(out, "all_results.json")) as f:
        m = json.load(f)
    m["process_wall_s"] = wall
    return m


def hf_train(args, max_len, out):
    cmd = [sys.executable, os.path.join(HERE, "hf_glue.py"), "--model", MINILM,
           "--data_dir", args.data_dir, "--max_seq_length", str(max_len), "--batch", "16",
           "--eval_batch", str(args.eval_batch), "--lr", "5e-5", "--epochs", "1", "--seed", "42",
           "--output_dir", out]
    t0 = time.time()
    m = run_json(cmd)
    m["process_wall_s"] = time.time() - t0
    return m


def e2e_part(args):
    rows = []
    for max_len in (128, args.short_len):
        hf = hf_train(args, max_len, f"{args.scratch}/hf_rte_{max_len}")
        ours = ours_train(args, max_len, f"{args.scratch}/ours_rte_{max_len}")
        row = {"max_seq_length": max_len, "hf": hf, "ours": ours}
        for k in ("train_runtime", "eval_samples_per_second", "eval_accuracy"):
            row[k] = (hf.get(k), ours.get(k))
        rows.append(row)
        tr, ev, acc = row["train_runtime"], row["eval_samples_per_second"], row["eval_accuracy"]
        ratio = tr[1] / tr[0] if tr[0] and tr[1] else None
        eratio = ev[1] / ev[0] if ev[0] and ev[1] else None
        print(f"| RTE seq {max_len} | {fmt(tr[0], '%.1f')} | {fmt(tr[1], '%.1f')} | "
              f"{fmt(ratio, '%.2f')} | {fmt(ev[0], '%.1f')} | {fmt(ev[1], '%.1f')} | "
              f"{fmt(eratio, '%.2f')} | {fmt(acc[0])} | {fmt(acc[1])} |"
              + "".join(f" [{s}: {d['error']}]" for s, d in (("hf", hf), ("ours", ours)) if "error" in d),
              flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"), help="bertrazor build folder")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--attn", default="sdpa", help="PyTorch attention: sdpa (its default) or eager")
    p.add_argument("--only", default="", help="comma list of model labels: minilm,bert-base")
    p.add_argument("--no_steps", action="store_true", help="skip the step part")
    p.add_argument("--e2e", action="store_true", help="also the 1-epoch RTE runs")
    p.add_argument("--short_len", type=int, default=48)
    p.add_argument("--eval_batch", type=int, default=8)
    p.add_argument("--data_dir", default=os.path.join(ROOT, "..", "shared", "data", "glue", "RTE"))
    p.add_argument("--scratch", default="/tmp/cpu_compare")
    p.add_argument("--json", help="write every record here")
    args = p.parse_args()
    os.makedirs(args.scratch, exist_ok=True)
    import torch
    print(f"cpu_compare: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{args.rounds} rounds x {args.steps} steps (+{args.warmup} warm-up), PyTorch attention {args.attn}",
          flush=True)
    out = {}
    if not args.no_steps:
        print("| model | batch | seq | dtype | PyTorch s | ours s | ours/PyTorch | PyTorch GFLOP/s | ours GFLOP/s |")
        print("|---|---|---|---|---|---|---|---|---|")
        out["steps"] = step_part(args)
    if args.e2e:
        print("| run | HF train s | ours train s | ratio | HF eval samples/s | ours eval samples/s | "
              "ratio | HF dev acc | ours dev acc |")
        print("|---|---|---|---|---|---|---|---|---|")
        out["e2e"] = e2e_part(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

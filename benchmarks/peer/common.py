"""Shared pieces of the PyTorch peer benchmarks (hf_step.py, backrazor_ref.py): arguments,
synthetic batches identical in spirit to bench_bert_step (full length, no padding, ids uniform in
[1, V), segment A then B), the model-FLOP formula of docs/GPU.md, step timing and the largest-batch
search under a memory cap. Every result is one JSON line on stdout."""
import argparse
import gc
import json
import math
import statistics
import sys
import time
import traceback

import torch


def base_parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", required=True, help="bert config.json (HF format)")
    p.add_argument("--shapes", default="128x32",
                   help="comma list of SEQxBATCH, e.g. 128x32,512x8,512x32")
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                   help="cuda (default; fails without a GPU) or cpu, only when asked")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--num_labels", type=int, default=2)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--find_max_batch", action="store_true",
                   help="largest batch at each shape's SEQ under --cap_bytes (BATCH is ignored)")
    p.add_argument("--cap_bytes", type=int, default=16 * 2**30)
    p.add_argument("--max_batch", type=int, default=4096)
    return p


def parse_shapes(text):
    shapes = []
    for item in text.split(","):
        s, b = item.lower().split("x")
        shapes.append((int(s), int(b)))
    return shapes


def pick_device(name):
    if name == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: pass --device cpu to run on the CPU")
    return torch.device(name)


def record_failure(record, e):
    """One failed configuration is recorded (with its traceback on stderr), not fatal."""
    traceback.print_exc()
    msg = str(e).splitlines()[0][:300] if str(e) else ""
    record.update(error=f"{type(e).__name__}: {msg}")


def release(device):
    """Frees what the last configuration held before the next one is measured."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def emit(record):
    print(json.dumps(record, sort_keys=True), flush=True)


def synthetic_batch(vocab_size, type_vocab_size, num_labels, batch, seq, device, step):
    g = torch.Generator().manual_seed(1000 + step)
    ids = torch.randint(1, vocab_size, (batch, seq), generator=g, dtype=torch.long)
    tt = torch.zeros(batch, seq, dtype=torch.long)
    if type_vocab_size > 1:
        tt[:, seq // 2:] = 1
    am = torch.ones(batch, seq, dtype=torch.long)
    labels = torch.randint(0, num_labels, (batch,), generator=g, dtype=torch.long)
    return {k: v.to(device) for k, v in
            dict(input_ids=ids, token_type_ids=tt, attention_mask=am, labels=labels).items()}


def non_embedding_params(model):
    n = 0
    for name, p in model.named_parameters():
        if any(e in name for e in ("word_embeddings", "position_embeddings", "token_type_embeddings")):
            continue
        n += p.numel()
    return n


def model_flops(layers, hidden, params, batch, seq):
    """6·P·T + 12·L·B·S²·H (docs/GPU.md)."""
    return 6.0 * params * batch * seq + 12.0 * layers * batch * seq * seq * hidden


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step_fn, batches, device, warmup, steps):
    """Median wall time of step_fn(batch) with a device synchronisation after each step; the peak
    memory is read over the timed steps only."""
    for i in range(warmup):
        step_fn(batches[i % len(batches)])
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        step_fn(batches[(warmup + i) % len(batches)])
        sync(device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else None
    reserved = torch.cuda.max_memory_reserved() if device.type == "cuda" else None
    return times, peak, reserved


def timing_record(times, peak, reserved, flops, tokens):
    med = statistics.median(times)
    return {"median_step_s": med, "min_step_s": min(times), "max_step_s": max(times),
            "tokens_per_s": tokens / med, "model_flops_per_step": flops,
            "achieved_tflops": flops / med / 1e12, "peak_allocated_bytes": peak,
            "peak_reserved_bytes": reserved}


def timed_fields(step, cfg, params, batch, seq, device, args):
    """Times step over four synthetic batches (args.warmup, then args.steps): the batch, the
    timing_record and what was run, as fields of a record."""
    batches = [synthetic_batch(cfg.vocab_size, cfg.type_vocab_size, cfg.num_labels, batch, seq,
                               device, i) for i in range(4)]
    times, peak, reserved = time_steps(step, batches, device, args.warmup, args.steps)
    flops = model_flops(cfg.num_hidden_layers, cfg.hidden_size, params, batch, seq)
    r = {"batch": batch, "non_embedding_params": params, "steps": args.steps,
         "warmup": args.warmup}
    r.update(timing_record(times, peak, reserved, flops, batch * seq))
    return r


def max_batch_fields(build_step, cfg, seq, device, args):
    """find_max_batch where each trial builds a fresh model and step (build_step() returns the
    step; the model lives only as long as the step does) and runs two steps of batch B."""
    def try_batch(b):
        step = build_step()
        try:
            bt = synthetic_batch(cfg.vocab_size, cfg.type_vocab_size, cfg.num_labels, b, seq,
                                 device, 0)
            step(bt)
            step(bt)
            sync(device)
        finally:
            del step
            gc.collect()
    mb, trials = find_max_batch(try_batch, device, args.cap_bytes, args.max_batch)
    return {"mode": "find_max_batch", "cap_bytes": args.cap_bytes, "max_batch": mb,
            "trials": trials}


def is_oom(e):
    if isinstance(e, torch.OutOfMemoryError):
        return True
    return isinstance(e, RuntimeError) and "out of memory" in str(e)


def find_max_batch(try_batch, device, cap_bytes, max_batch):
    """Doubling to the first failure, then bisection. try_batch(B) runs a full step (two, to hold
    the optimizer state) and raises on OOM. On CUDA the cap is
    torch.cuda.set_per_process_memory_fraction(cap / total); on the CPU nothing caps memory, so
    the search is only a rehearsal and stops at max_batch."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap_bytes / total), device)
    trials = []

    def attempt(b):
        try:
            try_batch(b)
            ok, err = True, ""
        except Exception as e:  # noqa: BLE001 -- anything but OOM is re-raised below
            if not is_oom(e):
                raise
            ok, err = False, str(e).splitlines()[0][:200]
        if device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        else:
            peak = None
        trials.append({"batch": b, "fits": ok, "peak_allocated_bytes": peak if ok else None,
                       "error": err})
        return ok

    lo, hi, b = 0, None, 1
    while b <= max_batch:
        if attempt(b):
            lo = b
            b *= 2
        else:
            hi = b
            break
    if hi is None:
        hi = max_batch + 1
    while hi - lo > 1 and lo < max_batch:
        mid = (lo + hi) // 2
        if attempt(mid):
            lo = mid
        else:
            hi = mid
    if device.type == "cuda":
        torch.cuda.set_per_process_memory_fraction(1.0, device)
    return lo, trials


def load_hf_config(path, num_labels):
    from transformers import BertConfig
    cfg = BertConfig.from_json_file(path)
    cfg.num_labels = num_labels
    return cfg


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def finite(x):
    return x is not None and math.isfinite(x)

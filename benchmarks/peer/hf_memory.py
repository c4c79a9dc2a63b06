"""Peak activation memory of one Hugging Face training step, with and without
gradient_checkpointing_enable(), side by side with `bertrazor memory` (issue 12 section 6).

HF BertForSequenceClassification, random weights from a config.json, fp32, train mode (dropout
on), one forward + loss + backward on a full-length synthetic batch (common.synthetic_batch). The
gradients are allocated (zeros) before the measured region, so the baseline is the parameters and
their gradients, as in `bertrazor memory` (whose gradients and AdamW state exist before its step).

  activation peak = peak bytes allocated during the step - bytes allocated when it starts
                  = peak above the parameters + gradients (+ the batch, a few KiB)

How the peak is measured (printed in every record as "method"):
  cpu:  torch.profiler with profile_memory=True. The profiler records every allocation and free of
        the CPU allocator as a "[memory]" event with its size (negative for a free); their running
        sum in time order is the bytes allocated above the start of the region, and its maximum is
        the peak. Allocations inside an op (its temporaries) are events of their own, so they count.
  cuda: torch.cuda.max_memory_allocated() - memory_allocated() at the start (reset_peak_memory_stats).
Before any model is measured, the method is checked on a known tensor: a region that allocates a
64 MiB tensor (and a 16 MiB temporary freed inside it) must measure 80 MiB (plus under 1 KiB: the
scalar tensors of the region's own ops); a record
"method_check" says so, and the script exits 1 if it does not hold. --check_step also measures
the first step again with an extra 64 MiB tensor held through it (the peak must rise by 64 MiB).

Step time: the median of --timed_steps steps run outside the profiler (the profiled step is not
timed), forward + loss + backward, as our forward_seconds + backward_seconds.

With --ours BIN (the bertrazor CLI) and --ours_model DIR, each repeat alternates HF and our
`bertrazor memory --json` runs of the same shape (dense, --gradient_checkpointing, balanced,
--gradient_checkpointing + balanced): our activation peak is its allocator's peak_bytes minus
the parameters, gradients and optimizer state (all allocated before its step), the same
definition as above. One JSON line per measurement on stdout.

  python3 hf_memory.py --config bert-base-uncased/config.json --shapes 512x8 --device cpu \\
      --repeats 1 --ours build/bertrazor --ours_model /tmp/bert-base
"""
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import torch

import common

MIB = 2**20
OURS_MODES = {
    "dense": [],
    "checkpoint": ["--gradient_checkpointing", "True"],
    "balanced": ["--backRazor", "True", "--backrazor_preset", "balanced"],
    "checkpoint+balanced": ["--gradient_checkpointing", "True", "--backRazor", "True",
                            "--backrazor_preset", "balanced"],
}


def method_name(device):
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated - memory_allocated at start"
    return "torch.profiler profile_memory: max running sum of [memory] events"


def measure(fn, device):
    """Runs fn() and returns (its result, peak bytes allocated above the start of the call)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        start = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = fn()
        torch.cuda.synchronize()
        return out, torch.cuda.max_memory_allocated() - start
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"
              and e.device_type() == torch.autograd.DeviceType.CPU]
    events.sort(key=lambda e: e.start_ns())  # stable: same-time events keep their order
    cur = peak = 0
    for e in events:
        cur += e.nbytes()
        peak = max(peak, cur)
    return out, peak


def check_method(device):
    """The method must see a known allocation: 64 MiB held plus a 16 MiB temporary = 80 MiB."""
    def region():
        held = torch.ones(16 * MIB, dtype=torch.float32, device=device)  # 64 MiB
        tmp = torch.ones(4 * MIB, dtype=torch.float32, device=device)    # 16 MiB
        s = float(tmp.sum())
        del tmp
        return held, s
    (held, _), peak = measure(region, device)
    del held
    rec = {"bench": "hf_memory", "record": "method_check", "method": method_name(device),
           "expected_bytes": 80 * MIB, "measured_bytes": peak,
           "ok": 0 <= peak - 80 * MIB < 1024}
    common.emit(rec)
    return rec["ok"]


def build(cfg, attn, device, seed, checkpointing):
    from transformers import BertForSequenceClassification
    torch.manual_seed(seed)
    if attn != "default":
        cfg._attn_implementation = attn
    model = BertForSequenceClassification(cfg).to(device)
    if checkpointing:
        with warnings.catch_warnings():  # v5 names it activation_checkpointing_enable
            warnings.simplefilter("ignore", FutureWarning)
            model.gradient_checkpointing_enable()
    model.train()
    for p in model.parameters():  # gradients exist before the step: part of the baseline
        p.grad = torch.zeros_like(p)
    return model


def fwd_bwd(model, batch):
    out = model(**batch)
    out.loss.backward()
    loss = float(out.loss.detach())
    del out
    return loss


def hf_run(cfg, args, device, seq, batch, mode, rep):
    ckpt = mode == "checkpoint"
    rec = {"bench": "hf_memory", "impl": "hf", "mode": mode, "repeat": rep, "seq": seq,
           "batch": batch, "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
           "device": common.device_name(device), "method": method_name(device), "dtype": "fp32",
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    try:
        import transformers
        model = build(cfg, args.attn, device, args.seed, ckpt)
        rec.update(transformers=transformers.__version__, attn=model.config._attn_implementation,
                   gradient_checkpointing=bool(
                       model.is_activation_checkpointing if hasattr(model, "is_activation_checkpointing")
                       else model.is_gradient_checkpointing))
        param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        rec.update(parameter_bytes=param_bytes, gradient_bytes=param_bytes)
        bt = common.synthetic_batch(cfg.vocab_size, cfg.type_vocab_size, cfg.num_labels, batch,
                                    seq, device, 0)
        extra = None
        if args.check_step and rep == 0:
            def held_step():
                keep = torch.ones(16 * MIB, dtype=torch.float32, device=device)
                fwd_bwd(model, bt)
                return keep
            extra, extra_peak = measure(held_step, device)
            del extra
        loss, peak = measure(lambda: fwd_bwd(model, bt), device)
        rec.update(activation_peak_bytes=peak, loss=loss)
        if args.check_step and rep == 0:
            rec.update(check_step_peak_with_64mib=extra_peak,
                       check_step_delta_bytes=extra_peak - peak)
        times = []
        for _ in range(args.timed_steps):
            common.sync(device)
            t0 = time.perf_counter()
            fwd_bwd(model, bt)
            common.sync(device)
            times.append(time.perf_counter() - t0)
        rec.update(step_seconds=statistics.median(times), step_seconds_all=times)
        del model, bt
    except Exception as e:  # noqa: BLE001 -- one failed configuration is recorded
        common.record_failure(rec, e)
    common.release(device)
    rec["loadavg_1min"] = os.getloadavg()[0]  # the machine may be shared: timings are as noisy
    common.emit(rec)


def ours_run(args, seq, batch, mode, rep):
    # A config.json gives a model with weights drawn from --seed; a folder, the model in it.
    src = "--config_name" if args.ours_model.endswith(".json") else "--model_name_or_path"
    cmd = [args.ours, "memory", src, args.ours_model, "--max_seq_length",
           str(seq), "--per_device_train_batch_size", str(batch), "--device", args.device,
           "--seed", str(args.seed), "--json"] + OURS_MODES[mode]
    rec = {"bench": "hf_memory", "impl": "ours", "mode": mode, "repeat": rep, "seq": seq,
           "batch": batch, "method": "bertrazor allocator: peak_bytes - parameters - gradients"
           " - optimizer_state", "command": " ".join(cmd)}
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, check=True,
                           env=dict(os.environ, OMP_WAIT_POLICY="PASSIVE"))
        j = json.loads(p.stdout)
        cat = j["peak_bytes_by_category"]
        base = cat["parameters"] + cat["gradients"] + cat["optimizer_state"]
        rec.update(activation_peak_bytes=j["peak_bytes"] - base, peak_bytes=j["peak_bytes"],
                   parameter_bytes=cat["parameters"], gradient_bytes=cat["gradients"],
                   optimizer_state_bytes=cat["optimizer_state"],
                   saved_activation_bytes=j["saved_activation_bytes"],
                   dense_activation_bytes=j["dense_activation_bytes"],
                   peak_bytes_by_category=cat, recompute_peak_bytes=j["recompute_peak_bytes"],
                   step_seconds=j["forward_seconds"] + j["backward_seconds"],
                   forward_seconds=j["forward_seconds"], backward_seconds=j["backward_seconds"],
                   optimizer_seconds=j["optimizer_seconds"])
    except Exception as e:  # noqa: BLE001 -- one failed configuration is recorded
        if isinstance(e, subprocess.CalledProcessError):
            sys.stderr.write(e.stderr or "")
        common.record_failure(rec, e)
    rec["loadavg_1min"] = os.getloadavg()[0]
    common.emit(rec)


def main():
    p = common.base_parser(__doc__)
    p.add_argument("--attn", default="default",
                   help="default (what transformers picks: sdpa), sdpa or eager")
    p.add_argument("--modes", default="dense,checkpoint", help="HF modes: dense,checkpoint")
    p.add_argument("--repeats", type=int, default=1, help="rounds of alternating runs")
    p.add_argument("--timed_steps", type=int, default=1, help="unprofiled steps timed per run")
    p.add_argument("--check_step", action="store_true",
                   help="repeat the first step with an extra 64 MiB held (the peak must rise so)")
    p.add_argument("--ours", default="", help="bertrazor CLI: alternate our memory runs")
    p.add_argument("--ours_model", default="",
                   help="model folder (or a config.json: random weights) for --ours")
    p.add_argument("--ours_modes", default=",".join(OURS_MODES))
    args = p.parse_args()
    if args.ours and not args.ours_model:
        p.error("--ours needs --ours_model")
    device = common.pick_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg_path = args.config
    if os.path.isdir(cfg_path):
        cfg_path = os.path.join(cfg_path, "config.json")
    cfg = common.load_hf_config(cfg_path, args.num_labels)
    if not check_method(device):
        sys.stderr.write("hf_memory: the memory method missed a known tensor; no results\n")
        return 1
    # One round: HF and ours alternate, mode by mode (hf dense, ours dense, hf checkpoint, ours
    # checkpoint, then our remaining modes), so drift on a shared machine hits both sides alike.
    hf_modes = [m for m in args.modes.split(",") if m]  # --modes "": ours only
    ours_modes = args.ours_modes.split(",") if args.ours else []
    order = []
    for i in range(max(len(hf_modes), len(ours_modes))):
        order += [("hf", m) for m in hf_modes[i:i + 1]] + [("ours", m) for m in ours_modes[i:i + 1]]
    for rep in range(args.repeats):
        for seq, batch in common.parse_shapes(args.shapes):
            for impl, mode in order:
                if impl == "hf":
                    hf_run(cfg, args, device, seq, batch, mode, rep)
                else:
                    ours_run(args, seq, batch, mode, rep)
    return 0


if __name__ == "__main__":
    sys.exit(main())

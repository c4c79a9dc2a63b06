"""Ceilings measured on the device the check runs on (METHOD.md): device-to-device copy bandwidth
(bytes read + written, rotating over several buffers larger than L2) and matmul rates on random
data (bf16, and fp32 with tf32 off, which is what our f32 model runs). Medians of CUDA-event
timings after warm-up. One JSON line. --device cpu is a small-size rehearsal."""
import argparse
import json
import statistics
import time

import torch


def median_time(fn, device, reps):
    for _ in range(3):
        fn(0)
    times = []
    for r in range(reps):
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn(r)
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            fn(r)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: pass --device cpu to rehearse on the CPU")
    dev = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    big = dev.type == "cuda"
    rec = {"device": torch.cuda.get_device_name(dev) if big else "cpu", "torch": torch.__version__}
    if big:
        prop = torch.cuda.get_device_properties(dev)
        rec.update(sms=prop.multi_processor_count, total_memory=prop.total_memory)

    n_copy = (1 << 28) if big else (1 << 22)  # 1 GiB of f32 per buffer on the GPU
    srcs = [torch.randn(n_copy, device=dev) for _ in range(2)]
    dsts = [torch.empty_like(srcs[0]) for _ in range(2)]
    t = median_time(lambda r: dsts[r % 2].copy_(srcs[(r + 1) % 2]), dev, 20 if big else 5)
    rec["copy_bytes"] = 2 * n_copy * 4
    rec["copy_GBps"] = 2 * n_copy * 4 / t / 1e9
    del srcs, dsts

    for name, dtype, n in [("bf16", torch.bfloat16, 8192 if big else 512),
                           ("fp32", torch.float32, 8192 if big else 512)]:
        a = [torch.randn(n, n, device=dev, dtype=dtype) for _ in range(2)]
        b = [torch.randn(n, n, device=dev, dtype=dtype) for _ in range(2)]
        t = median_time(lambda r: a[r % 2] @ b[(r + 1) % 2], dev, 10 if big else 3)
        rec[f"matmul_{name}_n"] = n
        rec[f"matmul_{name}_TFLOPs"] = 2.0 * n ** 3 / t / 1e12
        del a, b
    print(json.dumps(rec, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()

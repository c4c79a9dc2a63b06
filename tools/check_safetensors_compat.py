#!/usr/bin/env python3
"""Does a safetensors file written by bertrazor load in the Python safetensors library, and does it
hold the values of a reference file? Run with the venv from tools/setup_python.sh:
    $(tools/setup_python.sh | tail -1) tools/check_safetensors_compat.py OURS.safetensors REF.safetensors \
        [--prefix bert.] [--tol 0]
OURS is read with safetensors.safe_open (the reference parser: it rejects any header or layout error).
Each tensor of REF is compared with the tensor of the same name in OURS (or PREFIX + name); both are
widened to float64 (integers exactly). Prints one line per tensor (dtypes, shape, max |ours - ref|)
and a summary. Exit 0 when every REF tensor is present with the same shape and max abs diff <= tol;
1 otherwise. Tensors only in OURS are listed, not failed. Without REF, only loads and lists OURS."""
import argparse
import sys

import torch
from safetensors import safe_open


def read(path):
    with safe_open(path, framework="pt") as f:
        return f.metadata(), {name: f.get_tensor(name) for name in f.keys()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("reference", nargs="?")
    ap.add_argument("--prefix", default="", help="prefix our names carry that REF's do not")
    ap.add_argument("--tol", type=float, default=0.0)
    args = ap.parse_args()

    meta, ours = read(args.ours)
    print(f"{args.ours}: {len(ours)} tensors, metadata {meta}")
    if meta is None or meta.get("format") not in ("pt", "tf", "flax", "mlx"):
        print("note: __metadata__['format'] missing or not pt/tf/flax/mlx; transformers will refuse it")
    if args.reference is None:
        for name, t in ours.items():
            print(f"  {name}: {str(t.dtype).replace('torch.', '')} {list(t.shape)}")
        return 0

    _, ref = read(args.reference)
    worst, failed, used = 0.0, [], set()
    for name, r in ref.items():
        key = name if name in ours else args.prefix + name
        if key not in ours:
            failed.append(name)
            print(f"  {name}: MISSING")
            continue
        used.add(key)
        o = ours[key]
        if list(o.shape) != list(r.shape):
            failed.append(name)
            print(f"  {name}: SHAPE {list(o.shape)} vs {list(r.shape)}")
            continue
        diff = (o.to(torch.float64) - r.to(torch.float64)).abs().max().item() if r.numel() else 0.0
        worst = max(worst, diff)
        if not diff <= args.tol:
            failed.append(name)
        dt = f"{str(o.dtype).replace('torch.', '')}/{str(r.dtype).replace('torch.', '')}"
        print(f"  {key}: {dt} {list(r.shape)} max_abs_diff {diff:.3g}")
    for key in sorted(set(ours) - used):
        print(f"  {key}: only in {args.ours}")
    print(f"compared {len(used)} of {len(ref)} reference tensors: max_abs_diff {worst:.6g} (tol {args.tol}); "
          + ("OK" if not failed else f"FAILED: {failed[:10]}"))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())

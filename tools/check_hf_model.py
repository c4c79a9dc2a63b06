#!/usr/bin/env python3
"""Round-trip check: does a model directory written by bertrazor (config.json + model.safetensors)
load in transformers as BertForSequenceClassification, with every weight present, and give the
logits our C++ computed? Run with the venv from tools/setup_python.sh:
    $(tools/setup_python.sh | tail -1) tools/check_hf_model.py DIR [--logits FILE] [--save FILE]
FILE (safetensors) holds "logits" [B, num_labels] f32 and, optionally, the batch that produced them
("input_ids", "attention_mask", "token_type_ids"; any integer dtype). Without a batch in FILE the
fixed batch below is used (fixed_batch: the C++ side can build the same one). Passes when
max |ours - transformers| <= tol * max(1, max |transformers|); exits 1 otherwise, 2 when the model
does not load cleanly (missing, unexpected or mismatched weights). --save FILE writes the batch and
transformers' logits, for the opposite direction."""
import argparse
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import BertForSequenceClassification


def fixed_batch(vocab_size, type_vocab_size):
    # B=2, S=9: ids[b, s] = 1 + (7 + 13 b + 29 s) mod (V - 1); sample 1 has 6 real tokens then
    # padding (id 0, mask 0); token type 1 from position 5 on, among real tokens (if types > 1).
    B, S = 2, 9
    lengths = [9, 6]
    ids = torch.zeros(B, S, dtype=torch.int64)
    mask = torch.zeros(B, S, dtype=torch.int64)
    types = torch.zeros(B, S, dtype=torch.int64)
    for b in range(B):
        for s in range(lengths[b]):
            ids[b, s] = 1 + (7 + 13 * b + 29 * s) % (vocab_size - 1)
            mask[b, s] = 1
            types[b, s] = 1 if (s >= 5 and type_vocab_size > 1) else 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def load(model_dir):
    model, info = BertForSequenceClassification.from_pretrained(
        model_dir, output_loading_info=True, dtype=torch.float32, attn_implementation="eager")
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        for k, v in problems.items():
            print(f"check_hf_model: {model_dir}: {k}: {sorted(map(str, v))}", file=sys.stderr)
        sys.exit(2)
    model.eval()
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--logits", help="safetensors file with our 'logits' (and optionally the batch)")
    ap.add_argument("--key", default="logits", help="name of the logits tensor in --logits FILE")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--save", help="write the batch and transformers' logits here")
    args = ap.parse_args()

    model = load(args.model_dir)
    cfg = model.config
    batch = fixed_batch(cfg.vocab_size, cfg.type_vocab_size)
    ours = None
    if args.logits:
        with safe_open(args.logits, "pt") as f:
            keys = set(f.keys())
            if args.key not in keys:
                sys.exit(f"check_hf_model: {args.logits} has no tensor '{args.key}' (has {sorted(keys)})")
            ours = f.get_tensor(args.key).float()
            if "input_ids" in keys:
                batch = {"input_ids": f.get_tensor("input_ids").long()}
                for k in ("attention_mask", "token_type_ids"):
                    if k in keys:
                        batch[k] = f.get_tensor(k).long()
    with torch.no_grad():
        theirs = model(**batch).logits.float()
    print(f"check_hf_model: {args.model_dir}: {cfg.num_hidden_layers} layers, H={cfg.hidden_size}, "
          f"num_labels={cfg.num_labels}, batch {tuple(batch['input_ids'].shape)}")
    if args.save:
        save_file({**{k: v.contiguous() for k, v in batch.items()}, "logits": theirs.contiguous()}, args.save)
        print(f"check_hf_model: wrote {args.save}")
    if ours is None:
        print("check_hf_model: transformers logits:", theirs.tolist())
        return
    if tuple(ours.shape) != tuple(theirs.shape):
        print(f"check_hf_model: logits shape {tuple(ours.shape)} in {args.logits}, transformers gives "
              f"{tuple(theirs.shape)}", file=sys.stderr)
        sys.exit(1)
    abs_diff = (ours - theirs).abs().max().item()
    scale = theirs.abs().max().item()
    rel_diff = abs_diff / max(scale, 1e-30)
    ok = abs_diff <= args.tol * max(1.0, scale)
    print(f"check_hf_model: max abs diff {abs_diff:.3g}, max rel diff {rel_diff:.3g} "
          f"(max |logit| {scale:.3g}, tol {args.tol:g}): {'OK' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

"""Hugging Face BertForSequenceClassification training step, the PyTorch side of the side-by-side
comparison with bench_bert_step (docs/GPU.md). Random init from a config.json, synthetic
full-length batches, forward + loss + backward + AdamW (fused on CUDA; weight decay 0.01 except
biases and LayerNorm weights). Modes: bf16 autocast or fp32 (tf32 off), attention through SDPA or
eager, optionally torch.compile. One JSON line per configuration.

  python3 hf_step.py --config bert-base-uncased.json --shapes 128x32,512x8,512x32 \
      --dtypes bf16,fp32 --attn sdpa,eager [--compile] [--device cpu]
  python3 hf_step.py --config ... --shapes 512x1 --find_max_batch --cap_bytes $((16<<30))
"""
import sys

import torch

import common


def build(cfg, attn, device, seed):
    from transformers import BertForSequenceClassification
    torch.manual_seed(seed)
    cfg._attn_implementation = attn
    model = BertForSequenceClassification(cfg).to(device)
    model.train()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith(".bias") or "LayerNorm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=2e-5, betas=(0.9, 0.999), eps=1e-8,
                            fused=device.type == "cuda")
    return model, opt


def make_step(model, opt, dtype, device, compiled):
    use_amp = dtype == "bf16"

    def fwd_bwd(batch):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(**batch)
        out.loss.backward()
        return out.loss

    body = torch.compile(fwd_bwd) if compiled else fwd_bwd

    def step(batch):
        body(batch)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def main():
    p = common.base_parser(__doc__)
    p.add_argument("--dtypes", default="bf16", help="comma list of bf16,fp32")
    p.add_argument("--attn", default="sdpa", help="comma list of sdpa,eager")
    p.add_argument("--compile", action="store_true", help="torch.compile the forward+backward")
    args = p.parse_args()
    device = common.pick_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = common.load_hf_config(args.config, args.num_labels)
    for seq, batch in common.parse_shapes(args.shapes):
        for dtype in args.dtypes.split(","):
            for attn in args.attn.split(","):
                rec = {"bench": "bert_step", "impl": "hf", "device": common.device_name(device),
                       "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size, "seq": seq,
                       "dtype": dtype, "attn": attn, "compile": args.compile,
                       "torch": torch.__version__}
                try:
                    if args.find_max_batch:
                        def build_step():
                            model, opt = build(cfg, attn, device, args.seed)
                            return make_step(model, opt, dtype, device, args.compile)
                        rec.update(common.max_batch_fields(build_step, cfg, seq, device, args))
                    else:
                        model, opt = build(cfg, attn, device, args.seed)
                        params = common.non_embedding_params(model)
                        step = make_step(model, opt, dtype, device, args.compile)
                        rec.update(common.timed_fields(step, cfg, params, batch, seq, device, args))
                        del model, opt, step
                except Exception as e:  # noqa: BLE001 -- one failed configuration is recorded
                    common.record_failure(rec, e)
                common.release(device)
                common.emit(rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())

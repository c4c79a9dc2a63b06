"""The reference Back Razor (geekJZY/BackRazor_Bert, /work/shared/reference/backrazor-spec.md
§1-§2) re-implemented in PyTorch as autograd Functions, to measure its step time and memory next to
the same model trained dense. Per-sample mask: k = int(clip(n·ratio, 1, n)), t = kthvalue(|a|, k),
keep |a| >= t (ties kept); stored as the MSB-first packed 1-bit mask of the whole tensor plus the
kept values (fp16, or fp32 for the first LayerNorm), reconstructed with zeros before backward.
Sites (`seed`): the Q, K and V linears' input (stored three times, as the reference does), Q and
Kᵀ of Q·Kᵀ, the probabilities and V of softmax·V, the attention-output dense input, the first
LayerNorm input (fp32 values) and the classifier input; everything else dense. Attention dropout
is off in both modes (the fork removed it). `--backrazor none` runs the same model with plain
autograd: the dense baseline the overhead is measured against.

  python3 backrazor_ref.py --config bert-base-uncased.json --shapes 128x32,512x8 \
      --backrazor none,seed --dtypes fp32,bf16 [--device cpu]
"""
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import common

_SHIFTS = None
STORED = {"bytes": 0}  # bytes of mask + values held by the sparse sites (current)


def keep_mask(a, ratio):
    """Per-sample magnitude mask with the reference's k and ties kept."""
    flat = a.detach().abs().reshape(a.shape[0], -1)
    n = flat.shape[1]
    k = int(min(max(n * ratio, 1), n))
    t = flat.float().kthvalue(k, dim=1).values
    return (flat.float() >= t[:, None]).reshape(a.shape)


def packbits(mask):
    global _SHIFTS
    flat = mask.reshape(-1)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    if _SHIFTS is None or _SHIFTS.device != flat.device:
        _SHIFTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=flat.device)
    return (flat.view(-1, 8).to(torch.uint8) * _SHIFTS).sum(1, dtype=torch.uint8)


def unpackbits(bits, numel):
    shifts = torch.arange(7, -1, -1, device=bits.device, dtype=torch.uint8)
    return ((bits[:, None] >> shifts) & 1).reshape(-1)[:numel].bool()


class Sparse:
    """1-bit mask + kept values of one tensor; accounted in STORED while alive."""

    def __init__(self, a, ratio, half):
        mask = keep_mask(a, ratio)
        vals = a.detach().reshape(-1)[mask.reshape(-1)]
        self.values = vals.half() if half else vals.float()
        self.bits = packbits(mask)
        self.shape, self.numel, self.dtype = a.shape, a.numel(), a.dtype
        self.nbytes = self.values.numel() * self.values.element_size() + self.bits.numel()
        STORED["bytes"] += self.nbytes

    def dense(self):
        out = torch.zeros(self.numel, dtype=torch.float32, device=self.values.device)
        out[unpackbits(self.bits, self.numel)] = self.values.float()
        STORED["bytes"] -= self.nbytes
        self.nbytes = 0
        return out.reshape(self.shape)


def _c(t, like):
    """Backward operands in the forward's compute dtype (fp32, or bf16 under autocast)."""
    return t.to(like.dtype)


class LinearSparse(torch.autograd.Function):
    """y = x·Wᵀ + b; saves sparse x. dx = g·W (exact), dW = Σ gᵀ·x̃, db = Σ g."""

    @staticmethod
    def forward(ctx, x, w, b, ratio, half):
        y = F.linear(x, w, b)
        ctx.sx = Sparse(x, ratio, half)
        ctx.save_for_backward(w)
        ctx.out_dtype = y.dtype
        return y

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        x = _c(ctx.sx.dense(), g)
        g2 = g.reshape(-1, g.shape[-1])
        dx = (g @ _c(w, g)).to(g.dtype)
        dw = (g2.t() @ x.reshape(-1, x.shape[-1])).to(w.dtype)
        db = g2.float().sum(0).to(w.dtype)
        return dx, dw, db, None, None


class MatMulSparse(torch.autograd.Function):
    """C = A·B; saves sparse A and sparse B (separate masks). dA = g·B̃ᵀ, dB = Ãᵀ·g."""

    @staticmethod
    def forward(ctx, a, b, ratio, half):
        ctx.sa, ctx.sb = Sparse(a, ratio, half), Sparse(b, ratio, half)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = _c(ctx.sa.dense(), g), _c(ctx.sb.dense(), g)
        return g @ b.transpose(-1, -2), a.transpose(-1, -2) @ g, None, None


class SoftmaxMatMulSparse(torch.autograd.Function):
    """O = softmax(S)·V; saves sparse P and sparse V. dV = P̃ᵀ·g, dP = g·Ṽᵀ,
    dS = P̃ ⊙ (dP − rowsum(dP ⊙ P̃))."""

    @staticmethod
    def forward(ctx, s, v, ratio, half):
        p = torch.softmax(s, dim=-1)
        ctx.sp, ctx.sv = Sparse(p, ratio, half), Sparse(v, ratio, half)
        return p.to(v.dtype) @ v

    @staticmethod
    def backward(ctx, g):
        p, v = ctx.sp.dense(), _c(ctx.sv.dense(), g)
        dv = _c(p, g).transpose(-1, -2) @ g
        dp = (g @ v.transpose(-1, -2)).float()
        ds = p * (dp - (dp * p).sum(-1, keepdim=True))
        return ds, dv, None, None


class LayerNormSparse(torch.autograd.Function):
    """y = LN(x); saves sparse x (fp32 values in the reference) and the exact fp32 mean/rstd;
    backward is ATen's layer-norm backward on x̃."""

    @staticmethod
    def forward(ctx, x, w, b, eps, ratio, half):
        y, mean, rstd = torch.ops.aten.native_layer_norm(x.float(), [x.shape[-1]], w, b, eps)
        ctx.sx = Sparse(x, ratio, half)
        ctx.save_for_backward(w, b, mean, rstd)
        return y

    @staticmethod
    def backward(ctx, g):
        w, b, mean, rstd = ctx.saved_tensors
        x = ctx.sx.dense()
        dx, dw, db = torch.ops.aten.native_layer_norm_backward(
            g.float(), x, [x.shape[-1]], mean, rstd, w, b, [True, True, True])
        return dx, dw, db, None, None, None


class Bert(nn.Module):
    """BertForSequenceClassification as the Back Razor fork computes it (no attention dropout)."""

    def __init__(self, cfg, sparse, ratio):
        super().__init__()
        H, Fd, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
        self.cfg, self.sparse, self.ratio = cfg, sparse, ratio
        self.word = nn.Embedding(V, H, padding_idx=cfg.pad_token_id)
        self.pos = nn.Embedding(cfg.max_position_embeddings, H)
        self.tok_type = nn.Embedding(cfg.type_vocab_size, H)
        self.emb_ln = nn.LayerNorm(H, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList()
        for _ in range(cfg.num_hidden_layers):
            self.layers.append(nn.ModuleDict(dict(
                q=nn.Linear(H, H), k=nn.Linear(H, H), v=nn.Linear(H, H), ao=nn.Linear(H, H),
                ln1=nn.LayerNorm(H, eps=cfg.layer_norm_eps), ffn1=nn.Linear(H, Fd),
                ffn2=nn.Linear(Fd, H), ln2=nn.LayerNorm(H, eps=cfg.layer_norm_eps))))
        self.pooler = nn.Linear(H, H)
        self.classifier = nn.Linear(H, cfg.num_labels)
        self.drop = nn.Dropout(cfg.hidden_dropout_prob)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=cfg.initializer_range)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.word.weight[cfg.pad_token_id].zero_()

    def linear(self, x, m, site):
        if site and self.sparse and self.training:
            return LinearSparse.apply(x, m.weight, m.bias, self.ratio, True)
        return m(x)

    def layernorm(self, x, m, site):
        if site and self.sparse and self.training:
            return LayerNormSparse.apply(x, m.weight, m.bias, m.eps, self.ratio, False)
        return m(x)

    def forward(self, input_ids, token_type_ids, attention_mask, labels):
        B, S = input_ids.shape
        H, N = self.cfg.hidden_size, self.cfg.num_attention_heads
        D = H // N
        pos = torch.arange(S, device=input_ids.device)[None, :]
        h = self.drop(self.emb_ln(self.word(input_ids) + self.pos(pos) + self.tok_type(token_type_ids)))
        amask = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        sp = self.sparse and self.training

        def heads(t):
            return t.view(B, S, N, D).permute(0, 2, 1, 3)

        for L in self.layers:
            q = heads(self.linear(h, L["q"], True))
            k = heads(self.linear(h, L["k"], True))
            v = heads(self.linear(h, L["v"], True))
            kt = k.transpose(-1, -2)
            s = MatMulSparse.apply(q, kt, self.ratio, True) if sp else q @ kt
            s = s / math.sqrt(D) + amask
            ctx = SoftmaxMatMulSparse.apply(s, v, self.ratio, True) if sp else \
                torch.softmax(s, dim=-1).to(v.dtype) @ v
            ctx = ctx.permute(0, 2, 1, 3).reshape(B, S, H)
            a = self.drop(self.linear(ctx, L["ao"], True))
            h1 = self.layernorm(a + h, L["ln1"], True)
            f = self.drop(L["ffn2"](F.gelu(L["ffn1"](h1))))
            h = L["ln2"](f + h1)
        pooled = torch.tanh(self.pooler(h[:, 0]))
        logits = self.linear(self.drop(pooled), self.classifier, True)
        return F.cross_entropy(logits.float(), labels)


def non_embedding_params(model):
    return sum(p.numel() for n, p in model.named_parameters()
               if not n.startswith(("word.", "pos.", "tok_type.")))


def main():
    p = common.base_parser(__doc__)
    p.add_argument("--backrazor", default="none,seed", help="comma list of none,seed")
    p.add_argument("--dtypes", default="fp32", help="comma list of fp32,bf16 (bf16 = autocast)")
    p.add_argument("--prune_ratio", type=float, default=0.8)
    args = p.parse_args()
    device = common.pick_device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    cfg = common.load_hf_config(args.config, args.num_labels)

    def build(mode):
        torch.manual_seed(args.seed)
        model = Bert(cfg, mode == "seed", args.prune_ratio).to(device).train()
        decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "ln" in n)]
        rest = [p for n, p in model.named_parameters() if n.endswith("bias") or "ln" in n]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                 {"params": rest, "weight_decay": 0.0}], lr=2e-5,
                                fused=device.type == "cuda")
        return model, opt

    def make_step(model, opt, dtype, peaks):
        def step(batch):
            STORED["bytes"] = 0
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                                enabled=dtype == "bf16"):
                loss = model(**batch)
            peaks.append(STORED["bytes"])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step

    for seq, batch in common.parse_shapes(args.shapes):
        for dtype in args.dtypes.split(","):
            for mode in args.backrazor.split(","):
                rec = {"bench": "bert_step", "impl": "torch_backrazor_ref",
                       "device": common.device_name(device), "layers": cfg.num_hidden_layers,
                       "hidden": cfg.hidden_size, "seq": seq, "dtype": dtype, "backrazor": mode,
                       "prune_ratio": args.prune_ratio, "torch": torch.__version__}
                try:
                    if args.find_max_batch:
                        def build_step():
                            model, opt = build(mode)
                            return make_step(model, opt, dtype, [])
                        rec.update(common.max_batch_fields(build_step, cfg, seq, device, args))
                    else:
                        model, opt = build(mode)
                        params = non_embedding_params(model)
                        peaks = []
                        step = make_step(model, opt, dtype, peaks)
                        rec.update(common.timed_fields(step, cfg, params, batch, seq, device, args))
                        rec.update(sparse_stored_bytes=max(peaks))
                        del model, opt, step
                except Exception as e:  # noqa: BLE001 -- one failed configuration is recorded
                    common.record_failure(rec, e)
                common.release(device)
                common.emit(rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Golden files for the BERT model: logits, loss and every parameter gradient of a
BertForSequenceClassification step, for dense training (plain transformers autograd) and for Back
Razor `seed` (our semantics, docs/GOLDEN.md). This script is the spec of how they were made.
Run with the venv from tools/setup_python.sh:
    $(tools/setup_python.sh | tail -1) tools/make_golden_bert.py [--out FILE] [--model DIR] [--rte FILE]
Writes FILE (default tests/data/golden_tiny.safetensors, committed) from two random tiny models
(classification, prefix ""; regression, prefix "reg."), and, when DIR holds all-MiniLM-L6-v2
(config.json, model.safetensors, vocab.txt), DIR/golden_minilm.safetensors (not committed)."""
import argparse
import copy
import json
import math
import os
import sys

import numpy as np
import safetensors
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, ".."))
PRUNE_RATIO = 0.8
# The additive attention mask transformers builds for eager attention (masking_utils): 0 for real
# keys, finfo(float32).min for padded keys. Checked against the installed version in check_mask_value.
MASK_VALUE = float(torch.finfo(torch.float32).min)

# Back Razor `seed` (models/backrazor.h): site -> (prune_ratio, value dtype). Sites not listed are
# saved dense. LN1 input keeps fp32 values (the reference builds that LayerNorm without `half`).
SEED_POLICY = {
    "attn_input": (PRUNE_RATIO, torch.float16),
    "q": (PRUNE_RATIO, torch.float16),
    "k": (PRUNE_RATIO, torch.float16),
    "probs": (PRUNE_RATIO, torch.float16),
    "v": (PRUNE_RATIO, torch.float16),
    "attn_out_input": (PRUNE_RATIO, torch.float16),
    "ln1_input": (PRUNE_RATIO, torch.float32),
    "classifier_input": (PRUNE_RATIO, torch.float16),
}
# Same sites keeping everything in fp32: must reproduce the dense gradients (self-check).
KEEP_ALL_POLICY = {site: (0.0, torch.float32) for site in SEED_POLICY}


def keep_count(n, prune_ratio):
    # k = n - floor(n * prune_ratio) + 1, clipped to [1, n] (core/tape.h backrazor_keep_count).
    return min(max(n - math.floor(n * prune_ratio) + 1, 1), n)


# Per pruned tensor, the smallest relative gap (|x|_(k) - |x|_(k+1)) / |x|_(k) over samples: how far
# the k-th kept magnitude is from the first pruned one. An implementation whose fp32 values agree
# with the exact ones to a smaller relative error selects the same elements.
SELECTION_GAPS = []


def select(x, prune_ratio):
    # Per sample (dim 0) the flat positions [B,k] of the k largest |x| (ties: lower flat index first,
    # via a stable descending sort) and the smallest relative selection gap (None when k = n).
    flat = x.detach().reshape(x.shape[0], -1)
    k = keep_count(flat.shape[1], prune_ratio)
    mags, order = torch.sort(flat.abs(), dim=1, descending=True, stable=True)
    gap = None
    if k < flat.shape[1]:
        kth, next_ = mags[:, k - 1], mags[:, k]
        gap = torch.where(kth > 0, (kth - next_) / kth.clamp_min(1e-38), torch.ones_like(kth)).min().item()
    return order[:, :k], gap


def round_to(kept, value_dtype):
    # Kept values as the site stores them, returned in fp32: fp16 = round the fp32 value to nearest
    # even (a float64 value is first rounded to fp32, as a correctly rounded fp32 forward holds it).
    if value_dtype == torch.float16:
        return kept.float().half().float()
    if value_dtype == torch.float32:
        return kept.float()
    raise ValueError(f"prune: value dtype {value_dtype} not supported")


def scatter_kept(x, idx, kept):
    out = torch.zeros_like(x.detach().reshape(x.shape[0], -1))
    out.scatter_(1, idx, kept.to(out.dtype))
    return out.reshape(x.shape)


def prune(x, prune_ratio, value_dtype):
    # The copy of x that backward sees: per sample the k largest |x| (select), rounded to value_dtype
    # (round_to); the rest exactly 0.
    idx, gap = select(x, prune_ratio)
    if gap is not None:
        SELECTION_GAPS.append(gap)
    return scatter_kept(x, idx, round_to(x.detach().reshape(x.shape[0], -1).gather(1, idx), value_dtype))


class ExactDecisions:
    # The seed step's pruning decisions (which elements are kept, and the fp16 value of each) are made
    # on the float64 activations of the same step, not on PyTorch's fp32 ones: a kept value within
    # fp32 noise of an fp16 rounding midpoint (or a near-tie at the threshold) rounds one way in
    # PyTorch's fp32 forward and the other way in any other correct fp32 forward (1 fp16 ulp, ~5e-4
    # relative, on one element: 2e-5..2e-4 relative on a tiny model's gradient). Exact decisions are
    # the ones every accurate implementation makes. `record` (float64 forward) stores them site by
    # site; `replay` (the fp32 step) applies them: kept positions from float64, fp16 values rounded
    # from float64, fp32-value sites keep the fp32 step's own values. `flips` lists where PyTorch's
    # own fp32 decisions would differ.
    def __init__(self):
        self.mode, self.decisions, self.pos, self.flips, self.seen = None, [], 0, [], {}

    def start(self, mode):
        self.mode, self.pos, self.seen = mode, 0, {}
        if mode == "record":
            self.decisions, self.flips, self.near = [], [], 0

    def prune(self, x, prune_ratio, value_dtype, site):
        if self.mode is None:
            return prune(x, prune_ratio, value_dtype)
        name = f"{site}#{self.seen.get(site, 0)}"  # #i: the i-th layer's site (once: layer -1)
        self.seen[site] = self.seen.get(site, 0) + 1
        flat = x.detach().reshape(x.shape[0], -1)
        if self.mode == "record":
            idx, gap = select(x, prune_ratio)
            if gap is not None:
                SELECTION_GAPS.append(gap)
            kept = round_to(flat.gather(1, idx), value_dtype) if value_dtype != torch.float32 else None
            if kept is not None:  # kept values a ±NEAR_REL error would round differently
                exact = flat.gather(1, idx)
                self.near += int((round_to(exact * (1 + NEAR_REL), value_dtype) !=
                                  round_to(exact * (1 - NEAR_REL), value_dtype)).sum())
            self.decisions.append((name, idx, kept))
            return scatter_kept(x, idx, round_to(flat.gather(1, idx), value_dtype))
        want, idx, kept = self.decisions[self.pos]
        self.pos += 1
        assert want == name and idx.shape[0] == flat.shape[0], f"replay: {name} where {want} was recorded"
        own_idx, _ = select(x, prune_ratio)
        for b in range(idx.shape[0]):
            swapped = len(set(idx[b].tolist()) ^ set(own_idx[b].tolist())) // 2
            if swapped:
                self.flips.append(f"{name} sample {b}: {swapped} selection swap(s)")
        own_kept = round_to(flat.gather(1, idx), value_dtype)
        if kept is not None:
            for b, j in (own_kept != kept).nonzero().tolist():
                self.flips.append(f"{name} sample {b} flat {idx[b, j].item()}: fp32 {flat[b, idx[b, j]].item():.9g} "
                                  f"rounds to {own_kept[b, j].item():.9g}, exact to {kept[b, j].item():.9g}")
        return scatter_kept(x, idx, kept if kept is not None else own_kept)


EXACT = ExactDecisions()
# "Near a midpoint": an fp16 kept value whose exact value moved by this relative error (~3-7 fp32
# ulps, the size of fp32 reduction-order noise) rounds differently; reported, not avoidable.
NEAR_REL = 4e-7


def check_prune():
    # prune against a brute-force selection on ties, zeros, signed zeros and fp16 rounding.
    g = torch.Generator().manual_seed(3)
    x = torch.randint(-3, 4, (3, 5, 7), generator=g).float() * 0.1 + 1e-4
    x[1] = 0.0
    x[1, 2, 3] = -0.0
    x[2, 0, :4] = torch.tensor([2.0, -2.0, 2.0, 1.0 / 3.0])
    for ratio, dtype in [(0.8, torch.float16), (0.5, torch.float32), (0.0, torch.float32), (1.0, torch.float16)]:
        got = prune(x, ratio, dtype)
        for b in range(x.shape[0]):
            flat = x[b].flatten().tolist()
            k = keep_count(len(flat), ratio)
            order = sorted(range(len(flat)), key=lambda i: (-abs(flat[i]), i))[:k]
            want = torch.zeros(len(flat))
            for i in order:
                want[i] = float(np.float16(flat[i])) if dtype == torch.float16 else flat[i]
            assert torch.equal(got[b].flatten(), want), f"prune({ratio}, {dtype}) sample {b}"
            assert keep_count(len(flat), ratio) == len(order)
    assert keep_count(768, 0.8) == 155 and keep_count(10, 0.8) == 3 and keep_count(1, 0.8) == 1
    assert keep_count(7, 0.0) == 7 and keep_count(7, 1.0) == 1


def saver(policy, site):
    if site in policy:
        ratio, dtype = policy[site]
        return lambda x: EXACT.prune(x, ratio, dtype, site)
    return lambda x: x.detach()


class LinearBR(torch.autograd.Function):
    # y = x Wᵀ + b, x [..., I], W [O, I]. Backward: dx = g W (exact), dW = Σ gᵀ x̃, db = Σ g,
    # sums over all leading dims; x̃ = the saved copy of x.
    @staticmethod
    def forward(ctx, x, x_saved, weight, bias):
        ctx.save_for_backward(x_saved, weight)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, g):
        x_saved, weight = ctx.saved_tensors
        g2 = g.reshape(-1, g.shape[-1])
        return g @ weight, None, g2.t() @ x_saved.reshape(-1, x_saved.shape[-1]), g2.sum(0)


class ScoresBR(torch.autograd.Function):
    # S = scale · Q Kᵀ, Q, K [B,N,S,D] -> [B,N,S,S]. Backward: dQ = scale·dS·K̃, dK = scale·dSᵀ·Q̃.
    @staticmethod
    def forward(ctx, q, k, q_saved, k_saved, scale):
        ctx.save_for_backward(q_saved, k_saved)
        ctx.scale = scale
        return torch.matmul(q, k.transpose(2, 3)) * scale

    @staticmethod
    def backward(ctx, g):
        q_saved, k_saved = ctx.saved_tensors
        return (torch.matmul(g, k_saved) * ctx.scale,
                torch.matmul(g.transpose(2, 3), q_saved) * ctx.scale, None, None, None)


class SoftmaxMatmulBR(torch.autograd.Function):
    # O = softmax(S) V, S [B,N,S,S] (mask already added), V [B,N,S,D]. P̃, Ṽ are the saved copies of
    # P = softmax(S) and V. Backward: dV = P̃ᵀ g, dP = g Ṽᵀ, dS = P̃ ⊙ (dP − rowsum(dP ⊙ P̃)).
    @staticmethod
    def forward(ctx, scores, v, save_p, save_v):
        p = F.softmax(scores, dim=-1)
        ctx.save_for_backward(save_p(p), save_v(v))
        return torch.matmul(p, v)

    @staticmethod
    def backward(ctx, g):
        p_saved, v_saved = ctx.saved_tensors
        dv = torch.matmul(p_saved.transpose(2, 3), g)
        dp = torch.matmul(g, v_saved.transpose(2, 3))
        ds = p_saved * (dp - (dp * p_saved).sum(-1, keepdim=True))
        return ds, dv, None, None


class LayerNormBR(torch.autograd.Function):
    # y = (x − μ)·rstd·γ + β over the last dim H, μ/rstd exact from the forward. Backward from the
    # saved copy x̃ with the exact μ, rstd (ATen layer_norm_backward's math): x̂ = (x̃ − μ)·rstd,
    # dγ = Σ g x̂, dβ = Σ g, dx = rstd·(gγ − mean_H(gγ) − x̂·mean_H(gγ x̂)).
    @staticmethod
    def forward(ctx, x, save_x, weight, bias, eps):
        y, mean, rstd = torch.ops.aten.native_layer_norm(x, [x.shape[-1]], weight, bias, eps)
        ctx.save_for_backward(save_x(x), mean, rstd, weight)
        return y

    @staticmethod
    def backward(ctx, g):
        x_saved, mean, rstd, weight = ctx.saved_tensors
        xhat = (x_saved - mean) * rstd
        gw = g * weight
        dx = rstd * (gw - gw.mean(-1, keepdim=True) - xhat * (gw * xhat).mean(-1, keepdim=True))
        h = g.shape[-1]
        return dx, None, (g * xhat).reshape(-1, h).sum(0), g.reshape(-1, h).sum(0), None


def additive_mask(attention_mask):
    # [B,S] of 1/0 -> [B,1,1,S] of 0 / MASK_VALUE, added to every query row's scores.
    m = torch.zeros(attention_mask.shape, dtype=torch.float32).masked_fill(attention_mask == 0, MASK_VALUE)
    return m[:, None, None, :]


def bert_forward(model, input_ids, token_type_ids, attention_mask, policy):
    # BertForSequenceClassification's forward (eval of dropout p=0), written out with the Back Razor
    # sites of `policy`; returns logits. Same op order as transformers, so the forward is bit-exact.
    cfg = model.config
    bert = model.bert
    B, S = input_ids.shape
    H, N = cfg.hidden_size, cfg.num_attention_heads
    D = H // N
    scale = D ** -0.5
    eps = cfg.layer_norm_eps
    e = bert.embeddings
    h = e.word_embeddings(input_ids) + e.token_type_embeddings(token_type_ids)
    h = h + e.position_embeddings(torch.arange(S))[None]
    h = F.layer_norm(h, (H,), e.LayerNorm.weight, e.LayerNorm.bias, eps)
    mask = additive_mask(attention_mask)
    for layer in bert.encoder.layer:
        a = layer.attention
        x = h
        x_saved = saver(policy, "attn_input")(x)
        heads = lambda t: t.view(B, S, N, D).transpose(1, 2)
        q = heads(LinearBR.apply(x, x_saved, a.self.query.weight, a.self.query.bias))
        k = heads(LinearBR.apply(x, x_saved, a.self.key.weight, a.self.key.bias))
        v = heads(LinearBR.apply(x, x_saved, a.self.value.weight, a.self.value.bias))
        scores = ScoresBR.apply(q, k, saver(policy, "q")(q), saver(policy, "k")(k), scale)
        scores = scores + mask
        context = SoftmaxMatmulBR.apply(scores, v, saver(policy, "probs"), saver(policy, "v"))
        context = context.transpose(1, 2).contiguous().reshape(B, S, H)
        o = LinearBR.apply(context, saver(policy, "attn_out_input")(context), a.output.dense.weight,
                           a.output.dense.bias)
        h1 = LayerNormBR.apply(o + x, saver(policy, "ln1_input"), a.output.LayerNorm.weight,
                               a.output.LayerNorm.bias, eps)
        f = F.linear(h1, layer.intermediate.dense.weight, layer.intermediate.dense.bias)
        f = F.gelu(f)
        f = F.linear(f, layer.output.dense.weight, layer.output.dense.bias)
        h = F.layer_norm(f + h1, (H,), layer.output.LayerNorm.weight, layer.output.LayerNorm.bias, eps)
    pooled = torch.tanh(F.linear(h[:, 0], bert.pooler.dense.weight, bert.pooler.dense.bias))
    return LinearBR.apply(pooled, saver(policy, "classifier_input")(pooled), model.classifier.weight,
                          model.classifier.bias)


def loss_of(model, logits, labels):
    # What BertForSequenceClassification computes: cross entropy (mean) for num_labels > 1 with
    # integer labels, MSE (mean) on the squeezed logits for num_labels == 1.
    if model.config.num_labels == 1:
        return F.mse_loss(logits.squeeze(), labels.squeeze())
    return F.cross_entropy(logits.view(-1, model.config.num_labels), labels.view(-1))


def grads_of(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def dense_step(model, batch):
    model.zero_grad(set_to_none=False)
    out = model(**batch)
    out.loss.backward()
    return out.logits.detach().clone(), out.loss.detach().clone(), grads_of(model)


def backrazor_step(model, batch, policy):
    model.zero_grad(set_to_none=False)
    logits = bert_forward(model, batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], policy)
    loss = loss_of(model, logits, batch["labels"])
    loss.backward()
    return logits.detach().clone(), loss.detach().clone(), grads_of(model)


def seed_step(model, batch):
    # The Back Razor seed step in fp32, with the pruning decisions of a float64 forward of the same
    # model and batch (ExactDecisions); the fp32 forward itself is untouched (bit-exact with dense).
    model64 = copy.deepcopy(model).double()
    EXACT.start("record")
    try:
        with torch.no_grad():
            bert_forward(model64, batch["input_ids"], batch["token_type_ids"], batch["attention_mask"], SEED_POLICY)
        EXACT.start("replay")
        result = backrazor_step(model, batch, SEED_POLICY)
        assert EXACT.pos == len(EXACT.decisions), "replay: not every recorded decision was used"
    finally:
        EXACT.mode = None
    return result


def rel_diff(a, b, floor):
    # max |a - b| over max |b|, the denominator at least `floor` so that gradients that are 0 in
    # exact arithmetic (the key bias: softmax is shift invariant) compare by absolute error.
    return (a - b).abs().max().item() / max(b.abs().max().item(), floor)


def exact_in_seed(name, num_layers):
    # Parameters whose gradient `seed` leaves exact: everything above the last layer's LN1
    # (classifier bias, pooler, last layer's FFN and LN2); the classifier weight uses the pruned input.
    last = f"bert.encoder.layer.{num_layers - 1}."
    return (name == "classifier.bias" or name.startswith("bert.pooler.") or
            name.startswith(last + "intermediate.") or name.startswith(last + "output."))


def check_mask_value(model, batch):
    # The mask transformers feeds eager attention must be the one bert_forward adds.
    import transformers.models.bert.modeling_bert as mb
    seen = []
    original = mb.eager_attention_forward

    def spy(module, q, k, v, mask, **kw):
        seen.append(mask.detach().clone())
        return original(module, q, k, v, mask, **kw)

    mb.eager_attention_forward = spy
    try:
        with torch.no_grad():
            model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                  attention_mask=batch["attention_mask"])
    finally:
        mb.eager_attention_forward = original
    assert seen, "eager attention was not called: check attn_implementation"
    ours = additive_mask(batch["attention_mask"]).expand_as(seen[0])
    assert torch.equal(seen[0], ours), f"transformers' mask differs from ours: {seen[0].unique()}"


def run_modes(model, batch, name, min_gap=None):
    # dense and seed steps plus the self-checks; returns ({"dense": (...), "seed": (...)}, (the
    # smallest selection gap of the seed step, where PyTorch's fp32 pruning decisions would differ
    # from the exact ones)). With min_gap, asserts the gap is at least that.
    model.train()
    check_mask_value(model, batch)
    dense = dense_step(model, batch)
    keep_all = backrazor_step(model, batch, KEEP_ALL_POLICY)
    SELECTION_GAPS.clear()
    seed = seed_step(model, batch)
    gap = min(SELECTION_GAPS)
    fwd = max((keep_all[0] - dense[0]).abs().max().item(), (seed[0] - dense[0]).abs().max().item())
    assert fwd <= 1e-5 * max(1.0, dense[0].abs().max().item()), f"{name}: forward differs by {fwd}"
    floor = 1e-3 * max(g.abs().max().item() for g in dense[2].values())
    exact = max(rel_diff(keep_all[2][n], g, floor) for n, g in dense[2].items())
    assert exact < 1e-4, f"{name}: keep-all fp32 Back Razor grads differ from dense by {exact}"
    L = model.config.num_hidden_layers
    seed_exact = max(rel_diff(seed[2][n], g, floor) for n, g in dense[2].items() if exact_in_seed(n, L))
    assert seed_exact < 1e-4, f"{name}: seed changed gradients it must leave exact: {seed_exact}"
    approx = {n: rel_diff(seed[2][n], g, floor) for n, g in dense[2].items()
              if not exact_in_seed(n, L) and "key.bias" not in n}
    key_bias = max(g.abs().max().item() for n, g in dense[2].items() if "key.bias" in n)
    worst = max(approx, key=approx.get)
    assert approx["classifier.weight"] > 1e-4, f"{name}: seed did not change the classifier weight grad"
    print(f"{name}: loss dense {dense[1].item():.6f} seed {seed[1].item():.6f}; "
          f"max |logits(ours) - logits(HF)| = {fwd:.3g}")
    print(f"{name}: keep-all fp32 vs dense grads: max rel diff {exact:.3g} (assert < 1e-4)")
    print(f"{name}: seed vs dense on exact params (classifier.bias, pooler, last FFN/LN2): "
          f"max rel diff {seed_exact:.3g}")
    print(f"{name}: seed vs dense on approximate params: classifier.weight {approx['classifier.weight']:.3g}, "
          f"median {float(np.median(list(approx.values()))):.3g}, max {approx[worst]:.3g} ({worst}); "
          f"dense max |key.bias grad| {key_bias:.3g} (0 in exact arithmetic)")
    print(f"{name}: seed smallest relative selection gap {gap:.3g} over {len(SELECTION_GAPS)} pruned tensors "
          f"(float64 activations)")
    print(f"{name}: PyTorch's own fp32 pruning would differ from the exact (float64) decisions at "
          f"{len(EXACT.flips)} kept value(s){':' if EXACT.flips else ''}")
    for flip in EXACT.flips:
        print(f"{name}:   {flip}")
    print(f"{name}: {EXACT.near} kept fp16 value(s) within {NEAR_REL:g} relative of an fp16 rounding "
          f"midpoint (an fp32 implementation may round them either way)")
    assert min_gap is None or gap >= min_gap, f"{name}: selection gap {gap} < {min_gap}: pick other seeds"
    return {"dense": dense, "seed": seed}, (gap, list(EXACT.flips))


def tensors_of(prefix, model, batch, results, params=None):
    out = {}
    for key in ["input_ids", "token_type_ids", "attention_mask", "labels"]:
        t = batch[key]
        out[prefix + key] = (t.to(torch.int32) if t.dtype == torch.int64 else t).contiguous()
    for n, p in model.named_parameters():
        if params is None or n in params:
            out[f"{prefix}param.{n}"] = p.detach().clone().contiguous()
    for mode, (logits, loss, grads) in results.items():
        out[f"{prefix}{mode}.logits"] = logits.contiguous()
        out[f"{prefix}{mode}.loss"] = loss.reshape(1).contiguous()
        for n, g in grads.items():
            out[f"{prefix}{mode}.grad.{n}"] = g.contiguous()
    return out


def tiny_model(seed, **config):
    # initializer_range 0.1, not BERT's 0.02: at 0.02 attention is near uniform and the logits of
    # the three samples differ by ~1e-4, too little for a forward test to see a masking bug.
    torch.manual_seed(seed)
    cfg = BertConfig(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.1,
                     type_vocab_size=2, **config)
    cfg._attn_implementation = "eager"
    model = BertForSequenceClassification(cfg)
    # Perturb LayerNorm weights and biases and every bias away from the 1 / 0 init, so their
    # gradients and their use in backward are tested.
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "LayerNorm.weight" in n:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif n.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    return model


def tiny_batch(lengths, seq_len, vocab, labels, seed):
    # [CLS]=2 a... [SEP]=3 b... [SEP]=3, then [PAD]=0; token_type 0 up to the first [SEP], 1 after it.
    g = torch.Generator().manual_seed(seed)
    B = len(lengths)
    ids = torch.zeros(B, seq_len, dtype=torch.int64)
    types = torch.zeros(B, seq_len, dtype=torch.int64)
    mask = torch.zeros(B, seq_len, dtype=torch.int64)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.randint(4, vocab, (n,), generator=g)
        ids[b, 0] = 2
        ids[b, n - 1] = 3
        boundary = max(1, n // 2)
        if n >= 4:
            ids[b, boundary] = 3
            types[b, boundary + 1:n] = 1
        mask[b, :n] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "labels": labels}


def versions():
    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "safetensors": safetensors.__version__, "numpy": np.__version__}


def metadata(configs, gaps):
    meta = {"mask_value": repr(MASK_VALUE), "prune_ratio": repr(PRUNE_RATIO),
            "seed_policy": json.dumps({s: [r, str(d).replace("torch.", "")] for s, (r, d) in SEED_POLICY.items()}),
            "seed_decisions": "float64 forward (kept positions, fp16 values); fp32 step otherwise",
            "versions": json.dumps(versions()), "made_by": "tools/make_golden_bert.py"}
    for prefix, model in configs.items():
        meta[prefix + "config"] = model.config.to_json_string(use_diff=False)
        gap, flips = gaps[prefix]
        meta[prefix + "min_selection_gap"] = repr(gap)
        meta[prefix + "fp32_decision_flips"] = json.dumps(flips)
    return meta


# Seeds chosen so that every seed-mode selection gap is at least TINY_MIN_GAP (about 500 fp32 ulps).
TINY_MIN_GAP = 3e-5


def make_tiny(out_path):
    cls = tiny_model(6, vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=37, max_position_embeddings=32, num_labels=2)
    cls_batch = tiny_batch([16, 11, 5], 16, 99, torch.tensor([1, 0, 1], dtype=torch.int64), seed=7)
    reg = tiny_model(1006, vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=19, max_position_embeddings=32, num_labels=1)
    reg_batch = tiny_batch([13, 9, 4, 12], 13, 50, torch.tensor([3.8, 0.6, 2.25, 4.9]), seed=8)
    cls_results, cls_gap = run_modes(cls, cls_batch, "tiny", TINY_MIN_GAP)
    reg_results, reg_gap = run_modes(reg, reg_batch, "tiny-regression", TINY_MIN_GAP)
    tensors = tensors_of("", cls, cls_batch, cls_results)
    tensors.update(tensors_of("reg.", reg, reg_batch, reg_results))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    save_file(tensors, out_path, metadata=metadata({"": cls, "reg.": reg}, {"": cls_gap, "reg.": reg_gap}))
    print(f"wrote {out_path}: {len(tensors)} tensors, {os.path.getsize(out_path)} bytes")


def rte_pairs(path, count):
    rows = []
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            cols = line.rstrip("\n").split("\t")
            rows.append(dict(zip(header, cols)))
            if len(rows) == count:
                break
    label = {"entailment": 0, "not_entailment": 1}
    return [r["sentence1"] for r in rows], [r["sentence2"] for r in rows], [label[r["label"]] for r in rows]


def make_minilm(model_dir, rte_path):
    torch.manual_seed(5)
    model = BertForSequenceClassification.from_pretrained(
        model_dir, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        attn_implementation="eager")
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 0.02)
        model.classifier.bias.zero_()
    tok = BertTokenizer(os.path.join(model_dir, "vocab.txt"), do_lower_case=True)
    s1, s2, labels = rte_pairs(rte_path, 3)
    enc = tok(s1, s2, max_length=64, padding="max_length", truncation=True, return_tensors="pt")
    batch = {"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
             "attention_mask": enc["attention_mask"], "labels": torch.tensor(labels, dtype=torch.int64)}
    print(f"minilm: RTE lengths {enc['attention_mask'].sum(1).tolist()} of 64, labels {labels}")
    results, gap = run_modes(model, batch, "minilm")
    tensors = tensors_of("", model, batch, results, params={"classifier.weight", "classifier.bias"})
    meta = metadata({"": model}, {"": gap})
    meta["body_params"] = "model.safetensors in this directory (BertModel names, no 'bert.' prefix)"
    out_path = os.path.join(model_dir, "golden_minilm.safetensors")
    save_file(tensors, out_path, metadata=meta)
    print(f"wrote {out_path}: {len(tensors)} tensors, {os.path.getsize(out_path)} bytes")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "golden_tiny.safetensors"))
    ap.add_argument("--model", default=os.path.expanduser("~/.cache/bertrazor/models/all-MiniLM-L6-v2"))
    rte = [os.path.join(REPO, "shared", "data", "glue", "RTE", "dev.tsv"),
           os.path.join(REPO, "..", "shared", "data", "glue", "RTE", "dev.tsv")]
    ap.add_argument("--rte", default=next((p for p in rte if os.path.exists(p)), rte[0]))
    args = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    print("versions:", json.dumps(versions()))
    check_prune()
    make_tiny(args.out)
    if os.path.exists(os.path.join(args.model, "model.safetensors")):
        make_minilm(args.model, args.rte)
    else:
        print(f"minilm: SKIPPED, no model.safetensors in {args.model} (tools/get_model.sh all-MiniLM-L6-v2)",
              file=sys.stderr)


if __name__ == "__main__":
    main()

// Scaled dot-product attention with a key padding mask and upstream-BERT attention dropout, in two
// forms: materialized (stores the probabilities, which Back Razor may then prune) and fused
// flash-style (stores only the per-row logsumexp). Heads-major layout: q, k, v, out [B, N, S, D].
//   S = scale·q·kᵀ + mask[b, key]     P = softmax_rows(S)     out = dropout(P)·v
// mask [B, S] f32 additive: 0 for real keys, std::numeric_limits<float>::lowest() for padded keys
// (undefined = no mask). Dropout on P follows kernels/dropout.h: row = batch index b, element
// e = (n·L + i)·L + j within the sample, L = key.length (>= S; S when 0: core/philox.h), keep =
// dropout_uniform(key, example_ids[b], e) >= p, kept values scaled by 1/(1−p). With a fixed L a
// sample's mask is the same at any padded length S. example_ids i32 [B]; may be undefined when
// dropout_p == 0.
// dtypes: CPU f32/f64, CUDA f32/bf16 (fp32 accumulation); mask and lse are always f32.
#pragma once
#include "core/philox.h"
#include "core/tensor.h"

namespace br {

// Materialized attention. probs [B, N, S, S] (dtype of q) receives P before dropout, which is what
// backward needs. On the CPU q (and out, dq, dout) may hold only the first Sq <= S query rows,
// [B, N, Sq, D], with probs [B, N, Sq, S]: exactly those rows of the whole problem, the dropout
// elements included (e = (n·L + i)·L + j for query row i < Sq), while k and v (dk, dv) keep their
// S rows. A model's last layer needs only its [CLS] queries (Sq = 1). CUDA needs Sq = S.
void attention_forward(const Tensor& out, const Tensor& probs, const Tensor& q, const Tensor& k,
                       const Tensor& v, const Tensor& mask, float scale, float dropout_p,
                       const DropoutKey& key, const Tensor& example_ids);
// Backward from possibly approximate (Back Razor reconstructed) q, k, v, probs, used exactly as given:
//   Pd = dropout(probs); dv = Pdᵀ·dout; dPd = dout·vᵀ; dP = dropout_backward(dPd);
//   dS = probs ⊙ (dP − rowsum(dP ⊙ probs)); dq = scale·dS·k; dk = scale·dSᵀ·q.
// dq, dk, dv are overwritten.
void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                        const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                        float scale, float dropout_p, const DropoutKey& key,
                        const Tensor& example_ids);

// Fused attention that never stores an S×S matrix. lse [B, N, S] f32 = logsumexp over keys of the
// scaled masked scores. CUDA needs D == 64; the CPU works on 64 x 64 tiles of query rows x key
// columns with an online softmax (kernels/cpu/attention.cpp), the same outputs to rounding. Backward recomputes P = exp(S − lse) and regenerates the dropout mask; it uses
// rowsum(dout ⊙ out) = rowsum(dP ⊙ P), so `out` must be the forward's output. Every sample needs at
// least one unmasked key: with all keys at lowest() the fp32 lse loses the scores and backward's P
// is wrong (the materialized path has no such limit). lse is fp32 also for f64 inputs, so f64 flash
// gradients agree with the materialized ones to ~1e-7 relative, not to double precision.
void flash_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& mask, float scale, float dropout_p,
                             const DropoutKey& key, const Tensor& example_ids);
void flash_attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                              const Tensor& dout, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& out, const Tensor& lse,
                              const Tensor& mask, float scale, float dropout_p,
                              const DropoutKey& key, const Tensor& example_ids);

}  // namespace br

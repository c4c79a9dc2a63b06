// Fused pointwise passes: each is one pass over memory in place of the unfused sequence named
// above it, and on the CPU gives that sequence's bits (f32 and f64, any thread count; the
// LayerNorm one with a caveat below), so the model may use either without changing a result. On
// CUDA (f32 or bf16 activations, fp32 math) they agree with the sequence within the op table's
// bounds.
// Shapes: activations [..., N] (M rows of N, any leading dims); bias, dbias [N]. Dropout rows are
// the samples, dim 0, as in kernels/dropout.h (those ops need at least 2 dims); example_ids i32
// [dim0]. dtypes: one activation dtype for inp, bias, pre, out, residual, xsum, dout, dinp; dbias
// the activation dtype (on CUDA also f32 under bf16); LayerNorm's weight, ln_bias, mean and rstd as
// in kernels/layernorm.h.
#pragma once
#include "core/philox.h"
#include "core/tensor.h"

namespace br {

// bias_add_forward then gelu_forward: pre = inp + bias, out = gelu(pre) (erf form, kernels/gelu.h).
// pre may alias inp.
void bias_gelu_forward(const Tensor& pre, const Tensor& out, const Tensor& inp, const Tensor& bias);
// gelu_backward then bias_add_backward: dinp = dout ⊙ gelu'(pre); dbias += Σ_rows dinp
// (accumulated; skipped when dbias is undefined). dinp may alias dout.
void bias_gelu_backward(const Tensor& dinp, const Tensor& dbias, const Tensor& dout,
                        const Tensor& pre);

// bias_add_forward, dropout_forward, then layernorm_forward with residual and xsum (the same
// bits for rows of a multiple of 8 elements in the release build; a shorter tail agrees to
// rounding, and to the bit in the release build on AVX2 but for f64 with a residual at N = 3;
// under tools/sanitize.sh on AVX-512 every row agrees to rounding):
// xsum = dropout(inp + bias) + residual; out = LayerNorm(xsum)·weight + ln_bias, with mean and
// rstd as layernorm_forward writes them. xsum may be undefined (not wanted) or alias inp; residual
// may be undefined (x = dropout(inp + bias)).
void bias_dropout_residual_layernorm_forward(const Tensor& out, const Tensor& mean,
                                             const Tensor& rstd, const Tensor& xsum,
                                             const Tensor& inp, const Tensor& bias, float p,
                                             const DropoutKey& key, const Tensor& example_ids,
                                             const Tensor& residual, const Tensor& weight,
                                             const Tensor& ln_bias, double eps);
// dropout_backward then bias_add_backward: dinp = keep ? dout/(1−p) : 0 with dropout_forward's
// mask; dbias += Σ_rows dinp (accumulated; skipped when dbias is undefined). dinp may alias dout.
void dropout_bias_backward(const Tensor& dinp, const Tensor& dbias, const Tensor& dout, float p,
                           const DropoutKey& key, const Tensor& example_ids);

}  // namespace br

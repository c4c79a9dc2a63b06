// LayerNorm over the last dim with an optional fused residual add.
// Shapes: inp, residual, out, xsum, dinp, dout, x: [..., C] (M rows); weight, bias, dweight, dbias: [C];
// mean, rstd: M elements (any shape, e.g. [M] or [B,S]).
// dtypes: CPU: everything f32, or everything f64. CUDA: inp/residual/out/xsum/x/dout/dinp f32 or bf16
// (one dtype); weight/bias f32 or the activation dtype, dweight/dbias the weight dtype; mean/rstd f32.
#pragma once
#include "core/tensor.h"

namespace br {

// Over the last dim C of [M,C] (any leading dims): x = inp + residual (residual may be undefined);
// out = (x − mean)·rstd·weight + bias, rstd = 1/sqrt(var + eps) (biased variance).
// mean[M], rstd[M] are f32 (f64 when inp is f64). xsum (may be undefined) receives x = inp + residual.
void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& residual, const Tensor& weight, const Tensor& bias, double eps,
                       const Tensor& xsum);
// Given x (the normalised input; may be a Back Razor reconstruction) and the EXACT mean/rstd from the forward:
// x̂ = (x − mean)·rstd; dinp = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dout·weight (overwritten);
// dweight += Σ dout·x̂; dbias += Σ dout (accumulated; each skipped if undefined).
void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                        const Tensor& weight);

}  // namespace br

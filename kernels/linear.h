// Fully connected layer, weight stored [out_features, in_features] as in PyTorch.
#pragma once
#include "core/tensor.h"

namespace br {

// out[M,N] = inp[M,K] · weight[N,K]ᵀ + bias[N]; inp/out may have any leading dims (M = numel/K).
// bias may be undefined. out, inp, weight, bias share one dtype.
void linear_forward(const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias);
// dinp[M,K] = dout · weight (overwritten; skipped if dinp undefined)
// dweight[N,K] += doutᵀ · inp ; dbias[N] += Σ_rows dout   (accumulated; each skipped if undefined)
// dweight/dbias may be f32 while inp/dout/weight are bf16 (fp32 master grads) on CUDA.
void linear_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                     const Tensor& dout, const Tensor& inp, const Tensor& weight);

}  // namespace br

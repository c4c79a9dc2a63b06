// Bias over the last dimension: rows are every leading index (M = numel / N).
#pragma once
#include "core/tensor.h"

namespace br {

// out[M,N] = inp[M,N] + bias[N]   (out may alias inp; one dtype)
void bias_add_forward(const Tensor& out, const Tensor& inp, const Tensor& bias);
// dbias[N] += Σ_rows dout[M,N]   (accumulated; summed in at least fp32; on CUDA dbias may be f32
// while dout is bf16)
void bias_add_backward(const Tensor& dbias, const Tensor& dout);

}  // namespace br

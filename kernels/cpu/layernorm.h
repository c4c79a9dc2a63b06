#pragma once
#include "core/tensor.h"

namespace br::cpu {
// Arguments already checked by br::layernorm_*; M rows of C; undefined optional tensors are skipped.
void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& residual, const Tensor& weight, const Tensor& bias, double eps,
                       const Tensor& xsum, int64_t M, int64_t C);
void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                        const Tensor& weight, int64_t M, int64_t C);
}  // namespace br::cpu

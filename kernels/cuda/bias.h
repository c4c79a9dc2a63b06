#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace br::cuda {
void bias_add_forward(const Tensor& out, const Tensor& inp, const Tensor& bias, int64_t M, int64_t N);
void bias_add_backward(const Tensor& dbias, const Tensor& dout, int64_t M, int64_t N);
}  // namespace br::cuda

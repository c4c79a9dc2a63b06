#pragma once
#include "core/tensor.h"

namespace br::cuda {
void gelu_forward(const Tensor& out, const Tensor& inp);
void gelu_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp);
}  // namespace br::cuda

#pragma once
#include "core/tensor.h"

namespace br::cuda {
void tanh_forward(const Tensor& out, const Tensor& inp);
void tanh_backward(const Tensor& dinp, const Tensor& dout, const Tensor& out);
}  // namespace br::cuda

#pragma once
#include "core/tensor.h"

namespace br::cpu {
void tanh_forward(const Tensor& out, const Tensor& inp);
void tanh_backward(const Tensor& dinp, const Tensor& dout, const Tensor& out);
}  // namespace br::cpu

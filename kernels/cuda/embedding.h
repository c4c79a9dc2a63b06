#pragma once
#include "core/tensor.h"

namespace br::cuda {
void embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& table, bool accumulate);
void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& ids);
}  // namespace br::cuda

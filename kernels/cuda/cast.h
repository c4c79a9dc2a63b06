#pragma once
#include "core/tensor.h"

namespace br::cuda {
void cast(const Tensor& out, const Tensor& in);
void fill(const Tensor& out, double value);
}  // namespace br::cuda

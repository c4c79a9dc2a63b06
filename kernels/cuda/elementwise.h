#pragma once
#include "core/tensor.h"

namespace br::cuda {
void add(const Tensor& out, const Tensor& a, const Tensor& b);
void axpy(const Tensor& out, float alpha, const Tensor& x);
}  // namespace br::cuda

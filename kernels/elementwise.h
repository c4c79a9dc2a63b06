// Elementwise arithmetic on tensors of identical shape and dtype (no broadcasting).
#pragma once
#include "core/tensor.h"

namespace br {

// out = a + b  (out may alias a or b)
void add(const Tensor& out, const Tensor& a, const Tensor& b);
// out += alpha * x
void axpy(const Tensor& out, float alpha, const Tensor& x);

}  // namespace br

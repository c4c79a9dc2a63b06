#pragma once
#include <vector>

#include "core/tensor.h"

namespace br::cpu {
// Σ_i Σ_e grads_i[e]², accumulated as kernels/grad_norm.h describes.
double sum_squares(const std::vector<Tensor>& grads);
void scale_(const Tensor& t, float factor);
}  // namespace br::cpu

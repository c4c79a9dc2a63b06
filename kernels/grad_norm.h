// Global gradient norm and torch.nn.utils.clip_grad_norm_. Gradients: CPU f32/f64, CUDA f32/bf16,
// all on one device. The sum of squares is accumulated in double on the CPU; on CUDA each block
// sums a fixed chunk in fp32 and the partials are added in double in a fixed order, so the result
// is deterministic run to run.
#pragma once
#include <vector>

#include "core/tensor.h"

namespace br {

// sqrt(Σ_i Σ_e grad_i[e]²); 0 for an empty list.
double global_grad_norm(const std::vector<Tensor>& grads);
// coef = max_norm / (total_norm + 1e-6); when coef < 1 (or NaN) every gradient is multiplied by
// float(coef). Returns total_norm before clipping. torch sums in fp32; this sums in double, so the
// norms agree to fp32 rounding.
double clip_grad_norm(const std::vector<Tensor>& grads, double max_norm);
// t *= factor, elementwise.
void scale_(const Tensor& t, float factor);

}  // namespace br

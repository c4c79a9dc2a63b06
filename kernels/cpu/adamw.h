#pragma once
#include <vector>

#include "core/tensor.h"
#include "kernels/adamw_scalars.h"

namespace br::cpu {
void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& ms, const std::vector<Tensor>& vs,
                const std::vector<bool>& decay, const AdamWScalars& s);
}  // namespace br::cpu

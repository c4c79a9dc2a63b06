#pragma once
#include "core/philox.h"
#include "core/tensor.h"

namespace br::cpu {
// out = keep(r, e) ? inp · scale : 0 over rows × n; used for forward and backward alike.
void dropout_apply(const Tensor& out, const Tensor& inp, float p, const DropoutKey& key,
                   const Tensor& example_ids, int64_t rows, int64_t n);
}  // namespace br::cpu

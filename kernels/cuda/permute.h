#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace br::cuda {
// out[b,p,q,:] = in[b,q,p,:] with out [B,P,Q,D] and in [B,Q,P,D], element size 2, 4 or 8 bytes.
void swap_middle(const Tensor& out, const Tensor& in, int64_t B, int64_t P, int64_t Q, int64_t D);
}  // namespace br::cuda

#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace br::cpu {
// x viewed as [B, G, S, R]: rows (b, g, s) with token_mask[b, s] == 0 set to zero bits.
void zero_padding_rows(const Tensor& x, const Tensor& token_mask, int64_t B, int64_t G, int64_t S,
                       int64_t R);
}  // namespace br::cpu

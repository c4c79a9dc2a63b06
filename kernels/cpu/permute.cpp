#include "kernels/cpu/cpu_ops.h"

#include <cstring>

namespace br::cpu {

void swap_middle(const Tensor& out, const Tensor& in, int64_t B, int64_t P, int64_t Q, int64_t D) {
  const size_t row = size_t(D) * dtype_size(out.dtype());
  char* dst = static_cast<char*>(out.raw());
  const char* src = static_cast<const char*>(in.raw());
#pragma omp parallel for collapse(2) schedule(static) if (B * P * Q * D > (1 << 16))
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < P; ++p)
      for (int64_t q = 0; q < Q; ++q)
        std::memcpy(dst + size_t((b * P + p) * Q + q) * row, src + size_t((b * Q + q) * P + p) * row,
                    row);
}

}  // namespace br::cpu

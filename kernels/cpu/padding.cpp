#include "kernels/cpu/cpu_ops.h"

#include <cstring>

namespace br::cpu {

void zero_padding_rows(const Tensor& x, const Tensor& token_mask, int64_t B, int64_t G, int64_t S,
                       int64_t R) {
  const size_t row = size_t(R) * dtype_size(x.dtype());
  char* xs = static_cast<char*>(x.raw());
  const int32_t* m = token_mask.data<int32_t>();
#pragma omp parallel for collapse(2) schedule(static) if (B * G * S * R > (1 << 16))
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g)
      for (int64_t s = 0; s < S; ++s)
        if (m[b * S + s] == 0) std::memset(xs + size_t((b * G + g) * S + s) * row, 0, row);
}

}  // namespace br::cpu

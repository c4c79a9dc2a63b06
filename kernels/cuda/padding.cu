#include <algorithm>
#include <cstdint>

#include "core/cuda_check.h"
#include "kernels/cuda/padding.h"

namespace br::cuda {

namespace {

// One thread per element, grid-stride; elements are raw bits of their size.
template <typename E>
__global__ void zero_padding_rows_kernel(E* x, const int32_t* mask, int64_t GS_R, int64_t S,
                                         int64_t R, int64_t total) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t b = i / GS_R, s = (i / R) % S;
    if (mask[b * S + s] == 0) x[i] = E(0);
  }
}

template <typename E>
void launch(const Tensor& x, const Tensor& mask, int64_t GS_R, int64_t S, int64_t R,
            int64_t total) {
  const unsigned grid = std::min(grid_1d(total), 65535u * 8);
  zero_padding_rows_kernel<<<grid, 256, 0, stream()>>>(
      static_cast<E*>(x.raw()), mask.data<int32_t>(), GS_R, S, R, total);
}

}  // namespace

void zero_padding_rows(const Tensor& x, const Tensor& token_mask, int64_t B, int64_t G, int64_t S,
                       int64_t R) {
  const int64_t total = B * G * S * R, GS_R = G * S * R;
  switch (dtype_size(x.dtype())) {
    case 2:
      launch<uint16_t>(x, token_mask, GS_R, S, R, total);
      break;
    case 4:
      launch<uint32_t>(x, token_mask, GS_R, S, R, total);
      break;
    case 8:
      launch<uint64_t>(x, token_mask, GS_R, S, R, total);
      break;
    default:
      fail("zero_padding_rows: CUDA handles 2-, 4- or 8-byte elements, got {}", x.str());
  }
  BR_KERNEL_CHECK("zero_padding_rows");
}

}  // namespace br::cuda

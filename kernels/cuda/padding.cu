#include <cstdint>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

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

}  // namespace

void zero_padding_rows(const Tensor& x, const Tensor& token_mask, int64_t B, int64_t G, int64_t S,
                       int64_t R) {
  const int64_t total = B * G * S * R;
  dispatch_bits("zero_padding_rows", x, [&](auto e) {
    using E = decltype(e);
    zero_padding_rows_kernel<<<grid_stride_blocks(total), 256, 0, stream()>>>(
        static_cast<E*>(x.raw()), token_mask.data<int32_t>(), G * S * R, S, R, total);
  });
  BR_KERNEL_CHECK("zero_padding_rows");
}

}  // namespace br::cuda

#include <cstdint>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

// One thread per output element, grid-stride; writes are coalesced, reads are contiguous within
// each D-long row. Elements move as raw bits of their size.
template <typename E>
__global__ void swap_middle_kernel(E* out, const E* in, int64_t P, int64_t Q, int64_t D,
                                   int64_t total) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t d = i % D;
    int64_t t = i / D;
    const int64_t q = t % Q;
    t /= Q;
    const int64_t p = t % P;
    const int64_t b = t / P;
    out[i] = in[((b * Q + q) * P + p) * D + d];
  }
}

}  // namespace

void swap_middle(const Tensor& out, const Tensor& in, int64_t B, int64_t P, int64_t Q, int64_t D) {
  const int64_t total = B * P * Q * D;
  if (total == 0) return;
  dispatch_bits("split_heads/merge_heads", out, [&](auto e) {
    using E = decltype(e);
    swap_middle_kernel<<<grid_stride_blocks(total), 256, 0, stream()>>>(
        static_cast<E*>(out.raw()), static_cast<const E*>(in.raw()), P, Q, D, total);
  });
  BR_KERNEL_CHECK("split_heads/merge_heads");
}

}  // namespace br::cuda

#include <algorithm>
#include <cstdint>

#include "core/cuda_check.h"
#include "kernels/cuda/permute.h"

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

template <typename E>
void launch(const Tensor& out, const Tensor& in, int64_t P, int64_t Q, int64_t D, int64_t total) {
  const unsigned grid = std::min(grid_1d(total), 65535u * 8);
  swap_middle_kernel<<<grid, 256, 0, stream()>>>(static_cast<E*>(out.raw()),
                                                 static_cast<const E*>(in.raw()), P, Q, D, total);
}

}  // namespace

void swap_middle(const Tensor& out, const Tensor& in, int64_t B, int64_t P, int64_t Q, int64_t D) {
  const int64_t total = B * P * Q * D;
  if (total == 0) return;
  switch (dtype_size(out.dtype())) {
    case 2:
      launch<uint16_t>(out, in, P, Q, D, total);
      break;
    case 4:
      launch<uint32_t>(out, in, P, Q, D, total);
      break;
    case 8:
      launch<uint64_t>(out, in, P, Q, D, total);
      break;
    default:
      fail("split_heads/merge_heads: CUDA moves 2-, 4- or 8-byte elements, got {}", out.str());
  }
  BR_KERNEL_CHECK("split_heads/merge_heads");
}

}  // namespace br::cuda

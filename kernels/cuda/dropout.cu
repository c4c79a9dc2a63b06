#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

// One thread per group of four elements e = 4j..4j+3 of row r: one Philox call gives the four
// uniforms dropout_uniform(key, ids[r], e) would; keep when u >= p; out = keep ? inp·scale : 0.
template <typename T>
__global__ void dropout_kernel(T* out, const T* inp, float p, float scale, DropoutKey key,
                               const int32_t* ids, int64_t rows, int64_t n) {
  const int64_t groups = (n + 3) / 4;
  const int64_t total = rows * groups;
  for (int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; g < total;
       g += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = g / groups, j = g % groups;
    const Philox4 w = philox4x32_10(Philox4{{uint32_t(j), uint32_t(ids[r]), key.site, key.step}},
                                    uint32_t(key.seed), uint32_t(key.seed >> 32));
    const int64_t base = r * n + 4 * j;
    const int cnt = n - 4 * j < 4 ? int(n - 4 * j) : 4;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      if (q < cnt)
        out[base + q] = philox_uniform(w.v[q]) >= p ? from_f<T>(to_f(inp[base + q]) * scale)
                                                    : from_f<T>(0.0f);
    }
  }
}

}  // namespace

void dropout_apply(const Tensor& out, const Tensor& inp, float p, const DropoutKey& key,
                   const Tensor& example_ids, int64_t rows, int64_t n) {
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const int64_t total = rows * ((n + 3) / 4);
  dispatch_f32_bf16("dropout", inp, [&](auto tag) {
    using T = decltype(tag);
    dropout_kernel<T><<<grid_stride_blocks(total), 256, 0, stream()>>>(
        static_cast<T*>(out.raw()), static_cast<const T*>(inp.raw()), p, scale, key,
        example_ids.data<int32_t>(), rows, n);
  });
  BR_KERNEL_CHECK("dropout");
}

}  // namespace br::cuda

#include <cmath>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

// Running (max, Σ exp(z − max)) pair merged with another; −inf max means "empty".
__device__ __forceinline__ void merge_max_sum(float& m, float& s, float m2, float s2) {
  const float mx = fmaxf(m, m2);
  if (mx == -INFINITY) return;
  s = (m == -INFINITY ? 0.0f : s * expf(m - mx)) + (m2 == -INFINITY ? 0.0f : s2 * expf(m2 - mx));
  m = mx;
}

// One warp per row: z = scale·s + mask[b]; online max/sum per lane, merged across the warp; then
// p = exp(z − max)/sum. All-−inf rows give zeros.
template <typename T>
__global__ void softmax_forward_kernel(T* probs, const T* scores, const float* mask, float scale,
                                       int64_t rows, int64_t rows_per_batch, int Sk) {
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const T* s = scores + r * Sk;
  const float* mk = mask ? mask + (r / rows_per_batch) * Sk : nullptr;
  float m = -INFINITY, sum = 0.0f;
  for (int k = lane; k < Sk; k += 32) {
    const float z = scale * to_f(s[k]) + (mk ? mk[k] : 0.0f);
    merge_max_sum(m, sum, z, 1.0f);
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float m2 = __shfl_xor_sync(kFullMask, m, o);
    const float s2 = __shfl_xor_sync(kFullMask, sum, o);
    merge_max_sum(m, sum, m2, s2);
  }
  T* p = probs + r * Sk;
  const float inv = m == -INFINITY ? 0.0f : 1.0f / sum;
  for (int k = lane; k < Sk; k += 32) {
    const float z = scale * to_f(s[k]) + (mk ? mk[k] : 0.0f);
    p[k] = from_f<T>(m == -INFINITY ? 0.0f : expf(z - m) * inv);
  }
}

// One warp per row: ds = scale·p·(dp − Σ_k dp·p)
template <typename T>
__global__ void softmax_backward_kernel(T* dscores, const T* dprobs, const T* probs, float scale,
                                        int64_t rows, int Sk) {
  const int64_t r = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const T* dp = dprobs + r * Sk;
  const T* p = probs + r * Sk;
  float dot = 0.0f;
  for (int k = lane; k < Sk; k += 32) dot += to_f(dp[k]) * to_f(p[k]);
  dot = warp_sum(dot);
  T* ds = dscores + r * Sk;
  for (int k = lane; k < Sk; k += 32) ds[k] = from_f<T>(scale * to_f(p[k]) * (to_f(dp[k]) - dot));
}

}  // namespace

void softmax_forward(const Tensor& probs, const Tensor& scores, const Tensor& mask, float scale,
                     int64_t rows_per_batch, int64_t Sk) {
  BR_CHECK(Sk <= (1 << 30), "softmax_forward: Sk={} too large", Sk);
  const int64_t rows = scores.numel() / Sk;
  dispatch_f32_bf16("softmax_forward", scores, [&](auto tag) {
    using T = decltype(tag);
    softmax_forward_kernel<T><<<row_blocks(rows), 32 * kRowsPerBlock, 0, stream()>>>(
        static_cast<T*>(probs.raw()), static_cast<const T*>(scores.raw()),
        ptr_or_null<const float>(mask), scale, rows, rows_per_batch, int(Sk));
  });
  BR_KERNEL_CHECK("softmax_forward");
}

void softmax_backward(const Tensor& dscores, const Tensor& dprobs, const Tensor& probs, float scale,
                      int64_t Sk) {
  BR_CHECK(Sk <= (1 << 30), "softmax_backward: Sk={} too large", Sk);
  const int64_t rows = probs.numel() / Sk;
  dispatch_f32_bf16("softmax_backward", probs, [&](auto tag) {
    using T = decltype(tag);
    softmax_backward_kernel<T><<<row_blocks(rows), 32 * kRowsPerBlock, 0, stream()>>>(
        static_cast<T*>(dscores.raw()), static_cast<const T*>(dprobs.raw()),
        static_cast<const T*>(probs.raw()), scale, rows, int(Sk));
  });
  BR_KERNEL_CHECK("softmax_backward");
}

}  // namespace br::cuda

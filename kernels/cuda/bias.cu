#include <algorithm>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

template <typename T>
__global__ void bias_add_forward_kernel(T* out, const T* inp, const T* bias, int64_t total,
                                        int64_t N) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f<T>(to_f(inp[i]) + to_f(bias[i % N]));
}

constexpr int kCols = 32;   // columns per block: one warp reads 32 consecutive elements of a row
constexpr int kLanes = 16;  // row lanes per block

// partial[r, n] = Σ over rows [r*rows_per_chunk, (r+1)*rows_per_chunk) ∩ [0, M) of dout[m, n].
// Grid (ceil(N/kCols), R), block (kCols, kLanes); fp32 sums, tree-reduced over the lanes.
template <typename T>
__global__ void column_sum_partial_kernel(float* partial, const T* dout, int64_t M, int64_t N,
                                          int64_t rows_per_chunk) {
  __shared__ float acc[kLanes][kCols + 1];
  const int64_t n = int64_t(blockIdx.x) * kCols + threadIdx.x;
  const int64_t m0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t m1 = m0 + rows_per_chunk < M ? m0 + rows_per_chunk : M;
  float s = 0.f;
  if (n < N)
    for (int64_t m = m0 + threadIdx.y; m < m1; m += kLanes) s += to_f(dout[m * N + n]);
  acc[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  for (int stride = kLanes / 2; stride > 0; stride /= 2) {
    if (threadIdx.y < stride)
      acc[threadIdx.y][threadIdx.x] += acc[threadIdx.y + stride][threadIdx.x];
    __syncthreads();
  }
  if (threadIdx.y == 0 && n < N) partial[int64_t(blockIdx.y) * N + n] = acc[0][threadIdx.x];
}

// dbias[n] += Σ_r partial[r, n], in a fixed order (deterministic).
template <typename G>
__global__ void column_sum_finish_kernel(G* dbias, const float* partial, int64_t R, int64_t N) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n >= N) return;
  float s = 0.f;
  for (int64_t r = 0; r < R; ++r) s += partial[r * N + n];
  dbias[n] = from_f<G>(to_f(dbias[n]) + s);
}

template <typename T, typename G>
void column_sum(G* dbias, const T* dout, int64_t M, int64_t N) {
  const int64_t R = std::clamp<int64_t>((M + 255) / 256, 1, 64);
  const int64_t rows_per_chunk = (M + R - 1) / R;
  Tensor partial = Tensor::empty({R, N}, DType::f32, Device::cuda, MemCategory::workspace);
  dim3 grid(unsigned((N + kCols - 1) / kCols), unsigned(R));
  column_sum_partial_kernel<<<grid, dim3(kCols, kLanes), 0, stream()>>>(partial.data<float>(), dout,
                                                                        M, N, rows_per_chunk);
  BR_KERNEL_CHECK("bias_add_backward (partial sums)");
  column_sum_finish_kernel<<<grid_1d(N), 256, 0, stream()>>>(dbias, partial.data<float>(), R, N);
  BR_KERNEL_CHECK("bias_add_backward (finish)");
}

}  // namespace

void bias_add_forward(const Tensor& out, const Tensor& inp, const Tensor& bias, int64_t M,
                      int64_t N) {
  const int64_t total = M * N;
  if (total == 0) return;
  dispatch_f32_bf16("bias_add_forward", out, [&](auto tag) {
    using T = decltype(tag);
    bias_add_forward_kernel<T><<<grid_stride_blocks(total), 256, 0, stream()>>>(
        static_cast<T*>(out.raw()), static_cast<const T*>(inp.raw()),
        static_cast<const T*>(bias.raw()), total, N);
  });
  BR_KERNEL_CHECK("bias_add_forward");
}

void bias_add_backward(const Tensor& dbias, const Tensor& dout, int64_t M, int64_t N) {
  if (N == 0 || M == 0) return;
  if (dout.dtype() == DType::f32 && dbias.dtype() == DType::f32)
    return column_sum(dbias.data<float>(), dout.data<float>(), M, N);
  if (dout.dtype() == DType::bf16 && dbias.dtype() == DType::f32)
    return column_sum(dbias.data<float>(), static_cast<const bf16*>(dout.raw()), M, N);
  if (dout.dtype() == DType::bf16 && dbias.dtype() == DType::bf16)
    return column_sum(static_cast<bf16*>(dbias.raw()), static_cast<const bf16*>(dout.raw()), M, N);
  fail(
      "bias_add_backward: CUDA supports f32 or bf16 dout with f32 or matching dbias, got dbias {}, "
      "dout {}",
      dbias.str(), dout.str());
}

}  // namespace br::cuda

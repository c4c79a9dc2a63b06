#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

struct NormTensor {
  const void* x;
  int64_t n;
  int64_t first_block;
  int bf16;
};

constexpr int kThreads = 256, kPerThread = 16, kChunk = kThreads * kPerThread;

__device__ __forceinline__ float element(const NormTensor& t, int64_t i) {
  return t.bf16 ? to_f(static_cast<const bf16*>(t.x)[i]) : static_cast<const float*>(t.x)[i];
}

// Tree sum over the block in double, fixed order; thread 0 gets the total.
__device__ double block_sum(double x) {
  __shared__ double s[kThreads];
  s[threadIdx.x] = x;
  __syncthreads();
  for (int h = kThreads / 2; h > 0; h >>= 1) {
    if (threadIdx.x < h) s[threadIdx.x] += s[threadIdx.x + h];
    __syncthreads();
  }
  return s[0];
}

// Stage 1: block b sums the squares of one chunk (fp32 per thread, double across the block).
__global__ void __launch_bounds__(kThreads)
    partial_squares_kernel(double* partial, const NormTensor* tensors, int count) {
  const int64_t block = blockIdx.x;
  const NormTensor t = tensors[owning_entry(tensors, count, block)];
  const int64_t begin = (block - t.first_block) * kChunk;
  const int64_t end = min(begin + kChunk, t.n);
  float acc = 0.0f;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    const float x = element(t, i);
    acc += x * x;
  }
  const double total = block_sum(double(acc));
  if (threadIdx.x == 0) partial[block] = total;
}

// Stage 2: one block adds the partials in a fixed order.
__global__ void __launch_bounds__(kThreads) sum_partials_kernel(double* out, const double* partial,
                                                               int64_t n) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) acc += partial[i];
  const double total = block_sum(acc);
  if (threadIdx.x == 0) *out = total;
}

template <typename T>
__global__ void scale_kernel(T* x, float f, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    x[i] = from_f<T>(to_f(x[i]) * f);
}

}  // namespace

double sum_squares(const std::vector<Tensor>& grads) {
  std::vector<NormTensor> table;
  int64_t blocks = 0;
  for (const Tensor& g : grads) {
    if (g.numel() == 0) continue;
    table.push_back(NormTensor{g.raw(), g.numel(), blocks, g.dtype() == DType::bf16 ? 1 : 0});
    blocks += (g.numel() + kChunk - 1) / kChunk;
  }
  if (table.empty()) return 0.0;
  BR_CHECK(blocks <= int64_t(INT32_MAX), "global_grad_norm: {} blocks exceed the grid limit", blocks);
  const Tensor dev = device_table(table);
  Tensor partial = Tensor::empty({blocks + 1}, DType::f64, Device::cuda, MemCategory::workspace);
  double* p = partial.data<double>();
  partial_squares_kernel<<<unsigned(blocks), kThreads, 0, stream()>>>(
      p, static_cast<const NormTensor*>(dev.raw()), int(table.size()));
  BR_KERNEL_CHECK("global_grad_norm partials");
  sum_partials_kernel<<<1, kThreads, 0, stream()>>>(p + blocks, p, blocks);
  BR_KERNEL_CHECK("global_grad_norm sum");
  double total = 0.0;
  partial.rows(blocks, blocks + 1).copy_to_host(&total, sizeof(double));
  BR_CUDA_CHECK(cudaStreamSynchronize(stream()));
  return total;
}

void scale_(const Tensor& t, float factor) {
  const int64_t n = t.numel();
  dispatch_f32_bf16("scale_", t, [&](auto tag) {
    using T = decltype(tag);
    scale_kernel<T><<<grid_stride_blocks(n), 256, 0, stream()>>>(static_cast<T*>(t.raw()), factor,
                                                                 n);
  });
  BR_KERNEL_CHECK("scale_");
}

}  // namespace br::cuda

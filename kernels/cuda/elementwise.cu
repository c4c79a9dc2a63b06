#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

template <typename T>
__global__ void add_kernel(T* o, const T* a, const T* b, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    o[i] = from_f<T>(to_f(a[i]) + to_f(b[i]));
}

template <typename T>
__global__ void axpy_kernel(T* o, float alpha, const T* x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    o[i] = from_f<T>(to_f(o[i]) + alpha * to_f(x[i]));
}

}  // namespace

void add(const Tensor& out, const Tensor& a, const Tensor& b) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_f32_bf16("add", out, [&](auto tag) {
    using T = decltype(tag);
    add_kernel<T><<<grid_stride_blocks(n), 256, 0, stream()>>>(
        static_cast<T*>(out.raw()), static_cast<const T*>(a.raw()), static_cast<const T*>(b.raw()),
        n);
  });
  BR_KERNEL_CHECK("add");
}

void axpy(const Tensor& out, float alpha, const Tensor& x) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_f32_bf16("axpy", out, [&](auto tag) {
    using T = decltype(tag);
    axpy_kernel<T><<<grid_stride_blocks(n), 256, 0, stream()>>>(
        static_cast<T*>(out.raw()), alpha, static_cast<const T*>(x.raw()), n);
  });
  BR_KERNEL_CHECK("axpy");
}

}  // namespace br::cuda

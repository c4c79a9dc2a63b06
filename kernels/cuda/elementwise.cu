#include <cuda_bf16.h>

#include "core/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace br::cuda {

namespace {

template <typename T>
__device__ __forceinline__ float to_f(T x) { return float(x); }
template <>
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T from_f(float x) { return T(x); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f(float x) { return __float2bfloat16_rn(x); }

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

unsigned grid_for(int64_t n) {
  unsigned g = grid_1d(n);
  return g > 65535u * 8 ? 65535u * 8 : g;
}

}  // namespace

void add(const Tensor& out, const Tensor& a, const Tensor& b) {
  int64_t n = out.numel();
  if (n == 0) return;
  switch (out.dtype()) {
    case DType::f32:
      add_kernel<<<grid_for(n), 256, 0, stream()>>>(out.data<float>(), a.data<float>(),
                                                    b.data<float>(), n);
      break;
    case DType::bf16:
      add_kernel<<<grid_for(n), 256, 0, stream()>>>(static_cast<__nv_bfloat16*>(out.raw()),
                                                    static_cast<const __nv_bfloat16*>(a.raw()),
                                                    static_cast<const __nv_bfloat16*>(b.raw()), n);
      break;
    default: fail("add: CUDA supports f32 and bf16, got {}", out.str());
  }
  BR_KERNEL_CHECK("add");
}

void axpy(const Tensor& out, float alpha, const Tensor& x) {
  int64_t n = out.numel();
  if (n == 0) return;
  switch (out.dtype()) {
    case DType::f32:
      axpy_kernel<<<grid_for(n), 256, 0, stream()>>>(out.data<float>(), alpha, x.data<float>(), n);
      break;
    case DType::bf16:
      axpy_kernel<<<grid_for(n), 256, 0, stream()>>>(static_cast<__nv_bfloat16*>(out.raw()), alpha,
                                                     static_cast<const __nv_bfloat16*>(x.raw()), n);
      break;
    default: fail("axpy: CUDA supports f32 and bf16, got {}", out.str());
  }
  BR_KERNEL_CHECK("axpy");
}

}  // namespace br::cuda

#include <cuda_bf16.h>

#include <algorithm>

#include "core/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace br::cuda {

namespace {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16 from_f<bf16>(float x) {
  return __float2bfloat16_rn(x);
}

template <typename T>
__global__ void tanh_forward_kernel(T* out, const T* inp, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = from_f<T>(tanhf(to_f(inp[i])));
}

// The derivative uses the stored (rounded) output, as the CPU reference does.
template <typename T>
__global__ void tanh_backward_kernel(T* dinp, const T* dout, const T* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float y = to_f(out[i]);
    dinp[i] = from_f<T>(to_f(dout[i]) * (1.f - y * y));
  }
}

unsigned grid_for(int64_t n) { return std::min(grid_1d(n), 65535u * 8); }

}  // namespace

void tanh_forward(const Tensor& out, const Tensor& inp) {
  const int64_t n = out.numel();
  if (n == 0) return;
  switch (out.dtype()) {
    case DType::f32:
      tanh_forward_kernel<<<grid_for(n), 256, 0, stream()>>>(out.data<float>(), inp.data<float>(),
                                                             n);
      break;
    case DType::bf16:
      tanh_forward_kernel<<<grid_for(n), 256, 0, stream()>>>(
          static_cast<bf16*>(out.raw()), static_cast<const bf16*>(inp.raw()), n);
      break;
    default:
      fail("tanh_forward: CUDA supports f32 and bf16, got {}", out.str());
  }
  BR_KERNEL_CHECK("tanh_forward");
}

void tanh_backward(const Tensor& dinp, const Tensor& dout, const Tensor& out) {
  const int64_t n = dinp.numel();
  if (n == 0) return;
  switch (dinp.dtype()) {
    case DType::f32:
      tanh_backward_kernel<<<grid_for(n), 256, 0, stream()>>>(
          dinp.data<float>(), dout.data<float>(), out.data<float>(), n);
      break;
    case DType::bf16:
      tanh_backward_kernel<<<grid_for(n), 256, 0, stream()>>>(
          static_cast<bf16*>(dinp.raw()), static_cast<const bf16*>(dout.raw()),
          static_cast<const bf16*>(out.raw()), n);
      break;
    default:
      fail("tanh_backward: CUDA supports f32 and bf16, got {}", dinp.str());
  }
  BR_KERNEL_CHECK("tanh_backward");
}

}  // namespace br::cuda

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

// out = 0.5·x·(1 + erf(x/√2)), fp32 math
template <typename T>
__global__ void gelu_forward_kernel(T* out, const T* inp, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float x = to_f(inp[i]);
    out[i] = from_f<T>(0.5f * x * (1.0f + erff(x * 0.70710678118654752f)));
  }
}

// dinp = dout·(Φ(x) + x·φ(x))
template <typename T>
__global__ void gelu_backward_kernel(T* dinp, const T* dout, const T* inp, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float x = to_f(inp[i]);
    const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    const float pdf = 0.39894228040143267f * expf(-0.5f * x * x);
    dinp[i] = from_f<T>(to_f(dout[i]) * (cdf + x * pdf));
  }
}

}  // namespace

void gelu_forward(const Tensor& out, const Tensor& inp) {
  const int64_t n = inp.numel();
  if (n == 0) return;
  dispatch_f32_bf16("gelu_forward", inp, [&](auto tag) {
    using T = decltype(tag);
    gelu_forward_kernel<T><<<grid_stride_blocks(n), 256, 0, stream()>>>(
        static_cast<T*>(out.raw()), static_cast<const T*>(inp.raw()), n);
  });
  BR_KERNEL_CHECK("gelu_forward");
}

void gelu_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  const int64_t n = inp.numel();
  if (n == 0) return;
  dispatch_f32_bf16("gelu_backward", inp, [&](auto tag) {
    using T = decltype(tag);
    gelu_backward_kernel<T><<<grid_stride_blocks(n), 256, 0, stream()>>>(
        static_cast<T*>(dinp.raw()), static_cast<const T*>(dout.raw()),
        static_cast<const T*>(inp.raw()), n);
  });
  BR_KERNEL_CHECK("gelu_backward");
}

}  // namespace br::cuda

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

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

}  // namespace

void tanh_forward(const Tensor& out, const Tensor& inp) {
  const int64_t n = out.numel();
  if (n == 0) return;
  dispatch_f32_bf16("tanh_forward", out, [&](auto tag) {
    using T = decltype(tag);
    tanh_forward_kernel<T><<<grid_stride_blocks(n), 256, 0, stream()>>>(
        static_cast<T*>(out.raw()), static_cast<const T*>(inp.raw()), n);
  });
  BR_KERNEL_CHECK("tanh_forward");
}

void tanh_backward(const Tensor& dinp, const Tensor& dout, const Tensor& out) {
  const int64_t n = dinp.numel();
  if (n == 0) return;
  dispatch_f32_bf16("tanh_backward", dinp, [&](auto tag) {
    using T = decltype(tag);
    tanh_backward_kernel<T><<<grid_stride_blocks(n), 256, 0, stream()>>>(
        static_cast<T*>(dinp.raw()), static_cast<const T*>(dout.raw()),
        static_cast<const T*>(out.raw()), n);
  });
  BR_KERNEL_CHECK("tanh_backward");
}

}  // namespace br::cuda

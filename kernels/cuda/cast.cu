#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

__device__ __forceinline__ double load(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f64: return static_cast<const double*>(p)[i];
    case DType::f16: return to_f(static_cast<const f16*>(p)[i]);
    case DType::bf16: return to_f(static_cast<const bf16*>(p)[i]);
    case DType::i32: return static_cast<const int32_t*>(p)[i];
    case DType::i64: return double(static_cast<const int64_t*>(p)[i]);
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}

__device__ __forceinline__ void store(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = float(v); break;
    case DType::f64: static_cast<double*>(p)[i] = v; break;
    case DType::f16: static_cast<f16*>(p)[i] = from_f<f16>(float(v)); break;
    case DType::bf16: static_cast<bf16*>(p)[i] = from_f<bf16>(float(v)); break;
    default: break;
  }
}

__global__ void cast_kernel(void* out, DType to, const void* in, DType from, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    store(out, to, i, load(in, from, i));
}

__global__ void fill_kernel(void* out, DType to, double value, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    store(out, to, i, value);
}

}  // namespace

void cast(const Tensor& out, const Tensor& in) {
  if (in.numel() == 0) return;
  cast_kernel<<<grid_stride_blocks(in.numel()), 256, 0, stream()>>>(
      out.raw(), out.dtype(), in.raw(), in.dtype(), in.numel());
  BR_KERNEL_CHECK("cast");
}

void fill(const Tensor& out, double value) {
  if (out.numel() == 0) return;
  fill_kernel<<<grid_stride_blocks(out.numel()), 256, 0, stream()>>>(out.raw(), out.dtype(),
                                                                     value, out.numel());
  BR_KERNEL_CHECK("fill");
}

}  // namespace br::cuda

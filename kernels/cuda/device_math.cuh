// Device helpers shared by the pointwise/row kernels: fp32 load/store of f32 and bf16 elements,
// warp reductions, dtype dispatch for launchers. Include only from .cu files.
#pragma once
#include <cuda_bf16.h>

#include "core/cuda_check.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace br::cuda {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Blocks for a grid-stride loop over n elements (capped; the loop covers the rest).
inline unsigned grid_stride_blocks(int64_t n, int block = 256) {
  const unsigned g = grid_1d(n, block);
  return g > 65535u * 8 ? 65535u * 8 : g;
}

// Calls f(T{}) with T = float or bf16 for the activation dtype `t`; other dtypes throw.
template <typename F>
void dispatch_f32_bf16(const char* op, DType t, F&& f) {
  switch (t) {
    case DType::f32: f(float{}); break;
    case DType::bf16: f(bf16{}); break;
    default: fail("{}: CUDA supports f32 and bf16, got {}", op, dtype_name(t));
  }
}

// Calls f(E{}) with E = uint16_t, uint32_t or uint64_t, the raw element of `t`'s size, for kernels
// that move or zero bits whatever the dtype; other sizes throw.
template <typename F>
void dispatch_bits(const char* op, const Tensor& t, F&& f) {
  switch (dtype_size(t.dtype())) {
    case 2: f(uint16_t{}); break;
    case 4: f(uint32_t{}); break;
    case 8: f(uint64_t{}); break;
    default: fail("{}: CUDA moves 2-, 4- or 8-byte elements, got {}", op, t.str());
  }
}

}  // namespace br::cuda

// The one toolkit of the CUDA kernels: fp32 load/store of f32, f16 and bf16 elements, warp and
// block reductions, the grid cap of grid-stride loops, multi-tensor block tables, cuBLAS types, and
// the dtype and flag dispatch of launchers. Include only from .cu files.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <type_traits>
#include <vector>

#include "core/cuda_check.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace br::cuda {

using bf16 = __nv_bfloat16;
using f16 = __half;

constexpr unsigned kFullMask = 0xffffffffu;  // every lane of a warp

// ---- elements: math in fp32, storage f32, f16 or bf16; stores round to nearest even ----

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(f16 x) { return __half2float(x); }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) { return x; }
template <>
__device__ __forceinline__ f16 from_f<f16>(float x) { return __float2half_rn(x); }
template <>
__device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16_rn(x); }

// x as an Out element: through fp32, or its bits unchanged when the types match.
template <typename Out, typename In>
__device__ __forceinline__ Out convert(In x) {
  if constexpr (std::is_same_v<In, Out>) {
    return x;
  } else {
    return from_f<Out>(to_f(x));
  }
}

// ---- reductions ----

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

// Max (kMax) or sum over the block (blockDim.x a multiple of 32, at most 1024) through 32 floats
// of shared scratch; every thread gets the result.
template <bool kMax>
__device__ float block_reduce(float x, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  x = kMax ? warp_max(x) : warp_sum(x);
  __syncthreads();  // scratch may still be read by a previous reduction
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = lane < warps ? scratch[lane] : (kMax ? -INFINITY : 0.0f);
  return kMax ? warp_max(x) : warp_sum(x);
}

// ---- device-side input errors ----

// err = {flag, value, position} in device memory, zeroed before the kernel: the first thread to
// find a bad input (whichever wins the CAS) records it; the launcher reads err back and throws.
__device__ __forceinline__ void report_bad_input(int32_t* err, int32_t value, int64_t position) {
  if (atomicCAS(err, 0, 1) == 0) {
    err[1] = value;
    err[2] = int32_t(position);
  }
}

// ---- launch shapes ----

// Blocks for a grid-stride loop over n elements (capped; the loop covers the rest).
inline unsigned grid_stride_blocks(int64_t n, int block = 256) {
  const unsigned g = grid_1d(n, block);
  return g > 65535u * 8 ? 65535u * 8 : g;
}

// Row kernels run one warp per row, kRowsPerBlock rows per 256-thread block.
constexpr int kRowsPerBlock = 8;
inline unsigned row_blocks(int64_t rows) {
  return unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock);
}

// Multi-tensor launches: entry t of a table sorted by first_block owns the blocks
// [table[t].first_block, table[t + 1].first_block). The entry owning `block`, by binary search.
template <typename Entry>
__device__ __forceinline__ int owning_entry(const Entry* table, int count, int64_t block) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (table[mid].first_block <= block) lo = mid; else hi = mid - 1;
  }
  return lo;
}

// A host table copied into a device workspace tensor (its bytes), for a multi-tensor kernel.
template <typename Entry>
Tensor device_table(const std::vector<Entry>& table) {
  const size_t bytes = table.size() * sizeof(Entry);
  Tensor dev = Tensor::empty({int64_t(bytes)}, DType::u8, Device::cuda, MemCategory::workspace);
  dev.copy_from_host(table.data(), bytes);
  return dev;
}

// The element pointer of an optional tensor; null when it is undefined.
template <typename T>
T* ptr_or_null(const Tensor& t) { return t.defined() ? static_cast<T*>(t.raw()) : nullptr; }

// ---- cuBLAS ----

// The cuBLAS element type of an f32 or bf16 tensor; other dtypes throw.
inline cudaDataType_t cublas_type(const char* op, const Tensor& t) {
  switch (t.dtype()) {
    case DType::f32: return CUDA_R_32F;
    case DType::bf16: return CUDA_R_16BF;
    default: fail("{}: no cuBLAS type for {}", op, t.str());
  }
}

// Products accumulate in fp32; f32 operands go through TF32 tensor cores when tf32 is set.
inline cublasComputeType_t cublas_compute(const Tensor& a, bool tf32) {
  return tf32 && a.dtype() == DType::f32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

// ---- dispatch: a runtime dtype or flag made a template argument, once per launch ----

// Calls f(T{}) with T = float or bf16 for the activation tensor `t`; other dtypes throw.
template <typename F>
void dispatch_f32_bf16(const char* op, const Tensor& t, F&& f) {
  switch (t.dtype()) {
    case DType::f32: f(float{}); break;
    case DType::bf16: f(bf16{}); break;
    default: fail("{}: CUDA supports f32 and bf16, got {}", op, t.str());
  }
}

// Calls f(T{}) with T = float, f16 or bf16 for the floating tensor `t`; other dtypes throw.
template <typename F>
void dispatch_f32_f16_bf16(const char* op, const Tensor& t, F&& f) {
  switch (t.dtype()) {
    case DType::f32: f(float{}); break;
    case DType::f16: f(f16{}); break;
    case DType::bf16: f(bf16{}); break;
    default: fail("{}: CUDA supports f32, f16 and bf16, got {}", op, t.str());
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

// Calls f(std::true_type{}) or f(std::false_type{}), so a kernel template tests `flag` at compile
// time (decltype(tag)::value) instead of in its inner loops.
template <typename F>
void dispatch_flag(bool flag, F&& f) {
  if (flag) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

}  // namespace br::cuda

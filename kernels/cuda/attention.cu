#include <cuda_bf16.h>

#include <cmath>
#include <type_traits>

#include "core/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"

namespace br::cuda {

namespace {

constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ void store(float* p, int64_t i, float x) { p[i] = x; }
__device__ __forceinline__ void store(__nv_bfloat16* p, int64_t i, float x) {
  p[i] = __float2bfloat16_rn(x);
}

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(kFull, x, o);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(kFull, x, o));
  return x;
}

// Reduction over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
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

// Dropout on attention probabilities, as kernels/dropout.h: sample b draws with example ids[b],
// element e = n·S·S + i·S + j; z = keep ? 1/(1−p) : 0.
struct Drop {
  float p;
  float zscale;
  DropoutKey key;
  const int32_t* ids;

  __device__ __forceinline__ float z(int b, uint32_t e) const {
    return dropout_uniform(key, uint32_t(ids[b]), e) >= p ? zscale : 0.0f;
  }
};

Drop make_drop(float p, const DropoutKey& key, const Tensor& ids) {
  return Drop{p, p < 1.0f ? 1.0f / (1.0f - p) : 0.0f, key,
              p > 0.0f ? ids.data<int32_t>() : nullptr};
}

const float* mask_ptr(const Tensor& mask) { return mask.defined() ? mask.data<float>() : nullptr; }

template <typename T>
cudaDataType cuda_type();
template <>
cudaDataType cuda_type<float>() { return CUDA_R_32F; }
template <>
cudaDataType cuda_type<__nv_bfloat16>() { return CUDA_R_16BF; }

// Column-major strided-batched GEMM C = alpha·op(A)·op(B) + beta·C with fp32 accumulation.
// A and B share dtype `ab`; C has dtype `c`. Row-major X [r, c] is column-major Xᵀ, which is how
// the callers below express their products.
void gemm_batched(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
                  const void* A, int lda, long long sa, const void* B, int ldb, long long sb,
                  cudaDataType ab, void* C, int ldc, long long sc, cudaDataType c, int batch) {
  const float beta = 0.0f;
  BR_CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas(), ta, tb, m, n, k, &alpha, A, ab, lda, sa, B,
                                             ab, ldb, sb, &beta, C, c, ldc, sc, batch,
                                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// One block per score row (b, n, i): P = softmax(scores + mask[b]) written to probs; when
// dropout is on, pd = dropout(P). scores (f32) may alias probs when T is float: each thread reads
// and writes only its own columns.
template <typename T>
__global__ void softmax_forward_kernel(T* probs, T* pd, const float* scores, const float* mask,
                                       int N, int S, Drop drop) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const int i = int(row % S), n = int((row / S) % N), b = int(row / (int64_t(S) * N));
  const float* x = scores + row * S;
  const float* mk = mask ? mask + int64_t(b) * S : nullptr;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < S; j += blockDim.x) mx = fmaxf(mx, x[j] + (mk ? mk[j] : 0.0f));
  mx = block_reduce<true>(mx, scratch);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < S; j += blockDim.x) sum += expf(x[j] + (mk ? mk[j] : 0.0f) - mx);
  sum = block_reduce<false>(sum, scratch);
  const float inv = 1.0f / sum;
  const uint32_t e0 = uint32_t(n) * uint32_t(S) * uint32_t(S) + uint32_t(i) * uint32_t(S);
  for (int j = threadIdx.x; j < S; j += blockDim.x) {
    const float p = expf(x[j] + (mk ? mk[j] : 0.0f) - mx) * inv;
    store(probs, row * S + j, p);
    if (drop.p > 0.0f) store(pd, row * S + j, p * drop.z(b, e0 + uint32_t(j)));
  }
}

// pd = dropout(probs) over [B·N, S, S].
template <typename T>
__global__ void dropout_probs_kernel(T* pd, const T* probs, int N, int S, int64_t total, Drop drop) {
  const int64_t SS = int64_t(S) * S;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t bn = t / SS;
    const int b = int(bn / N), n = int(bn % N);
    const uint32_t e = uint32_t(n) * uint32_t(SS) + uint32_t(t % SS);
    store(pd, t, load(probs, t) * drop.z(b, e));
  }
}

// One block per row (b, n, i): dP = z ⊙ dPd; dS = P ⊙ (dP − Σ_j dP·P). dS may alias dPd when T is
// float (same-column reads before writes, separated by the reduction's barriers).
template <typename T>
__global__ void softmax_backward_kernel(T* ds, const float* dpd, const T* probs, int N, int S,
                                        Drop drop) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const int i = int(row % S), n = int((row / S) % N), b = int(row / (int64_t(S) * N));
  const uint32_t e0 = uint32_t(n) * uint32_t(S) * uint32_t(S) + uint32_t(i) * uint32_t(S);
  const float* g = dpd + row * S;
  float r = 0.0f;
  for (int j = threadIdx.x; j < S; j += blockDim.x) {
    const float dp = drop.p > 0.0f ? g[j] * drop.z(b, e0 + uint32_t(j)) : g[j];
    r += dp * load(probs, row * S + j);
  }
  r = block_reduce<false>(r, scratch);
  for (int j = threadIdx.x; j < S; j += blockDim.x) {
    const float dp = drop.p > 0.0f ? g[j] * drop.z(b, e0 + uint32_t(j)) : g[j];
    store(ds, row * S + j, load(probs, row * S + j) * (dp - r));
  }
}

int softmax_threads(int S) { return S >= 512 ? 256 : S >= 128 ? 128 : 32; }

template <typename T>
void forward_typed(const Tensor& out, const Tensor& probs, const Tensor& q, const Tensor& k,
                   const Tensor& v, const Tensor& mask, float scale, const Drop& drop) {
  const int B = int(q.size(0)), N = int(q.size(1)), S = int(q.size(2)), D = int(q.size(3));
  const int BN = B * N;
  const long long SD = (long long)S * D, SS = (long long)S * S;
  Tensor scores = std::is_same_v<T, float>
                      ? probs
                      : Tensor::empty(probs.shape(), DType::f32, Device::cuda, MemCategory::workspace);
  Tensor pd = drop.p > 0.0f ? Tensor::empty(probs.shape(), probs.dtype(), Device::cuda,
                                            MemCategory::workspace)
                            : probs;
  const cudaDataType t = cuda_type<T>();
  // scoresᵀ = K·Qᵀ per (b, n), column-major [S, S]
  gemm_batched(CUBLAS_OP_T, CUBLAS_OP_N, S, S, D, scale, k.raw(), D, SD, q.raw(), D, SD, t,
               scores.raw(), S, SS, CUDA_R_32F, BN);
  softmax_forward_kernel<T><<<unsigned(int64_t(BN) * S), softmax_threads(S), 0, stream()>>>(
      static_cast<T*>(probs.raw()), static_cast<T*>(pd.raw()), scores.data<float>(),
      mask_ptr(mask), N, S, drop);
  BR_KERNEL_CHECK("attention_forward softmax");
  // outᵀ = Vᵀ·Pdᵀ
  gemm_batched(CUBLAS_OP_N, CUBLAS_OP_N, D, S, S, 1.0f, v.raw(), D, SD, pd.raw(), S, SS, t,
               out.raw(), D, SD, t, BN);
}

template <typename T>
void backward_typed(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                    const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                    float scale, const Drop& drop) {
  const int B = int(q.size(0)), N = int(q.size(1)), S = int(q.size(2)), D = int(q.size(3));
  const int BN = B * N;
  const long long SD = (long long)S * D, SS = (long long)S * S;
  const cudaDataType t = cuda_type<T>();
  Tensor pd = probs;
  if (drop.p > 0.0f) {
    pd = Tensor::empty(probs.shape(), probs.dtype(), Device::cuda, MemCategory::workspace);
    const int64_t total = int64_t(BN) * SS;
    unsigned grid = grid_1d(total);
    if (grid > 65535u * 8) grid = 65535u * 8;
    dropout_probs_kernel<T><<<grid, 256, 0, stream()>>>(static_cast<T*>(pd.raw()),
                                                        static_cast<const T*>(probs.raw()), N, S,
                                                        total, drop);
    BR_KERNEL_CHECK("attention_backward dropout");
  }
  // dvᵀ = dOᵀ·Pd
  gemm_batched(CUBLAS_OP_N, CUBLAS_OP_T, D, S, S, 1.0f, dout.raw(), D, SD, pd.raw(), S, SS, t,
               dv.raw(), D, SD, t, BN);
  // dPdᵀ = V·dOᵀ, column-major [S, S]
  Tensor dpd = Tensor::empty(probs.shape(), DType::f32, Device::cuda, MemCategory::workspace);
  gemm_batched(CUBLAS_OP_T, CUBLAS_OP_N, S, S, D, 1.0f, v.raw(), D, SD, dout.raw(), D, SD, t,
               dpd.raw(), S, SS, CUDA_R_32F, BN);
  Tensor ds = std::is_same_v<T, float>
                  ? dpd
                  : Tensor::empty(probs.shape(), probs.dtype(), Device::cuda, MemCategory::workspace);
  softmax_backward_kernel<T><<<unsigned(int64_t(BN) * S), softmax_threads(S), 0, stream()>>>(
      static_cast<T*>(ds.raw()), dpd.data<float>(), static_cast<const T*>(probs.raw()), N, S, drop);
  BR_KERNEL_CHECK("attention_backward softmax");
  // dqᵀ = scale·Kᵀ·dSᵀ;  dkᵀ = scale·Qᵀ·dS
  gemm_batched(CUBLAS_OP_N, CUBLAS_OP_N, D, S, S, scale, k.raw(), D, SD, ds.raw(), S, SS, t,
               dq.raw(), D, SD, t, BN);
  gemm_batched(CUBLAS_OP_N, CUBLAS_OP_T, D, S, S, scale, q.raw(), D, SD, ds.raw(), S, SS, t,
               dk.raw(), D, SD, t, BN);
}

// ---- fused (flash-style) attention, head dim 64 ----
// Forward: one block of 4 warps per (query tile of 32 rows, b·N + n); each warp owns 8 query rows
// and keeps their running max m, sum l and output accumulator (lanes own dims lane, lane + 32).
// Key/value tiles of 32 rows go through shared memory; within a tile lane j scores key j.
constexpr int kD = 64, kTile = 32, kWarps = 4, kRowsPerWarp = kTile / kWarps, kThreads = 32 * kWarps;

template <typename T>
__device__ __forceinline__ void load_tile(float (*dst)[kD + 1], const T* src, int64_t base,
                                          int row0, int S) {
  for (int t = threadIdx.x; t < kTile * kD; t += blockDim.x) {
    const int r = t / kD, d = t % kD;
    dst[r][d] = row0 + r < S ? load(src, base + int64_t(row0 + r) * kD + d) : 0.0f;
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    flash_forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v,
                         const float* mask, int N, int S, float scale, Drop drop) {
  __shared__ float qs[kTile][kD + 1], ks[kTile][kD + 1], vs[kTile][kD + 1];
  const int bn = blockIdx.y, b = bn / N, n = bn % N;
  const int q0 = blockIdx.x * kTile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t base = int64_t(bn) * S * kD;
  load_tile(qs, q, base, q0, S);
  float m[kRowsPerWarp], l[kRowsPerWarp], acc0[kRowsPerWarp], acc1[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) m[r] = -INFINITY, l[r] = 0.0f, acc0[r] = acc1[r] = 0.0f;
  const uint32_t nSS = uint32_t(n) * uint32_t(S) * uint32_t(S);
  for (int k0 = 0; k0 < S; k0 += kTile) {
    __syncthreads();
    load_tile(ks, k, base, k0, S);
    load_tile(vs, v, base, k0, S);
    __syncthreads();
    const int j = k0 + lane;
    const bool valid = j < S;
    const float mj = valid && mask ? mask[int64_t(b) * S + j] : 0.0f;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = warp * kRowsPerWarp + r, i = q0 + row;
      float s = 0.0f;
#pragma unroll 16
      for (int d = 0; d < kD; ++d) s += qs[row][d] * ks[lane][d];
      s = valid ? s * scale + mj : -INFINITY;
      const float m_new = fmaxf(m[r], warp_max(s));  // finite: lane 0 always holds a key
      const float e = valid ? expf(s - m_new) : 0.0f;
      const float corr = expf(m[r] - m_new);
      l[r] = l[r] * corr + warp_sum(e);
      m[r] = m_new;
      const float w = drop.p > 0.0f && valid && i < S ? e * drop.z(b, nSS + uint32_t(i) * uint32_t(S) + uint32_t(j)) : e;
      float a0 = acc0[r] * corr, a1 = acc1[r] * corr;
#pragma unroll 8
      for (int jj = 0; jj < kTile; ++jj) {
        const float wj = __shfl_sync(kFull, w, jj);
        a0 += wj * vs[jj][lane];
        a1 += wj * vs[jj][lane + 32];
      }
      acc0[r] = a0, acc1[r] = a1;
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int i = q0 + warp * kRowsPerWarp + r;
    if (i >= S) continue;
    const float inv = 1.0f / l[r];
    store(out, base + int64_t(i) * kD + lane, acc0[r] * inv);
    store(out, base + int64_t(i) * kD + lane + 32, acc1[r] * inv);
    if (lane == 0) lse[int64_t(bn) * S + i] = m[r] + logf(l[r]);
  }
}

// Dr[row] = dout[row]·out[row] (= Σ_j dP_ij·P_ij), one warp per row.
template <typename T>
__global__ void flash_rowdot_kernel(float* dr, const T* dout, const T* out, int64_t rows) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const float s = load(dout, row * kD + lane) * load(out, row * kD + lane) +
                  load(dout, row * kD + lane + 32) * load(out, row * kD + lane + 32);
  const float t = warp_sum(s);
  if (lane == 0) dr[row] = t;
}

// dq: the forward's layout (block per query tile, warp per 8 rows, lane per key of the tile):
// p = exp(s − lse_i), dS = p·(z·dout_i·v_j − Dr_i), dq_i = scale·Σ_j dS_ij·k_j.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    flash_backward_dq_kernel(T* dq, const T* dout, const T* q, const T* k, const T* v,
                             const float* lse, const float* dr, const float* mask, int N, int S,
                             float scale, Drop drop) {
  __shared__ float qs[kTile][kD + 1], gs[kTile][kD + 1], ks[kTile][kD + 1], vs[kTile][kD + 1];
  const int bn = blockIdx.y, b = bn / N, n = bn % N;
  const int q0 = blockIdx.x * kTile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t base = int64_t(bn) * S * kD;
  load_tile(qs, q, base, q0, S);
  load_tile(gs, dout, base, q0, S);
  float li[kRowsPerWarp], di[kRowsPerWarp], acc0[kRowsPerWarp], acc1[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int i = q0 + warp * kRowsPerWarp + r;
    li[r] = i < S ? lse[int64_t(bn) * S + i] : 0.0f;
    di[r] = i < S ? dr[int64_t(bn) * S + i] : 0.0f;
    acc0[r] = acc1[r] = 0.0f;
  }
  const uint32_t nSS = uint32_t(n) * uint32_t(S) * uint32_t(S);
  for (int k0 = 0; k0 < S; k0 += kTile) {
    __syncthreads();
    load_tile(ks, k, base, k0, S);
    load_tile(vs, v, base, k0, S);
    __syncthreads();
    const int j = k0 + lane;
    const float mj = j < S && mask ? mask[int64_t(b) * S + j] : 0.0f;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = warp * kRowsPerWarp + r, i = q0 + row;
      const bool valid = j < S && i < S;
      float s = 0.0f, g = 0.0f;
#pragma unroll 16
      for (int d = 0; d < kD; ++d) {
        s += qs[row][d] * ks[lane][d];
        g += gs[row][d] * vs[lane][d];
      }
      const float p = valid ? expf(s * scale + mj - li[r]) : 0.0f;
      const float z = drop.p > 0.0f && valid ? drop.z(b, nSS + uint32_t(i) * uint32_t(S) + uint32_t(j)) : 1.0f;
      const float ds = p * (z * g - di[r]) * scale;
      float a0 = acc0[r], a1 = acc1[r];
#pragma unroll 8
      for (int jj = 0; jj < kTile; ++jj) {
        const float dj = __shfl_sync(kFull, ds, jj);
        a0 += dj * ks[jj][lane];
        a1 += dj * ks[jj][lane + 32];
      }
      acc0[r] = a0, acc1[r] = a1;
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int i = q0 + warp * kRowsPerWarp + r;
    if (i >= S) continue;
    store(dq, base + int64_t(i) * kD + lane, acc0[r]);
    store(dq, base + int64_t(i) * kD + lane + 32, acc1[r]);
  }
}

// dk, dv: one block per key tile, warp per 8 keys, lane per query of a query tile:
// dv_j = Σ_i z·p·dout_i; dk_j = scale·Σ_i dS_ij·q_i. No atomics: each block owns its keys.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    flash_backward_dkv_kernel(T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                              const float* lse, const float* dr, const float* mask, int N, int S,
                              float scale, Drop drop) {
  __shared__ float ks[kTile][kD + 1], vs[kTile][kD + 1], qs[kTile][kD + 1], gs[kTile][kD + 1];
  __shared__ float ls[kTile], drs[kTile];
  const int bn = blockIdx.y, b = bn / N, n = bn % N;
  const int k0 = blockIdx.x * kTile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t base = int64_t(bn) * S * kD;
  load_tile(ks, k, base, k0, S);
  load_tile(vs, v, base, k0, S);
  float mj[kRowsPerWarp], dk0[kRowsPerWarp], dk1[kRowsPerWarp], dv0[kRowsPerWarp], dv1[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int j = k0 + warp * kRowsPerWarp + r;
    mj[r] = j < S && mask ? mask[int64_t(b) * S + j] : 0.0f;
    dk0[r] = dk1[r] = dv0[r] = dv1[r] = 0.0f;
  }
  const uint32_t nSS = uint32_t(n) * uint32_t(S) * uint32_t(S);
  for (int i0 = 0; i0 < S; i0 += kTile) {
    __syncthreads();
    load_tile(qs, q, base, i0, S);
    load_tile(gs, dout, base, i0, S);
    if (threadIdx.x < kTile) {
      const int i = i0 + threadIdx.x;
      ls[threadIdx.x] = i < S ? lse[int64_t(bn) * S + i] : 0.0f;
      drs[threadIdx.x] = i < S ? dr[int64_t(bn) * S + i] : 0.0f;
    }
    __syncthreads();
    const int i = i0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = warp * kRowsPerWarp + r, j = k0 + row;
      const bool valid = i < S && j < S;
      float s = 0.0f, g = 0.0f;
#pragma unroll 16
      for (int d = 0; d < kD; ++d) {
        s += ks[row][d] * qs[lane][d];
        g += vs[row][d] * gs[lane][d];
      }
      const float p = valid ? expf(s * scale + mj[r] - ls[lane]) : 0.0f;
      const float z = drop.p > 0.0f && valid ? drop.z(b, nSS + uint32_t(i) * uint32_t(S) + uint32_t(j)) : 1.0f;
      const float ds = p * (z * g - drs[lane]) * scale;
      const float pz = p * z;
      float a0 = dk0[r], a1 = dk1[r], c0 = dv0[r], c1 = dv1[r];
#pragma unroll 8
      for (int ii = 0; ii < kTile; ++ii) {
        const float di = __shfl_sync(kFull, ds, ii), pi = __shfl_sync(kFull, pz, ii);
        a0 += di * qs[ii][lane];
        a1 += di * qs[ii][lane + 32];
        c0 += pi * gs[ii][lane];
        c1 += pi * gs[ii][lane + 32];
      }
      dk0[r] = a0, dk1[r] = a1, dv0[r] = c0, dv1[r] = c1;
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int j = k0 + warp * kRowsPerWarp + r;
    if (j >= S) continue;
    store(dk, base + int64_t(j) * kD + lane, dk0[r]);
    store(dk, base + int64_t(j) * kD + lane + 32, dk1[r]);
    store(dv, base + int64_t(j) * kD + lane, dv0[r]);
    store(dv, base + int64_t(j) * kD + lane + 32, dv1[r]);
  }
}

dim3 flash_grid(const Tensor& q) {
  const int64_t tiles = (q.size(2) + kTile - 1) / kTile, bn = q.size(0) * q.size(1);
  BR_CHECK(bn <= 65535, "flash_attention: B·N = {} exceeds the grid's y limit 65535 ({})", bn,
           q.str());
  return dim3(unsigned(tiles), unsigned(bn));
}

template <typename T>
void flash_forward_typed(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                         const Tensor& v, const Tensor& mask, float scale, const Drop& drop) {
  flash_forward_kernel<T><<<flash_grid(q), kThreads, 0, stream()>>>(
      static_cast<T*>(out.raw()), lse.data<float>(), static_cast<const T*>(q.raw()),
      static_cast<const T*>(k.raw()), static_cast<const T*>(v.raw()), mask_ptr(mask),
      int(q.size(1)), int(q.size(2)), scale, drop);
  BR_KERNEL_CHECK("flash_attention_forward");
}

template <typename T>
void flash_backward_typed(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                          const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, const Tensor& mask, float scale, const Drop& drop) {
  const int N = int(q.size(1)), S = int(q.size(2));
  const int64_t rows = q.size(0) * q.size(1) * q.size(2);
  Tensor dr = Tensor::empty({rows}, DType::f32, Device::cuda, MemCategory::workspace);
  flash_rowdot_kernel<T><<<unsigned((rows + 7) / 8), 256, 0, stream()>>>(
      dr.data<float>(), static_cast<const T*>(dout.raw()), static_cast<const T*>(out.raw()), rows);
  BR_KERNEL_CHECK("flash_attention_backward rowdot");
  flash_backward_dq_kernel<T><<<flash_grid(q), kThreads, 0, stream()>>>(
      static_cast<T*>(dq.raw()), static_cast<const T*>(dout.raw()), static_cast<const T*>(q.raw()),
      static_cast<const T*>(k.raw()), static_cast<const T*>(v.raw()), lse.data<float>(),
      dr.data<float>(), mask_ptr(mask), N, S, scale, drop);
  BR_KERNEL_CHECK("flash_attention_backward dq");
  flash_backward_dkv_kernel<T><<<flash_grid(q), kThreads, 0, stream()>>>(
      static_cast<T*>(dk.raw()), static_cast<T*>(dv.raw()), static_cast<const T*>(dout.raw()),
      static_cast<const T*>(q.raw()), static_cast<const T*>(k.raw()),
      static_cast<const T*>(v.raw()), lse.data<float>(), dr.data<float>(), mask_ptr(mask), N, S,
      scale, drop);
  BR_KERNEL_CHECK("flash_attention_backward dk dv");
}

}  // namespace

void attention_forward(const Tensor& out, const Tensor& probs, const Tensor& q, const Tensor& k,
                       const Tensor& v, const Tensor& mask, float scale, float dropout_p,
                       const DropoutKey& key, const Tensor& example_ids) {
  const Drop drop = make_drop(dropout_p, key, example_ids);
  if (q.dtype() == DType::f32)
    return forward_typed<float>(out, probs, q, k, v, mask, scale, drop);
  if (q.dtype() == DType::bf16)
    return forward_typed<__nv_bfloat16>(out, probs, q, k, v, mask, scale, drop);
  fail("attention_forward: CUDA supports f32 and bf16, got {}", q.str());
}

void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                        const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                        float scale, float dropout_p, const DropoutKey& key,
                        const Tensor& example_ids) {
  const Drop drop = make_drop(dropout_p, key, example_ids);
  if (q.dtype() == DType::f32)
    return backward_typed<float>(dq, dk, dv, dout, q, k, v, probs, scale, drop);
  if (q.dtype() == DType::bf16)
    return backward_typed<__nv_bfloat16>(dq, dk, dv, dout, q, k, v, probs, scale, drop);
  fail("attention_backward: CUDA supports f32 and bf16, got {}", q.str());
}

void flash_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& mask, float scale, float dropout_p,
                             const DropoutKey& key, const Tensor& example_ids) {
  const Drop drop = make_drop(dropout_p, key, example_ids);
  if (q.dtype() == DType::f32)
    return flash_forward_typed<float>(out, lse, q, k, v, mask, scale, drop);
  if (q.dtype() == DType::bf16)
    return flash_forward_typed<__nv_bfloat16>(out, lse, q, k, v, mask, scale, drop);
  fail("flash_attention_forward: CUDA supports f32 and bf16, got {}", q.str());
}

void flash_attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                              const Tensor& dout, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& out, const Tensor& lse,
                              const Tensor& mask, float scale, float dropout_p,
                              const DropoutKey& key, const Tensor& example_ids) {
  const Drop drop = make_drop(dropout_p, key, example_ids);
  if (q.dtype() == DType::f32)
    return flash_backward_typed<float>(dq, dk, dv, dout, q, k, v, out, lse, mask, scale, drop);
  if (q.dtype() == DType::bf16)
    return flash_backward_typed<__nv_bfloat16>(dq, dk, dv, dout, q, k, v, out, lse, mask, scale,
                                               drop);
  fail("flash_attention_backward: CUDA supports f32 and bf16, got {}", q.str());
}

}  // namespace br::cuda

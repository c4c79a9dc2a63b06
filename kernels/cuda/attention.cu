#include <cmath>
#include <type_traits>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

// Dropout on attention probabilities, as kernels/attention.h: sample b draws with example ids[b],
// element e = (n·L + i)·L + j, L = the key's row length (or S); z = keep ? 1/(1−p) : 0. Kernels
// take kDropout = (p > 0) as a template argument and draw z only when it is set.
struct Drop {
  float p;
  float zscale;
  DropoutKey key;
  const int32_t* ids;
  uint32_t L;

  __device__ __forceinline__ uint32_t e(int n, int i, int j) const {
    return (uint32_t(n) * L + uint32_t(i)) * L + uint32_t(j);
  }
  __device__ __forceinline__ float z(int b, uint32_t e) const {
    return dropout_uniform(key, uint32_t(ids[b]), e) >= p ? zscale : 0.0f;
  }
};

// S: the keys (k.size(2)).
Drop make_drop(float p, const DropoutKey& key, const Tensor& ids, int64_t S) {
  return Drop{p, p < 1.0f ? 1.0f / (1.0f - p) : 0.0f, key,
              p > 0.0f ? ids.data<int32_t>() : nullptr,
              attention_dropout_stride(key, uint32_t(S))};
}

// One attention call as its kernels see it. Head bn = b·N + n; the [B, N, S, D] tensors hold S rows
// of D per head, the materialized path's [B, N, S, S] tensors S score rows of S, the fused path's
// [B, N, S] tensors one value per query row. Each kernel names the fields it reads and writes; the
// launcher leaves the fields its pass does not use null.
template <typename T>
struct Params {
  int B, N, S;
  float scale;        // s_ij = scale·q_i·k_j + mask[b, j]
  const float* mask;  // [B, S] additive, or null
  Drop drop;
  const T *q, *k, *v, *dout;  // [B, N, S, D]
  T *out, *dq, *dk, *dv;      // [B, N, S, D]
  float* scores;  // materialized, f32: scale·Q·Kᵀ (forward) or dPd (backward)
  T* probs;       // materialized: P
  T* pd;          // materialized: dropout(P)
  T* ds;          // materialized backward: dS
  float* lse;     // fused: row logsumexp, written by forward, read by backward
  float* dr;      // fused backward: Dr = rowsum(dout ⊙ out)
};

template <typename T>
T* ptr(const Tensor& t) { return static_cast<T*>(t.raw()); }

// The fields every pass sets: sizes, scale, mask, dropout and the inputs q, k, v.
template <typename T>
Params<T> make_params(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                      float scale, const Drop& drop) {
  Params<T> pr{};
  pr.B = int(q.size(0));
  pr.N = int(q.size(1));
  pr.S = int(q.size(2));
  pr.scale = scale;
  pr.mask = ptr_or_null<const float>(mask);
  pr.drop = drop;
  pr.q = ptr<const T>(q);
  pr.k = ptr<const T>(k);
  pr.v = ptr<const T>(v);
  return pr;
}

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

// One block per score row (b, n, i): P = softmax(scores + mask[b]) written to probs; with dropout,
// pd = dropout(P). Reads scores, mask; writes probs (and pd). scores may alias probs when T is
// float: each thread reads and writes only its own columns.
template <typename T, bool kDropout>
__global__ void softmax_forward_kernel(const Params<T> pr) {
  __shared__ float scratch[32];
  const int N = pr.N, S = pr.S;
  const int64_t row = blockIdx.x;
  const int i = int(row % S), n = int((row / S) % N), b = int(row / (int64_t(S) * N));
  const float* x = pr.scores + row * S;
  const float* mk = pr.mask ? pr.mask + int64_t(b) * S : nullptr;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < S; j += blockDim.x) mx = fmaxf(mx, x[j] + (mk ? mk[j] : 0.0f));
  mx = block_reduce<true>(mx, scratch);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < S; j += blockDim.x) sum += expf(x[j] + (mk ? mk[j] : 0.0f) - mx);
  sum = block_reduce<false>(sum, scratch);
  const float inv = 1.0f / sum;
  const uint32_t e0 = pr.drop.e(n, i, 0);
  for (int j = threadIdx.x; j < S; j += blockDim.x) {
    const float p = expf(x[j] + (mk ? mk[j] : 0.0f) - mx) * inv;
    pr.probs[row * S + j] = from_f<T>(p);
    if constexpr (kDropout) pr.pd[row * S + j] = from_f<T>(p * pr.drop.z(b, e0 + uint32_t(j)));
  }
}

// pd = dropout(probs) over [B, N, S, S]. Reads probs; writes pd.
template <typename T>
__global__ void dropout_probs_kernel(const Params<T> pr) {
  const int N = pr.N;
  const int64_t SS = int64_t(pr.S) * pr.S, total = int64_t(pr.B) * N * SS;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total;
       t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t bn = t / SS;
    const int b = int(bn / N), n = int(bn % N);
    const int64_t ij = t % SS;
    const uint32_t e = pr.drop.e(n, int(ij / pr.S), int(ij % pr.S));
    pr.pd[t] = from_f<T>(to_f(pr.probs[t]) * pr.drop.z(b, e));
  }
}

// One block per row (b, n, i): dP = z ⊙ dPd; dS = P ⊙ (dP − Σ_j dP·P). Reads scores (dPd), probs;
// writes ds, which may alias scores when T is float (same-column reads before writes, separated by
// the reduction's barriers).
template <typename T, bool kDropout>
__global__ void softmax_backward_kernel(const Params<T> pr) {
  __shared__ float scratch[32];
  const int N = pr.N, S = pr.S;
  const int64_t row = blockIdx.x;
  const int i = int(row % S), n = int((row / S) % N), b = int(row / (int64_t(S) * N));
  const uint32_t e0 = pr.drop.e(n, i, 0);
  const float* g = pr.scores + row * S;
  float r = 0.0f;
  for (int j = threadIdx.x; j < S; j += blockDim.x) {
    const float dp = kDropout ? g[j] * pr.drop.z(b, e0 + uint32_t(j)) : g[j];
    r += dp * to_f(pr.probs[row * S + j]);
  }
  r = block_reduce<false>(r, scratch);
  for (int j = threadIdx.x; j < S; j += blockDim.x) {
    const float dp = kDropout ? g[j] * pr.drop.z(b, e0 + uint32_t(j)) : g[j];
    pr.ds[row * S + j] = from_f<T>(to_f(pr.probs[row * S + j]) * (dp - r));
  }
}

int softmax_threads(int S) { return S >= 512 ? 256 : S >= 128 ? 128 : 32; }

template <typename T>
void forward_typed(const Tensor& out, const Tensor& probs, const Tensor& q, const Tensor& k,
                   const Tensor& v, const Tensor& mask, float scale, const Drop& drop) {
  Params<T> pr = make_params<T>(q, k, v, mask, scale, drop);
  const int BN = pr.B * pr.N, S = pr.S, D = int(q.size(3));
  const long long SD = (long long)S * D, SS = (long long)S * S;
  Tensor scores = std::is_same_v<T, float>
                      ? probs
                      : Tensor::empty(probs.shape(), DType::f32, Device::cuda, MemCategory::workspace);
  Tensor pd = drop.p > 0.0f ? Tensor::empty(probs.shape(), probs.dtype(), Device::cuda,
                                            MemCategory::workspace)
                            : probs;
  pr.scores = scores.data<float>();
  pr.probs = ptr<T>(probs);
  pr.pd = ptr<T>(pd);
  const cudaDataType t = cublas_type("attention_forward", q);
  // scoresᵀ = K·Qᵀ per (b, n), column-major [S, S]
  gemm_batched(CUBLAS_OP_T, CUBLAS_OP_N, S, S, D, scale, k.raw(), D, SD, q.raw(), D, SD, t,
               scores.raw(), S, SS, CUDA_R_32F, BN);
  dispatch_flag(drop.p > 0.0f, [&](auto dropout) {
    softmax_forward_kernel<T, decltype(dropout)::value>
        <<<unsigned(int64_t(BN) * S), softmax_threads(S), 0, stream()>>>(pr);
  });
  BR_KERNEL_CHECK("attention_forward softmax");
  // outᵀ = Vᵀ·Pdᵀ
  gemm_batched(CUBLAS_OP_N, CUBLAS_OP_N, D, S, S, 1.0f, v.raw(), D, SD, pd.raw(), S, SS, t,
               out.raw(), D, SD, t, BN);
}

template <typename T>
void backward_typed(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                    const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                    float scale, const Drop& drop) {
  Params<T> pr = make_params<T>(q, k, v, Tensor(), scale, drop);
  const int BN = pr.B * pr.N, S = pr.S, D = int(q.size(3));
  const long long SD = (long long)S * D, SS = (long long)S * S;
  const cudaDataType t = cublas_type("attention_backward", q);
  pr.probs = ptr<T>(probs);
  Tensor pd = probs;
  if (drop.p > 0.0f) {
    pd = Tensor::empty(probs.shape(), probs.dtype(), Device::cuda, MemCategory::workspace);
    pr.pd = ptr<T>(pd);
    dropout_probs_kernel<T><<<grid_stride_blocks(int64_t(BN) * SS), 256, 0, stream()>>>(pr);
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
  pr.scores = dpd.data<float>();
  pr.ds = ptr<T>(ds);
  dispatch_flag(drop.p > 0.0f, [&](auto dropout) {
    softmax_backward_kernel<T, decltype(dropout)::value>
        <<<unsigned(int64_t(BN) * S), softmax_threads(S), 0, stream()>>>(pr);
  });
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
    dst[r][d] = row0 + r < S ? to_f(src[base + int64_t(row0 + r) * kD + d]) : 0.0f;
  }
}

// a0 += Σ_jj w_jj·tile[jj][lane] and a1 += Σ_jj w_jj·tile[jj][lane + 32], jj = 0..kTile−1 in
// order, where w_jj is lane jj's w: lane jj holds the weight of tile row jj.
__device__ __forceinline__ void accumulate_tile(float& a0, float& a1, float w,
                                                const float (*tile)[kD + 1], int lane) {
#pragma unroll 8
  for (int jj = 0; jj < kTile; ++jj) {
    const float wj = __shfl_sync(kFullMask, w, jj);
    a0 += wj * tile[jj][lane];
    a1 += wj * tile[jj][lane + 32];
  }
}

// Row `row` of a [B, N, S, kD] tensor from head offset `base`: dims lane and lane + 32.
template <typename T>
__device__ __forceinline__ void store_row(T* dst, int64_t base, int row, int lane, float a0,
                                          float a1) {
  dst[base + int64_t(row) * kD + lane] = from_f<T>(a0);
  dst[base + int64_t(row) * kD + lane + 32] = from_f<T>(a1);
}

// The dropout scale z of score (i, j) of head n; 1 without dropout or outside the S × S square.
template <bool kDropout, typename T>
__device__ __forceinline__ float dropout_z(const Params<T>& pr, int b, int n, int i, int j,
                                           bool valid) {
  return kDropout && valid ? pr.drop.z(b, pr.drop.e(n, i, j)) : 1.0f;
}

// Reads q, k, v, mask; writes out, lse.
template <typename T, bool kDropout>
__global__ void __launch_bounds__(kThreads) flash_forward_kernel(const Params<T> pr) {
  __shared__ float qs[kTile][kD + 1], ks[kTile][kD + 1], vs[kTile][kD + 1];
  const int N = pr.N, S = pr.S;
  const int bn = blockIdx.y, b = bn / N, n = bn % N;
  const int q0 = blockIdx.x * kTile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t base = int64_t(bn) * S * kD;
  load_tile(qs, pr.q, base, q0, S);
  float m[kRowsPerWarp], l[kRowsPerWarp], acc0[kRowsPerWarp], acc1[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) m[r] = -INFINITY, l[r] = 0.0f, acc0[r] = acc1[r] = 0.0f;
  for (int k0 = 0; k0 < S; k0 += kTile) {
    __syncthreads();
    load_tile(ks, pr.k, base, k0, S);
    load_tile(vs, pr.v, base, k0, S);
    __syncthreads();
    const int j = k0 + lane;
    const bool valid = j < S;
    const float mj = valid && pr.mask ? pr.mask[int64_t(b) * S + j] : 0.0f;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = warp * kRowsPerWarp + r, i = q0 + row;
      float s = 0.0f;
#pragma unroll 16
      for (int d = 0; d < kD; ++d) s += qs[row][d] * ks[lane][d];
      s = valid ? s * pr.scale + mj : -INFINITY;
      const float m_new = fmaxf(m[r], warp_max(s));  // finite: lane 0 always holds a key
      const float e = valid ? expf(s - m_new) : 0.0f;
      const float corr = expf(m[r] - m_new);
      l[r] = l[r] * corr + warp_sum(e);
      m[r] = m_new;
      const float w = kDropout && valid && i < S
                          ? e * pr.drop.z(b, pr.drop.e(n, i, j))
                          : e;
      float a0 = acc0[r] * corr, a1 = acc1[r] * corr;
      accumulate_tile(a0, a1, w, vs, lane);
      acc0[r] = a0, acc1[r] = a1;
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int i = q0 + warp * kRowsPerWarp + r;
    if (i >= S) continue;
    const float inv = 1.0f / l[r];
    store_row(pr.out, base, i, lane, acc0[r] * inv, acc1[r] * inv);
    if (lane == 0) pr.lse[int64_t(bn) * S + i] = m[r] + logf(l[r]);
  }
}

// Dr[row] = dout[row]·out[row] (= Σ_j dP_ij·P_ij), one warp per row. Reads dout, out; writes dr.
template <typename T>
__global__ void flash_rowdot_kernel(const Params<T> pr) {
  const int64_t rows = int64_t(pr.B) * pr.N * pr.S;
  const int64_t row = blockIdx.x * int64_t(blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const T* g = pr.dout + row * kD;
  const T* o = pr.out + row * kD;
  const float s = to_f(g[lane]) * to_f(o[lane]) + to_f(g[lane + 32]) * to_f(o[lane + 32]);
  const float t = warp_sum(s);
  if (lane == 0) pr.dr[row] = t;
}

// dq: the forward's layout (block per query tile, warp per 8 rows, lane per key of the tile):
// p = exp(s − lse_i), dS = p·(z·dout_i·v_j − Dr_i), dq_i = scale·Σ_j dS_ij·k_j.
// Reads dout, q, k, v, mask, lse, dr; writes dq.
template <typename T, bool kDropout>
__global__ void __launch_bounds__(kThreads) flash_backward_dq_kernel(const Params<T> pr) {
  __shared__ float qs[kTile][kD + 1], gs[kTile][kD + 1], ks[kTile][kD + 1], vs[kTile][kD + 1];
  const int N = pr.N, S = pr.S;
  const float scale = pr.scale;
  const int bn = blockIdx.y, b = bn / N, n = bn % N;
  const int q0 = blockIdx.x * kTile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t base = int64_t(bn) * S * kD;
  load_tile(qs, pr.q, base, q0, S);
  load_tile(gs, pr.dout, base, q0, S);
  float li[kRowsPerWarp], di[kRowsPerWarp], acc0[kRowsPerWarp], acc1[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int i = q0 + warp * kRowsPerWarp + r;
    li[r] = i < S ? pr.lse[int64_t(bn) * S + i] : 0.0f;
    di[r] = i < S ? pr.dr[int64_t(bn) * S + i] : 0.0f;
    acc0[r] = acc1[r] = 0.0f;
  }
  for (int k0 = 0; k0 < S; k0 += kTile) {
    __syncthreads();
    load_tile(ks, pr.k, base, k0, S);
    load_tile(vs, pr.v, base, k0, S);
    __syncthreads();
    const int j = k0 + lane;
    const float mj = j < S && pr.mask ? pr.mask[int64_t(b) * S + j] : 0.0f;
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
      const float z = dropout_z<kDropout>(pr, b, n, i, j, valid);
      const float ds = p * (z * g - di[r]) * scale;
      accumulate_tile(acc0[r], acc1[r], ds, ks, lane);
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int i = q0 + warp * kRowsPerWarp + r;
    if (i >= S) continue;
    store_row(pr.dq, base, i, lane, acc0[r], acc1[r]);
  }
}

// dk, dv: one block per key tile, warp per 8 keys, lane per query of a query tile:
// dv_j = Σ_i z·p·dout_i; dk_j = scale·Σ_i dS_ij·q_i. No atomics: each block owns its keys.
// Reads dout, q, k, v, mask, lse, dr; writes dk, dv.
template <typename T, bool kDropout>
__global__ void __launch_bounds__(kThreads) flash_backward_dkv_kernel(const Params<T> pr) {
  __shared__ float ks[kTile][kD + 1], vs[kTile][kD + 1], qs[kTile][kD + 1], gs[kTile][kD + 1];
  __shared__ float ls[kTile], drs[kTile];
  const int N = pr.N, S = pr.S;
  const float scale = pr.scale;
  const int bn = blockIdx.y, b = bn / N, n = bn % N;
  const int k0 = blockIdx.x * kTile;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t base = int64_t(bn) * S * kD;
  load_tile(ks, pr.k, base, k0, S);
  load_tile(vs, pr.v, base, k0, S);
  float mj[kRowsPerWarp], dk0[kRowsPerWarp], dk1[kRowsPerWarp], dv0[kRowsPerWarp], dv1[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int j = k0 + warp * kRowsPerWarp + r;
    mj[r] = j < S && pr.mask ? pr.mask[int64_t(b) * S + j] : 0.0f;
    dk0[r] = dk1[r] = dv0[r] = dv1[r] = 0.0f;
  }
  for (int i0 = 0; i0 < S; i0 += kTile) {
    __syncthreads();
    load_tile(qs, pr.q, base, i0, S);
    load_tile(gs, pr.dout, base, i0, S);
    if (threadIdx.x < kTile) {
      const int i = i0 + threadIdx.x;
      ls[threadIdx.x] = i < S ? pr.lse[int64_t(bn) * S + i] : 0.0f;
      drs[threadIdx.x] = i < S ? pr.dr[int64_t(bn) * S + i] : 0.0f;
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
      const float z = dropout_z<kDropout>(pr, b, n, i, j, valid);
      const float ds = p * (z * g - drs[lane]) * scale;
      const float pz = p * z;
      float a0 = dk0[r], a1 = dk1[r], c0 = dv0[r], c1 = dv1[r];
#pragma unroll 8
      for (int ii = 0; ii < kTile; ++ii) {  // accumulate_tile for dk and dv in one pass
        const float di = __shfl_sync(kFullMask, ds, ii), pi = __shfl_sync(kFullMask, pz, ii);
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
    store_row(pr.dk, base, j, lane, dk0[r], dk1[r]);
    store_row(pr.dv, base, j, lane, dv0[r], dv1[r]);
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
  Params<T> pr = make_params<T>(q, k, v, mask, scale, drop);
  pr.out = ptr<T>(out);
  pr.lse = lse.data<float>();
  dispatch_flag(drop.p > 0.0f, [&](auto dropout) {
    flash_forward_kernel<T, decltype(dropout)::value><<<flash_grid(q), kThreads, 0, stream()>>>(pr);
  });
  BR_KERNEL_CHECK("flash_attention_forward");
}

template <typename T>
void flash_backward_typed(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                          const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, const Tensor& mask, float scale, const Drop& drop) {
  Params<T> pr = make_params<T>(q, k, v, mask, scale, drop);
  const int64_t rows = q.size(0) * q.size(1) * q.size(2);
  Tensor dr = Tensor::empty({rows}, DType::f32, Device::cuda, MemCategory::workspace);
  pr.dout = ptr<const T>(dout);
  pr.out = ptr<T>(out);
  pr.lse = lse.data<float>();
  pr.dr = dr.data<float>();
  pr.dq = ptr<T>(dq);
  pr.dk = ptr<T>(dk);
  pr.dv = ptr<T>(dv);
  flash_rowdot_kernel<T><<<unsigned((rows + 7) / 8), 256, 0, stream()>>>(pr);
  BR_KERNEL_CHECK("flash_attention_backward rowdot");
  dispatch_flag(drop.p > 0.0f, [&](auto dropout) {
    constexpr bool kDropout = decltype(dropout)::value;
    flash_backward_dq_kernel<T, kDropout><<<flash_grid(q), kThreads, 0, stream()>>>(pr);
    BR_KERNEL_CHECK("flash_attention_backward dq");
    flash_backward_dkv_kernel<T, kDropout><<<flash_grid(q), kThreads, 0, stream()>>>(pr);
    BR_KERNEL_CHECK("flash_attention_backward dk dv");
  });
}

}  // namespace

void attention_forward(const Tensor& out, const Tensor& probs, const Tensor& q, const Tensor& k,
                       const Tensor& v, const Tensor& mask, float scale, float dropout_p,
                       const DropoutKey& key, const Tensor& example_ids) {
  const Drop drop = make_drop(dropout_p, key, example_ids, k.size(2));
  dispatch_f32_bf16("attention_forward", q, [&](auto tag) {
    forward_typed<decltype(tag)>(out, probs, q, k, v, mask, scale, drop);
  });
}

void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                        const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                        float scale, float dropout_p, const DropoutKey& key,
                        const Tensor& example_ids) {
  const Drop drop = make_drop(dropout_p, key, example_ids, k.size(2));
  dispatch_f32_bf16("attention_backward", q, [&](auto tag) {
    backward_typed<decltype(tag)>(dq, dk, dv, dout, q, k, v, probs, scale, drop);
  });
}

void flash_attention_forward(const Tensor& out, const Tensor& lse, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& mask, float scale, float dropout_p,
                             const DropoutKey& key, const Tensor& example_ids) {
  const Drop drop = make_drop(dropout_p, key, example_ids, k.size(2));
  dispatch_f32_bf16("flash_attention_forward", q, [&](auto tag) {
    flash_forward_typed<decltype(tag)>(out, lse, q, k, v, mask, scale, drop);
  });
}

void flash_attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                              const Tensor& dout, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& out, const Tensor& lse,
                              const Tensor& mask, float scale, float dropout_p,
                              const DropoutKey& key, const Tensor& example_ids) {
  const Drop drop = make_drop(dropout_p, key, example_ids, k.size(2));
  dispatch_f32_bf16("flash_attention_backward", q, [&](auto tag) {
    flash_backward_typed<decltype(tag)>(dq, dk, dv, dout, q, k, v, out, lse, mask, scale, drop);
  });
}

}  // namespace br::cuda

#include <algorithm>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

// GELU and its derivative as kernels/cuda/gelu.cu computes them (fp32, erff and expf).
__device__ __forceinline__ float gelu_f(float x) {
  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}
__device__ __forceinline__ float gelu_grad_f(float x) {
  const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
  const float pdf = 0.39894228040143267f * expf(-0.5f * x * x);
  return cdf + x * pdf;
}

// x as the unfused sequence stores it between its ops: rounded to T, back in fp32.
template <typename T>
__device__ __forceinline__ float rounded(float x) { return to_f(from_f<T>(x)); }

// dropout_uniform(key, example, e) for the elements of one sample, one Philox call per group of
// four consecutive elements (the last group's words are kept).
struct SampleWords {
  DropoutKey key;
  uint32_t example;
  int64_t group = -1;
  Philox4 w{};
  __device__ float uniform(int64_t e) {
    if ((e >> 2) != group) {
      group = e >> 2;
      w = philox4x32_10(Philox4{{uint32_t(group), example, key.site, key.step}},
                        uint32_t(key.seed), uint32_t(key.seed >> 32));
    }
    return philox_uniform(w.v[e & 3]);
  }
};

// pre = inp + bias (rounded to T, as bias_add_forward stores it), out = gelu(pre).
template <typename T>
__global__ void bias_gelu_forward_kernel(T* pre, T* out, const T* inp, const T* bias, int64_t total,
                                         int64_t N) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T x = from_f<T>(to_f(inp[i]) + to_f(bias[i % N]));
    pre[i] = x;
    out[i] = from_f<T>(gelu_f(to_f(x)));
  }
}

// dinp[m, c..c+cnt) of bias_gelu_backward: dout·gelu'(pre).
template <typename T>
struct GeluGrad {
  const T* dout;
  const T* pre;
  int64_t N;
  __device__ void operator()(int64_t m, int64_t c, int cnt, float (&v)[4]) const {
#pragma unroll
    for (int q = 0; q < 4; ++q)
      if (q < cnt) v[q] = to_f(dout[m * N + c + q]) * gelu_grad_f(to_f(pre[m * N + c + q]));
  }
};

// dinp[m, c..c+cnt) of dropout_bias_backward: keep ? dout·scale : 0; row m is at element
// (m % R)·N of sample m / R.
template <typename T>
struct DropoutGrad {
  const T* dout;
  const int32_t* ids;
  DropoutKey key;
  float p, scale;
  int64_t N, R;
  __device__ void operator()(int64_t m, int64_t c, int cnt, float (&v)[4]) const {
    SampleWords words{key, uint32_t(ids[m / R])};
    const int64_t e0 = (m % R) * N + c;
#pragma unroll
    for (int q = 0; q < 4; ++q)
      if (q < cnt) {
        const float d = to_f(dout[m * N + c + q]);
        v[q] = words.uniform(e0 + q) >= p ? d * scale : 0.0f;
      }
  }
};

constexpr int kColsPerThread = 4;
constexpr int kTileCols = 32 * kColsPerThread;  // one warp covers 128 consecutive columns
constexpr int kRowLanes = 8;                    // warps per block, each on its own rows

// dinp[m, c] = op(m, c) stored as T; when partial is given, partial[chunk, c] = Σ over the chunk's
// rows of the stored dinp (fp32; fixed order: deterministic). Grid (column tiles, row chunks),
// block 32 × kRowLanes; each thread owns 4 consecutive columns.
template <typename T, typename Op>
__global__ void rows_bias_sum_kernel(T* dinp, float* partial, Op op, int64_t M, int64_t N,
                                     int64_t rows_per_chunk) {
  __shared__ float acc[kRowLanes][kTileCols + 1];
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  const int64_t c = int64_t(blockIdx.x) * kTileCols + int64_t(tx) * kColsPerThread;
  const int cnt = c < N ? int(min(int64_t(kColsPerThread), N - c)) : 0;
  const int64_t m0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t m1 = min(M, m0 + rows_per_chunk);
  float s[kColsPerThread] = {0.0f, 0.0f, 0.0f, 0.0f};
  if (cnt > 0)
    for (int64_t m = m0 + ty; m < m1; m += kRowLanes) {
      float v[kColsPerThread];
      op(m, c, cnt, v);
#pragma unroll
      for (int q = 0; q < kColsPerThread; ++q)
        if (q < cnt) {
          const T t = from_f<T>(v[q]);
          dinp[m * N + c + q] = t;
          s[q] += to_f(t);
        }
    }
  if (partial == nullptr) return;  // the same for the whole grid
#pragma unroll
  for (int q = 0; q < kColsPerThread; ++q) acc[ty][tx * kColsPerThread + q] = s[q];
  __syncthreads();
  if (ty == 0)
    for (int q = 0; q < cnt; ++q) {
      float t = acc[0][tx * kColsPerThread + q];
      for (int j = 1; j < kRowLanes; ++j) t += acc[j][tx * kColsPerThread + q];
      partial[int64_t(blockIdx.y) * N + c + q] = t;
    }
}

// dbias[n] += Σ_r partial[r, n], in a fixed order.
template <typename G>
__global__ void bias_sum_finish_kernel(G* dbias, const float* partial, int64_t R, int64_t N) {
  const int64_t n = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (n >= N) return;
  float s = 0.0f;
  for (int64_t r = 0; r < R; ++r) s += partial[r * N + n];
  dbias[n] = from_f<G>(to_f(dbias[n]) + s);
}

// dinp = op over [M, N]; dbias += its column sums when defined (f32 or T).
template <typename T, typename Op>
void rows_then_bias_sum(const char* op_name, const Tensor& dinp, const Tensor& dbias, const Op& op,
                        int64_t M, int64_t N) {
  if (M == 0 || N == 0) return;
  const int64_t R = dbias.defined() ? std::clamp<int64_t>((M + 63) / 64, 1, 128)
                                    : std::clamp<int64_t>((M + 63) / 64, 1, 65535);
  const int64_t rows_per_chunk = (M + R - 1) / R;
  Tensor partial;
  if (dbias.defined())
    partial = Tensor::empty({R, N}, DType::f32, Device::cuda, MemCategory::workspace);
  const dim3 grid(unsigned((N + kTileCols - 1) / kTileCols), unsigned(R));
  rows_bias_sum_kernel<T, Op><<<grid, 32 * kRowLanes, 0, stream()>>>(
      static_cast<T*>(dinp.raw()), dbias.defined() ? partial.data<float>() : nullptr, op, M, N,
      rows_per_chunk);
  BR_KERNEL_CHECK(op_name);
  if (!dbias.defined()) return;
  if (dbias.dtype() == DType::f32) {
    bias_sum_finish_kernel<<<grid_1d(N), 256, 0, stream()>>>(dbias.data<float>(),
                                                            partial.data<float>(), R, N);
  } else {
    bias_sum_finish_kernel<<<grid_1d(N), 256, 0, stream()>>>(static_cast<T*>(dbias.raw()),
                                                            partial.data<float>(), R, N);
  }
  BR_KERNEL_CHECK(op_name);
}

// One warp per row m of C, rows_per_block rows per block, each row's x kept in shared memory:
// t = inp + bias and dropout(t) rounded to T as the unfused ops store them; x = dropout(t) + res in
// fp32 (stored to xsum when given); two-pass mean and biased variance; out = (x − mean)·rstd·w + b.
template <typename T, typename W>
__global__ void bias_dropout_residual_layernorm_kernel(T* out, float* mean, float* rstd, T* xsum,
                                                       const T* inp, const T* bias, float p,
                                                       float scale, DropoutKey key,
                                                       const int32_t* ids, const T* res,
                                                       const W* w, const W* lb, float eps,
                                                       int64_t M, int C, int64_t R) {
  extern __shared__ float rows_x[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t m = int64_t(blockIdx.x) * (blockDim.x / 32) + warp;
  if (m >= M) return;
  float* x = rows_x + int64_t(warp) * C;
  const T* a = inp + m * C;
  const T* r = res ? res + m * C : nullptr;
  T* xs = xsum ? xsum + m * C : nullptr;
  SampleWords words{key, uint32_t(ids[m / R])};
  const int64_t e0 = (m % R) * C;
  float s = 0.0f;
  // Lane l owns elements 4l..4l+3 of every 128: one Philox call per four when C % 4 == 0.
  for (int c4 = lane * 4; c4 < C; c4 += 128)
    for (int c = c4; c < c4 + 4 && c < C; ++c) {
      const float t = rounded<T>(to_f(a[c]) + to_f(bias[c]));
      const float d = p == 0.0f ? t : (words.uniform(e0 + c) >= p ? rounded<T>(t * scale) : 0.0f);
      const float v = r ? d + to_f(r[c]) : d;
      if (xs) xs[c] = from_f<T>(v);
      x[c] = v;
      s += v;
    }
  const float mu = warp_sum(s) / float(C);
  float var = 0.0f;
  for (int c4 = lane * 4; c4 < C; c4 += 128)
    for (int c = c4; c < c4 + 4 && c < C; ++c) {
      const float d = x[c] - mu;
      var += d * d;
    }
  const float rs = rsqrtf(warp_sum(var) / float(C) + eps);
  T* o = out + m * C;
  for (int c4 = lane * 4; c4 < C; c4 += 128)
    for (int c = c4; c < c4 + 4 && c < C; ++c)
      o[c] = from_f<T>((x[c] - mu) * rs * to_f(w[c]) + to_f(lb[c]));
  if (lane == 0) {
    mean[m] = mu;
    rstd[m] = rs;
  }
}

// The shared memory the LayerNorm kernel may use per block (the default limit, without opt-in).
constexpr int64_t kRowFloats = 48 * 1024 / 4;

}  // namespace

void bias_gelu_forward(const Tensor& pre, const Tensor& out, const Tensor& inp, const Tensor& bias,
                       int64_t M, int64_t N) {
  const int64_t total = M * N;
  if (total == 0) return;
  dispatch_f32_bf16("bias_gelu_forward", inp, [&](auto tag) {
    using T = decltype(tag);
    bias_gelu_forward_kernel<T><<<grid_stride_blocks(total), 256, 0, stream()>>>(
        static_cast<T*>(pre.raw()), static_cast<T*>(out.raw()), static_cast<const T*>(inp.raw()),
        static_cast<const T*>(bias.raw()), total, N);
  });
  BR_KERNEL_CHECK("bias_gelu_forward");
}

void bias_gelu_backward(const Tensor& dinp, const Tensor& dbias, const Tensor& dout,
                        const Tensor& pre, int64_t M, int64_t N) {
  dispatch_f32_bf16("bias_gelu_backward", pre, [&](auto tag) {
    using T = decltype(tag);
    const GeluGrad<T> op{static_cast<const T*>(dout.raw()), static_cast<const T*>(pre.raw()), N};
    rows_then_bias_sum<T>("bias_gelu_backward", dinp, dbias, op, M, N);
  });
}

void bias_dropout_residual_layernorm_forward(const Tensor& out, const Tensor& mean,
                                             const Tensor& rstd, const Tensor& xsum,
                                             const Tensor& inp, const Tensor& bias, float p,
                                             const DropoutKey& key, const Tensor& example_ids,
                                             const Tensor& residual, const Tensor& weight,
                                             const Tensor& ln_bias, double eps, int64_t M,
                                             int64_t N, int64_t R) {
  const char* op = "bias_dropout_residual_layernorm_forward";
  BR_CHECK(N <= kRowFloats, "{}: rows of N={} exceed the CUDA kernel's {} (shared memory)", op, N,
           kRowFloats);
  const int rows_per_block = int(std::clamp<int64_t>(kRowFloats / N, 1, kRowsPerBlock));
  const unsigned blocks = unsigned((M + rows_per_block - 1) / rows_per_block);
  const size_t shared = size_t(rows_per_block) * size_t(N) * sizeof(float);
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  dispatch_f32_bf16(op, inp, [&](auto tag) {
    using T = decltype(tag);
    auto launch = [&](auto wtag) {
      using W = decltype(wtag);
      bias_dropout_residual_layernorm_kernel<T, W><<<blocks, 32 * rows_per_block, shared, stream()>>>(
          static_cast<T*>(out.raw()), mean.data<float>(), rstd.data<float>(), ptr_or_null<T>(xsum),
          static_cast<const T*>(inp.raw()), static_cast<const T*>(bias.raw()), p, scale, key,
          example_ids.data<int32_t>(), ptr_or_null<const T>(residual),
          static_cast<const W*>(weight.raw()), static_cast<const W*>(ln_bias.raw()), float(eps), M,
          int(N), R);
    };
    if (weight.dtype() == DType::f32) {
      launch(float{});
    } else if (weight.dtype() == inp.dtype()) {
      launch(T{});
    } else {
      fail("{}: CUDA weight dtype {} unsupported", op, dtype_name(weight.dtype()));
    }
  });
  BR_KERNEL_CHECK(op);
}

void dropout_bias_backward(const Tensor& dinp, const Tensor& dbias, const Tensor& dout, float p,
                           const DropoutKey& key, const Tensor& example_ids, int64_t M, int64_t N,
                           int64_t R) {
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  dispatch_f32_bf16("dropout_bias_backward", dout, [&](auto tag) {
    using T = decltype(tag);
    const DropoutGrad<T> op{static_cast<const T*>(dout.raw()), example_ids.data<int32_t>(), key, p,
                            scale, N, R};
    rows_then_bias_sum<T>("dropout_bias_backward", dinp, dbias, op, M, N);
  });
}

}  // namespace br::cuda

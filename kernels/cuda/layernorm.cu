#include <algorithm>
#include <type_traits>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device_math.cuh"

namespace br::cuda {

namespace {

// One warp per row m of C: x = inp + res (stored to xsum when given); two-pass mean and biased
// variance in fp32; out = (x − mean)·rstd·w + b.
template <typename T, typename W>
__global__ void layernorm_forward_kernel(T* out, float* mean, float* rstd, const T* inp,
                                         const T* res, const W* w, const W* b, float eps, T* xsum,
                                         int64_t M, int C) {
  const int64_t m = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (m >= M) return;
  const T* a = inp + m * C;
  const T* r = res ? res + m * C : nullptr;
  T* xs = xsum ? xsum + m * C : nullptr;
  float s = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float x = r ? to_f(a[c]) + to_f(r[c]) : to_f(a[c]);
    if (xs) xs[c] = from_f<T>(x);
    s += x;
  }
  const float mu = warp_sum(s) / float(C);
  float v = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = (r ? to_f(a[c]) + to_f(r[c]) : to_f(a[c])) - mu;
    v += d * d;
  }
  const float rs = rsqrtf(warp_sum(v) / float(C) + eps);
  T* o = out + m * C;
  for (int c = lane; c < C; c += 32) {
    const float x = r ? to_f(a[c]) + to_f(r[c]) : to_f(a[c]);
    o[c] = from_f<T>((x - mu) * rs * to_f(w[c]) + to_f(b[c]));
  }
  if (lane == 0) {
    mean[m] = mu;
    rstd[m] = rs;
  }
}

// One warp per row: g = dout·w, x̂ = (x − mean)·rstd; dinp = rstd·(g − mean(g) − x̂·mean(g·x̂)).
template <typename T, typename W>
__global__ void layernorm_dinp_kernel(T* dinp, const T* dout, const T* x, const float* mean,
                                      const float* rstd, const W* w, int64_t M, int C) {
  const int64_t m = int64_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (m >= M) return;
  const T* dy = dout + m * C;
  const T* xr = x + m * C;
  const float mu = mean[m], rs = rstd[m];
  float sg = 0.0f, sgx = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float g = to_f(dy[c]) * to_f(w[c]);
    sg += g;
    sgx += g * (to_f(xr[c]) - mu) * rs;
  }
  sg = warp_sum(sg) / float(C);
  sgx = warp_sum(sgx) / float(C);
  T* dx = dinp + m * C;
  for (int c = lane; c < C; c += 32) {
    const float xh = (to_f(xr[c]) - mu) * rs;
    dx[c] = from_f<T>(rs * (to_f(dy[c]) * to_f(w[c]) - sg - xh * sgx));
  }
}

// Partial column sums over a chunk of rows: block (32 columns × 8 row lanes), grid (column tiles,
// row chunks). pw[chunk, c] = Σ_{m in chunk} dout·x̂, pb[chunk, c] = Σ dout; fixed order (deterministic).
template <typename T>
__global__ void layernorm_dparams_partial_kernel(float* pw, float* pb, const T* dout, const T* x,
                                                 const float* mean, const float* rstd, int64_t M,
                                                 int C, int64_t rows_per_chunk) {
  __shared__ float sw[8][33], sb[8][33];
  const int tx = threadIdx.x % 32, ty = threadIdx.x / 32;
  const int c = blockIdx.x * 32 + tx;
  const int64_t m0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t m1 = min(M, m0 + rows_per_chunk);
  float aw = 0.0f, ab = 0.0f;
  if (c < C) {
    for (int64_t m = m0 + ty; m < m1; m += 8) {
      const float dy = to_f(dout[m * C + c]);
      aw += dy * (to_f(x[m * C + c]) - mean[m]) * rstd[m];
      ab += dy;
    }
  }
  sw[ty][tx] = aw;
  sb[ty][tx] = ab;
  __syncthreads();
  if (ty == 0 && c < C) {
    for (int j = 1; j < 8; ++j) {
      aw += sw[j][tx];
      ab += sb[j][tx];
    }
    pw[int64_t(blockIdx.y) * C + c] = aw;
    pb[int64_t(blockIdx.y) * C + c] = ab;
  }
}

// dweight[c] += Σ_chunk pw[chunk, c]; dbias likewise (each skipped when null).
template <typename W>
__global__ void layernorm_dparams_finish_kernel(W* dw, W* db, const float* pw, const float* pb,
                                                int chunks, int C) {
  for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x) {
    float sw = 0.0f, sb = 0.0f;
    for (int j = 0; j < chunks; ++j) {
      sw += pw[int64_t(j) * C + c];
      sb += pb[int64_t(j) * C + c];
    }
    if (dw) dw[c] = from_f<W>(to_f(dw[c]) + sw);
    if (db) db[c] = from_f<W>(to_f(db[c]) + sb);
  }
}

template <typename T, typename F>
void dispatch_weight(const char* op, DType w, F&& f) {
  if (w == DType::f32) return f(float{});
  if constexpr (std::is_same_v<T, bf16>) {
    if (w == DType::bf16) return f(bf16{});
  }
  fail("{}: CUDA weight dtype {} unsupported", op, dtype_name(w));
}

}  // namespace

void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& residual, const Tensor& weight, const Tensor& bias, double eps,
                       const Tensor& xsum, int64_t M, int64_t C) {
  const char* op = "layernorm_forward";
  BR_CHECK(C <= (1 << 30), "{}: C={} too large", op, C);
  dispatch_f32_bf16(op, inp, [&](auto tag) {
    using T = decltype(tag);
    dispatch_weight<T>(op, weight.dtype(), [&](auto wtag) {
      using W = decltype(wtag);
      layernorm_forward_kernel<T, W><<<row_blocks(M), 32 * kRowsPerBlock, 0, stream()>>>(
          static_cast<T*>(out.raw()), mean.data<float>(), rstd.data<float>(),
          static_cast<const T*>(inp.raw()), ptr_or_null<const T>(residual),
          static_cast<const W*>(weight.raw()), static_cast<const W*>(bias.raw()), float(eps),
          ptr_or_null<T>(xsum), M, int(C));
    });
  });
  BR_KERNEL_CHECK(op);
}

void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                        const Tensor& weight, int64_t M, int64_t C) {
  const char* op = "layernorm_backward";
  BR_CHECK(C <= (1 << 30), "{}: C={} too large", op, C);
  dispatch_f32_bf16(op, x, [&](auto tag) {
    using T = decltype(tag);
    dispatch_weight<T>(op, weight.dtype(), [&](auto wtag) {
      using W = decltype(wtag);
      if (dinp.defined()) {
        layernorm_dinp_kernel<T, W><<<row_blocks(M), 32 * kRowsPerBlock, 0, stream()>>>(
            static_cast<T*>(dinp.raw()), static_cast<const T*>(dout.raw()),
            static_cast<const T*>(x.raw()), mean.data<float>(), rstd.data<float>(),
            static_cast<const W*>(weight.raw()), M, int(C));
        BR_KERNEL_CHECK("layernorm_backward (dinp)");
      }
      if (!dweight.defined() && !dbias.defined()) return;
      const int64_t rows_per_chunk = std::max<int64_t>(32, (M + 255) / 256);
      const int chunks = int((M + rows_per_chunk - 1) / rows_per_chunk);
      Tensor pw = Tensor::empty({chunks, C}, DType::f32, Device::cuda, MemCategory::workspace);
      Tensor pb = Tensor::empty({chunks, C}, DType::f32, Device::cuda, MemCategory::workspace);
      const dim3 grid(unsigned((C + 31) / 32), unsigned(chunks));
      layernorm_dparams_partial_kernel<T><<<grid, 256, 0, stream()>>>(
          pw.data<float>(), pb.data<float>(), static_cast<const T*>(dout.raw()),
          static_cast<const T*>(x.raw()), mean.data<float>(), rstd.data<float>(), M, int(C),
          rows_per_chunk);
      BR_KERNEL_CHECK("layernorm_backward (dweight/dbias partial)");
      layernorm_dparams_finish_kernel<W><<<grid_1d(C), 256, 0, stream()>>>(
          ptr_or_null<W>(dweight), ptr_or_null<W>(dbias), pw.data<float>(), pb.data<float>(),
          chunks, int(C));
      BR_KERNEL_CHECK("layernorm_backward (dweight/dbias)");
    });
  });
}

}  // namespace br::cuda

// The fused passes of kernels/fused.h. Each must give the bits of the unfused sequence it replaces,
// so every value is formed by the same expression as in bias.cpp, gelu.cpp (cpu_math.h's gelu and
// gelu_grad), dropout.cpp and layernorm.cpp, and every sum runs in the same order. A value the
// unfused sequence stores and reloads is stored and, past reload_barrier(), reloaded here too:
// GCC contracts a product into a following sum (FMA) whenever it sees both, which would change bits.
#include "kernels/cpu/cpu_math.h"
#include "kernels/cpu/cpu_ops.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

// GCC 12 reports a false -Wmaybe-uninitialized inside its own AVX-512 intrinsics for Eigen's
// kernels, and -Wignored-attributes for Eigen's packet types as template arguments.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wignored-attributes"
#include <Eigen/Core>

namespace br::cpu {

namespace {

// Values written before this point are read back from memory after it (see the file comment).
inline void reload_barrier() { asm volatile("" ::: "memory"); }

template <typename T>
T* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

// f(cb, len, u) over [c0, c1) of a row whose element c is element e0 + c of its sample: u[t] is
// the Philox word dropout_uniform(key, example, e0 + cb + t) reads, t < len.
template <typename F>
void for_dropout_words(uint32_t example, const DropoutKey& key, int64_t e0, int64_t c0, int64_t c1,
                       const F& f) {
  uint32_t u[kDropoutBlock];
  for (int64_t c = c0; c < c1;) {
    const int64_t e = e0 + c, off = e % 4;
    dropout_words(u, uint32_t(e / 4), example, key);
    const int64_t len = std::min<int64_t>(kDropoutBlock - off, c1 - c);
    f(c, len, u + off);
    c += len;
  }
}

template <typename T>
T dropout_scale(float p) { return p < 1.0f ? T(1) / (T(1) - T(p)) : T(0); }  // as dropout.cpp

// ---- the bias gradient in bias_add_backward's order ----

// bias_add_backward is Eigen's `dbias += dout.colwise().sum()` on a row-major [M, N] map. Eigen
// assigns packets of P columns over [vec_begin, vec_end), vec_begin being where dbias reaches the
// packet's alignment, and single columns elsewhere. A packet column sums d0, then
// + ((d_i + d_i+1) + (d_i+2 + d_i+3)) for i = 1, 5, ... while i < (M − 1) & ~3, then + d_i for the
// rest; a single column sums d0 + d1 + ... + d_M−1 in order; then dbias[c] += that sum.
template <typename T>
struct EigenColumnOrder {
  int64_t vec_begin = 0, vec_end = 0;
  EigenColumnOrder(const T* dbias, int64_t N) {
    using Packet = typename Eigen::internal::packet_traits<T>::type;
    constexpr int P = Eigen::internal::unpacket_traits<Packet>::size;
    constexpr int A = Eigen::internal::unpacket_traits<Packet>::alignment;
    if (P == 1 || !Eigen::internal::packet_traits<T>::Vectorizable) {
      vec_begin = vec_end = N;
      return;
    }
    vec_begin = Eigen::internal::first_aligned<A>(dbias, N);
    vec_end = vec_begin + (N - vec_begin) / P * P;
  }
};

// Columns [c0, c1) of dbias += Σ_m dinp[m, :], where rows(m, c0, c1) first writes dinp[m, c0..c1):
// row 0, then the groups of four rows Eigen adds as a tree, then the remaining rows, each summed
// right after it is written (from cache) in EigenColumnOrder's order.
template <typename T, typename Rows>
void column_sums(T* dbias, const T* dinp, int64_t M, int64_t N, int64_t c0, int64_t c1,
                 const EigenColumnOrder<T>& order, const Rows& rows) {
  std::vector<T> acc_buf(size_t(c1 - c0), T(0));
  T* acc = acc_buf.data() - c0;  // acc[c] for c in [c0, c1)
  const int64_t t0 = std::clamp(order.vec_begin, c0, c1), t1 = std::clamp(order.vec_end, c0, c1);
  if (M > 0) {
    rows(0, c0, c1);
    reload_barrier();
    for (int64_t c = c0; c < c1; ++c) acc[c] = dinp[c];
  }
  const int64_t size4 = M > 0 ? (M - 1) & ~int64_t(3) : 0;
  int64_t i = 1;
  for (; i < size4; i += 4) {
    for (int64_t k = 0; k < 4; ++k) rows(i + k, c0, c1);
    reload_barrier();
    const T *d0 = dinp + i * N, *d1 = d0 + N, *d2 = d1 + N, *d3 = d2 + N;
    auto in_order = [&](int64_t b, int64_t e) {
#pragma omp simd
      for (int64_t c = b; c < e; ++c) acc[c] = (((acc[c] + d0[c]) + d1[c]) + d2[c]) + d3[c];
    };
    in_order(c0, t0);
#pragma omp simd
    for (int64_t c = t0; c < t1; ++c) acc[c] = acc[c] + ((d0[c] + d1[c]) + (d2[c] + d3[c]));
    in_order(t1, c1);
  }
  for (; i < M; ++i) {
    rows(i, c0, c1);
    reload_barrier();
    const T* d = dinp + i * N;
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) acc[c] = acc[c] + d[c];
  }
  for (int64_t c = c0; c < c1; ++c) dbias[c] = dbias[c] + acc[c];
}

// rows(m, c0, c1) writes dinp[m, c0..c1); then, when dbias is given, dbias += Σ_m dinp[m, :] as
// bias_add_backward sums it. Threads split the columns (each walks every row, in order); inputs
// of at most 2^15 elements stay on one thread.
template <typename T, typename Rows>
void rows_then_bias_sum(T* dinp, T* dbias, int64_t M, int64_t N, const Rows& rows) {
  const bool parallel = M * N > (1 << 15);
  if (!dbias) {
    constexpr int64_t kCols = 2048;
    const int64_t blocks = (N + kCols - 1) / kCols;
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t b = 0; b < blocks; ++b) rows(m, b * kCols, std::min(N, (b + 1) * kCols));
    return;
  }
  const EigenColumnOrder<T> order(dbias, N);
#pragma omp parallel if (parallel && N >= 32)
  {
    // Column ranges of whole cache lines (16 elements), one per thread.
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t chunk = ((N + nt - 1) / nt + 15) / 16 * 16;
    const int64_t c0 = std::min(N, t * chunk), c1 = std::min(N, c0 + chunk);
    if (c0 < c1) column_sums(dbias, dinp, M, N, c0, c1, order, rows);
  }
}

// ---- the ops ----

template <typename T>
void bias_gelu_forward_impl(T* pre, T* out, const T* inp, const T* bias, int64_t M, int64_t N) {
  constexpr int64_t kCols = 2048;
  const int64_t blocks = (N + kCols - 1) / kCols;
#pragma omp parallel for collapse(2) schedule(static) if (M * N > (1 << 15))
  for (int64_t m = 0; m < M; ++m)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kCols, c1 = std::min(N, c0 + kCols);
      const T* a = inp + m * N;
      T* pr = pre + m * N;
      T* o = out + m * N;
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) {
        const T x = a[c] + bias[c];
        pr[c] = x;
        o[c] = gelu(x);
      }
    }
}

template <typename T>
void bias_gelu_backward_impl(T* dinp, T* dbias, const T* dout, const T* pre, int64_t M, int64_t N) {
  rows_then_bias_sum(dinp, dbias, M, N, [&](int64_t m, int64_t c0, int64_t c1) {
    const T* d = dout + m * N;
    const T* x = pre + m * N;
    T* o = dinp + m * N;
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) o[c] = d[c] * gelu_grad(x[c]);
  });
}

template <typename T>
void dropout_bias_backward_impl(T* dinp, T* dbias, const T* dout, float p, const DropoutKey& key,
                                const int32_t* ids, int64_t M, int64_t N, int64_t R) {
  const T scale = dropout_scale<T>(p);
  rows_then_bias_sum(dinp, dbias, M, N, [&](int64_t m, int64_t c0, int64_t c1) {
    const T* a = dout + m * N;
    T* o = dinp + m * N;
    if (p == 0.0f) {  // dropout_backward copies
      if (o != a) std::copy(a + c0, a + c1, o + c0);
      return;
    }
    for_dropout_words(uint32_t(ids[m / R]), key, (m % R) * N, c0, c1,
                      [&](int64_t cb, int64_t len, const uint32_t* u) {
#pragma omp simd
                        for (int64_t t = 0; t < len; ++t)
                          o[cb + t] = philox_uniform(u[t]) >= p ? a[cb + t] * scale : T(0);
                      });
  });
}

// LayerNorm statistics of K rows x[k][0..C) at once: each row's sums run in layernorm.cpp's order
// (sequential over c), the K independent chains keep the core's adders busy. GCC compiles
// layernorm.cpp's `v += d * d` as an in-order vector reduction: squares by vmulps (8, then 4
// wide), added one by one, then the last C % 4 terms in scalar code, contracted to FMAs. So the
// squares of the first C − C % 4 terms are stored to sq (K·C) and summed past reload_barrier(),
// and the rest are explicit FMAs.
template <int K, typename T>
void layernorm_stats(T* const* x, int64_t C, double eps, T* sq, T* mu, T* rs) {
  T s[K] = {}, v[K] = {};
  for (int64_t c = 0; c < C; ++c)
    for (int k = 0; k < K; ++k) s[k] += x[k][c];
  for (int k = 0; k < K; ++k) {
    mu[k] = s[k] / T(C);
    const T* xr = x[k];
    T* q = sq + k * C;
    const T mk = mu[k];
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const T d = xr[c] - mk;
      q[c] = d * d;
    }
  }
  reload_barrier();
  const int64_t cv = C - C % 4;
  for (int64_t c = 0; c < cv; ++c)
    for (int k = 0; k < K; ++k) v[k] += sq[k * C + c];
  for (int64_t c = cv; c < C; ++c)
    for (int k = 0; k < K; ++k) {
      const T d = x[k][c] - mu[k];
      v[k] = std::fma(d, d, v[k]);
    }
  for (int k = 0; k < K; ++k) rs[k] = T(1) / std::sqrt(v[k] / T(C) + T(eps));
}

template <typename T>
void bias_dropout_residual_layernorm_impl(T* out, T* mean, T* rstd, T* xsum, const T* inp,
                                          const T* bias, float p, const DropoutKey& key,
                                          const int32_t* ids, const T* res, const T* w,
                                          const T* lb, double eps, int64_t M, int64_t C,
                                          int64_t R) {
  constexpr int K = 8;  // rows per group
  const T scale = dropout_scale<T>(p);
  const int64_t groups = (M + K - 1) / K;
#pragma omp parallel if (M * C > (1 << 15))
  {
    std::vector<T> scratch(xsum ? 0 : size_t(K * C)), sq(size_t(K * C));
#pragma omp for schedule(static)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t m0 = g * K, rows = std::min<int64_t>(K, M - m0);
      T* x[K];
      for (int64_t k = 0; k < rows; ++k) {
        const int64_t m = m0 + k;
        const T* a = inp + m * C;
        T* xr = x[k] = xsum ? xsum + m * C : scratch.data() + k * C;
        // bias_add_forward, then dropout_forward (a copy at p = 0) on the stored sum.
        if (p == 0.0f) {
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) xr[c] = a[c] + bias[c];
        } else {
          for_dropout_words(uint32_t(ids[m / R]), key, (m % R) * C, 0, C,
                            [&](int64_t cb, int64_t len, const uint32_t* u) {
#pragma omp simd
                              for (int64_t t = 0; t < len; ++t) {
                                const T y = a[cb + t] + bias[cb + t];
                                xr[cb + t] = philox_uniform(u[t]) >= p ? y * scale : T(0);
                              }
                            });
        }
        if (res) {
          reload_barrier();
          const T* r = res + m * C;
#pragma omp simd
          for (int64_t c = 0; c < C; ++c) xr[c] = xr[c] + r[c];
        }
      }
      reload_barrier();
      T mu[K], rs[K];
      if (rows == K) {
        layernorm_stats<K>(x, C, eps, sq.data(), mu, rs);
      } else {
        for (int64_t k = 0; k < rows; ++k)
          layernorm_stats<1>(x + k, C, eps, sq.data(), mu + k, rs + k);
      }
      for (int64_t k = 0; k < rows; ++k) {
        const int64_t m = m0 + k;
        const T* xr = x[k];
        T* o = out + m * C;
        const T mk = mu[k], rk = rs[k];
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) o[c] = (xr[c] - mk) * rk * w[c] + lb[c];
        mean[m] = mk;
        rstd[m] = rk;
      }
    }
  }
}

}  // namespace

void bias_gelu_forward(const Tensor& pre, const Tensor& out, const Tensor& inp, const Tensor& bias,
                       int64_t M, int64_t N) {
  switch (inp.dtype()) {
    case DType::f32:
      return bias_gelu_forward_impl(pre.data<float>(), out.data<float>(), inp.data<float>(),
                                    bias.data<float>(), M, N);
    case DType::f64:
      return bias_gelu_forward_impl(pre.data<double>(), out.data<double>(), inp.data<double>(),
                                    bias.data<double>(), M, N);
    default: fail("bias_gelu_forward: CPU supports f32 and f64, got {}", inp.str());
  }
}

void bias_gelu_backward(const Tensor& dinp, const Tensor& dbias, const Tensor& dout,
                        const Tensor& pre, int64_t M, int64_t N) {
  switch (pre.dtype()) {
    case DType::f32:
      return bias_gelu_backward_impl(dinp.data<float>(), ptr_or_null<float>(dbias),
                                     dout.data<float>(), pre.data<float>(), M, N);
    case DType::f64:
      return bias_gelu_backward_impl(dinp.data<double>(), ptr_or_null<double>(dbias),
                                     dout.data<double>(), pre.data<double>(), M, N);
    default: fail("bias_gelu_backward: CPU supports f32 and f64, got {}", pre.str());
  }
}

void bias_dropout_residual_layernorm_forward(const Tensor& out, const Tensor& mean,
                                             const Tensor& rstd, const Tensor& xsum,
                                             const Tensor& inp, const Tensor& bias, float p,
                                             const DropoutKey& key, const Tensor& example_ids,
                                             const Tensor& residual, const Tensor& weight,
                                             const Tensor& ln_bias, double eps, int64_t M,
                                             int64_t N, int64_t R) {
  const int32_t* ids = example_ids.data<int32_t>();
  switch (inp.dtype()) {
    case DType::f32:
      return bias_dropout_residual_layernorm_impl(
          out.data<float>(), mean.data<float>(), rstd.data<float>(), ptr_or_null<float>(xsum),
          inp.data<float>(), bias.data<float>(), p, key, ids, ptr_or_null<float>(residual),
          weight.data<float>(), ln_bias.data<float>(), eps, M, N, R);
    case DType::f64:
      return bias_dropout_residual_layernorm_impl(
          out.data<double>(), mean.data<double>(), rstd.data<double>(), ptr_or_null<double>(xsum),
          inp.data<double>(), bias.data<double>(), p, key, ids, ptr_or_null<double>(residual),
          weight.data<double>(), ln_bias.data<double>(), eps, M, N, R);
    default: fail("bias_dropout_residual_layernorm_forward: CPU supports f32 and f64, got {}", inp.str());
  }
}

void dropout_bias_backward(const Tensor& dinp, const Tensor& dbias, const Tensor& dout, float p,
                           const DropoutKey& key, const Tensor& example_ids, int64_t M, int64_t N,
                           int64_t R) {
  const int32_t* ids = example_ids.data<int32_t>();
  switch (dout.dtype()) {
    case DType::f32:
      return dropout_bias_backward_impl(dinp.data<float>(), ptr_or_null<float>(dbias),
                                        dout.data<float>(), p, key, ids, M, N, R);
    case DType::f64:
      return dropout_bias_backward_impl(dinp.data<double>(), ptr_or_null<double>(dbias),
                                        dout.data<double>(), p, key, ids, M, N, R);
    default: fail("dropout_bias_backward: CPU supports f32 and f64, got {}", dout.str());
  }
}

}  // namespace br::cpu

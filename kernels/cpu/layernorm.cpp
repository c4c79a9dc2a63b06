#include "kernels/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace br::cpu {

namespace {

template <typename T>
const T* ptr_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

// Per row m of C: x = inp + residual; mean = Σx/C; var = Σ(x−mean)²/C (two-pass);
// out = (x − mean)·rstd·w + b.
template <typename T>
void forward_impl(T* out, T* mean, T* rstd, const T* inp, const T* res, const T* w, const T* b,
                  double eps, T* xsum, int64_t M, int64_t C) {
#pragma omp parallel for if (M * C > (1 << 15))
  for (int64_t m = 0; m < M; ++m) {
    const T* a = inp + m * C;
    const T* r = res ? res + m * C : nullptr;
    T* o = out + m * C;
    T* xs = xsum ? xsum + m * C : nullptr;
    auto xat = [&](int64_t c) { return r ? a[c] + r[c] : a[c]; };
    T s = 0;
    for (int64_t c = 0; c < C; ++c) {
      const T x = xat(c);
      if (xs) xs[c] = x;
      s += x;
    }
    const T mu = s / T(C);
    T v = 0;
    for (int64_t c = 0; c < C; ++c) {
      const T d = xat(c) - mu;
      v += d * d;
    }
    const T rs = T(1) / std::sqrt(v / T(C) + T(eps));
    for (int64_t c = 0; c < C; ++c) o[c] = (xat(c) - mu) * rs * w[c] + b[c];
    mean[m] = mu;
    rstd[m] = rs;
  }
}

// x̂ = (x − mean)·rstd, g = dout·w; dinp = rstd·(g − Σg/C − x̂·Σ(g·x̂)/C);
// dweight[c] += Σ_m dout·x̂, dbias[c] += Σ_m dout, summed over rows in order (deterministic).
template <typename T>
void backward_impl(T* dinp, T* dw, T* db, const T* dout, const T* x, const T* mean, const T* rstd,
                   const T* w, int64_t M, int64_t C) {
  if (dinp) {
#pragma omp parallel for if (M * C > (1 << 15))
    for (int64_t m = 0; m < M; ++m) {
      const T* dy = dout + m * C;
      const T* xr = x + m * C;
      const T mu = mean[m], rs = rstd[m];
      T sg = 0, sgx = 0;
      for (int64_t c = 0; c < C; ++c) {
        const T g = dy[c] * w[c];
        sg += g;
        sgx += g * (xr[c] - mu) * rs;
      }
      sg /= T(C);
      sgx /= T(C);
      T* dx = dinp + m * C;
      for (int64_t c = 0; c < C; ++c) {
        const T xh = (xr[c] - mu) * rs;
        dx[c] = rs * (dy[c] * w[c] - sg - xh * sgx);
      }
    }
  }
  if (!dw && !db) return;
  constexpr int64_t kTile = 64;
#pragma omp parallel for if (M * C > (1 << 15))
  for (int64_t c0 = 0; c0 < C; c0 += kTile) {
    const int64_t c1 = std::min(C, c0 + kTile);
    T aw[kTile] = {}, ab[kTile] = {};
    for (int64_t m = 0; m < M; ++m) {
      const T* dy = dout + m * C;
      const T* xr = x + m * C;
      const T mu = mean[m], rs = rstd[m];
      for (int64_t c = c0; c < c1; ++c) {
        aw[c - c0] += dy[c] * (xr[c] - mu) * rs;
        ab[c - c0] += dy[c];
      }
    }
    for (int64_t c = c0; c < c1; ++c) {
      if (dw) dw[c] += aw[c - c0];
      if (db) db[c] += ab[c - c0];
    }
  }
}

}  // namespace

void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& residual, const Tensor& weight, const Tensor& bias, double eps,
                       const Tensor& xsum, int64_t M, int64_t C) {
  switch (inp.dtype()) {
    case DType::f32:
      return forward_impl(out.data<float>(), mean.data<float>(), rstd.data<float>(),
                          inp.data<float>(), ptr_or_null<float>(residual), weight.data<float>(),
                          bias.data<float>(), eps, xsum.defined() ? xsum.data<float>() : nullptr, M, C);
    case DType::f64:
      return forward_impl(out.data<double>(), mean.data<double>(), rstd.data<double>(),
                          inp.data<double>(), ptr_or_null<double>(residual), weight.data<double>(),
                          bias.data<double>(), eps, xsum.defined() ? xsum.data<double>() : nullptr, M,
                          C);
    default: fail("layernorm_forward: CPU supports f32 and f64, got {}", inp.str());
  }
}

void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                        const Tensor& weight, int64_t M, int64_t C) {
  switch (x.dtype()) {
    case DType::f32:
      return backward_impl(dinp.defined() ? dinp.data<float>() : nullptr,
                           dweight.defined() ? dweight.data<float>() : nullptr,
                           dbias.defined() ? dbias.data<float>() : nullptr, dout.data<float>(),
                           x.data<float>(), mean.data<float>(), rstd.data<float>(),
                           weight.data<float>(), M, C);
    case DType::f64:
      return backward_impl(dinp.defined() ? dinp.data<double>() : nullptr,
                           dweight.defined() ? dweight.data<double>() : nullptr,
                           dbias.defined() ? dbias.data<double>() : nullptr, dout.data<double>(),
                           x.data<double>(), mean.data<double>(), rstd.data<double>(),
                           weight.data<double>(), M, C);
    default: fail("layernorm_backward: CPU supports f32 and f64, got {}", x.str());
  }
}

}  // namespace br::cpu

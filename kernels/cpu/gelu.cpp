#include "kernels/cpu/gelu.h"

#include <cmath>

namespace br::cpu {

namespace {

// out = 0.5·x·(1 + erf(x/√2))
template <typename T>
void gelu_forward_impl(T* out, const T* inp, int64_t n) {
  const T r2 = T(0.70710678118654752440);
#pragma omp parallel for simd if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) out[i] = T(0.5) * inp[i] * (T(1) + std::erf(inp[i] * r2));
}

// dinp = dout·(Φ(x) + x·φ(x)), Φ(x) = ½(1 + erf(x/√2)), φ(x) = exp(−x²/2)/√(2π)
template <typename T>
void gelu_backward_impl(T* dinp, const T* dout, const T* inp, int64_t n) {
  const T r2 = T(0.70710678118654752440), rs2pi = T(0.39894228040143267794);
#pragma omp parallel for simd if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    const T x = inp[i];
    const T cdf = T(0.5) * (T(1) + std::erf(x * r2));
    const T pdf = rs2pi * std::exp(T(-0.5) * x * x);
    dinp[i] = dout[i] * (cdf + x * pdf);
  }
}

}  // namespace

void gelu_forward(const Tensor& out, const Tensor& inp) {
  switch (out.dtype()) {
    case DType::f32: return gelu_forward_impl(out.data<float>(), inp.data<float>(), out.numel());
    case DType::f64: return gelu_forward_impl(out.data<double>(), inp.data<double>(), out.numel());
    default: fail("gelu_forward: CPU supports f32 and f64, got {}", out.str());
  }
}

void gelu_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  switch (dinp.dtype()) {
    case DType::f32:
      return gelu_backward_impl(dinp.data<float>(), dout.data<float>(), inp.data<float>(), dinp.numel());
    case DType::f64:
      return gelu_backward_impl(dinp.data<double>(), dout.data<double>(), inp.data<double>(),
                                dinp.numel());
    default: fail("gelu_backward: CPU supports f32 and f64, got {}", dinp.str());
  }
}

}  // namespace br::cpu

#include "kernels/cpu/cpu_ops.h"

namespace br::cpu {

namespace {

template <typename T>
double sum_squares_impl(const T* x, int64_t n) {
  double s = 0.0;
#pragma omp parallel for simd reduction(+ : s) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
  return s;
}

template <typename T>
void scale_impl(T* x, T f, int64_t n) {
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) x[i] *= f;
}

}  // namespace

double sum_squares(const std::vector<Tensor>& grads) {
  double s = 0.0;
  for (const Tensor& g : grads) {
    if (g.dtype() == DType::f32) s += sum_squares_impl(g.data<float>(), g.numel());
    else if (g.dtype() == DType::f64) s += sum_squares_impl(g.data<double>(), g.numel());
    else fail("global_grad_norm: CPU supports f32 and f64, got {}", g.str());
  }
  return s;
}

void scale_(const Tensor& t, float factor) {
  if (t.dtype() == DType::f32) return scale_impl(t.data<float>(), factor, t.numel());
  if (t.dtype() == DType::f64) return scale_impl(t.data<double>(), double(factor), t.numel());
  fail("scale_: CPU supports f32 and f64, got {}", t.str());
}

}  // namespace br::cpu

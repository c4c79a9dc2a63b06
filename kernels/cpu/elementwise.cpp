#include "kernels/cpu/cpu_ops.h"

namespace br::cpu {

namespace {

template <typename T>
void add_impl(T* o, const T* a, const T* b, int64_t n) {
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) o[i] = a[i] + b[i];
}

template <typename T>
void axpy_impl(T* o, T alpha, const T* x, int64_t n) {
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) o[i] += alpha * x[i];
}

}  // namespace

void add(const Tensor& out, const Tensor& a, const Tensor& b) {
  switch (out.dtype()) {
    case DType::f32: return add_impl(out.data<float>(), a.data<float>(), b.data<float>(), out.numel());
    case DType::f64:
      return add_impl(out.data<double>(), a.data<double>(), b.data<double>(), out.numel());
    default: fail("add: CPU supports f32 and f64, got {}", out.str());
  }
}

void axpy(const Tensor& out, float alpha, const Tensor& x) {
  switch (out.dtype()) {
    case DType::f32: return axpy_impl(out.data<float>(), alpha, x.data<float>(), out.numel());
    case DType::f64:
      return axpy_impl(out.data<double>(), double(alpha), x.data<double>(), out.numel());
    default: fail("axpy: CPU supports f32 and f64, got {}", out.str());
  }
}

}  // namespace br::cpu

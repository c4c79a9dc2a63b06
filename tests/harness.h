// One harness for every op: random inputs with a printed seed, poisoned outputs, a finite-difference
// gradient checker in double, CUDA-vs-CPU comparison with a bound per dtype, and visible skips.
#pragma once
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "kernels/cast.h"

namespace br::test {

// A fresh seed per test case, printed by Catch on failure through INFO. BERTRAZOR_TEST_SEED=<n>
// replays one: every call then returns n.
inline uint64_t fresh_seed() {
  if (const char* s = std::getenv("BERTRAZOR_TEST_SEED")) return std::stoull(s);
  static std::random_device rd;
  return (uint64_t(rd()) << 32) | rd();
}

// Prints the marker ctest turns into "Skipped" and returns true when no CUDA device is present.
inline bool skip_without_cuda() {
  if (cuda_available()) return false;
  std::printf("BERTRAZOR_SKIPPED: no CUDA device (%s)\n",
              cuda_built() ? "built with CUDA, no device answered" : "built without CUDA");
  return true;
}

inline void skip(const std::string& why) { std::printf("BERTRAZOR_SKIPPED: %s\n", why.c_str()); }

// Uniform values in [lo, hi) on the host (double), converted to `dtype` and moved to `device`.
inline Tensor random_tensor(const Shape& shape, DType dtype, std::mt19937_64& rng,
                            Device device = Device::cpu, double lo = -1.0, double hi = 1.0) {
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(size_t(shape_numel(shape)));
  for (double& x : v) x = u(rng);
  Tensor host = Tensor::from_host(v, shape);
  Tensor out = Tensor::empty(shape, dtype, Device::cpu);
  cast(out, host);
  return out.to(device);
}

// The tensor as doubles on the host, whatever its dtype and device.
inline std::vector<double> to_doubles(const Tensor& t) {
  Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu);
  if (host.dtype() == DType::f64) return host.to_vector<double>();
  Tensor d = Tensor::empty(host.shape(), DType::f64);
  cast(d, host);
  return d.to_vector<double>();
}

inline Tensor to_f64_cpu(const Tensor& t) {
  std::vector<double> v = to_doubles(t);
  return Tensor::from_host(v, t.shape());
}

inline Tensor to_dtype_device(const Tensor& t, DType dtype, Device device) {
  Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu);
  Tensor c = Tensor::empty(t.shape(), dtype);
  cast(c, host);
  return c.to(device);
}

// Fill every byte with 0xff: NaN for floats, so an element an op forgot to write fails the test.
inline void poison(const Tensor& t) { t.fill_bytes_(0xff); }

// ||a - b|| / max(||b||, tiny), over all elements; NaN anywhere gives infinity.
inline double rel_l2(const Tensor& a, const Tensor& b) {
  std::vector<double> x = to_doubles(a), y = to_doubles(b);
  REQUIRE(x.size() == y.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) return INFINITY;
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) {
  std::vector<double> x = to_doubles(a), y = to_doubles(b);
  REQUIRE(x.size() == y.size());
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) return INFINITY;
    m = std::max(m, std::fabs(x[i] - y[i]));
  }
  return m;
}

// Relative-L2 bound for a CUDA result against the CPU reference, by compute dtype (STYLE.md).
inline double tolerance(DType t) {
  switch (t) {
    case DType::f64: return 1e-12;
    case DType::f32: return 1e-5;
    case DType::f16: return 5e-3;
    case DType::bf16: return 1e-2;
    default: return 0;
  }
}

// The worst disagreement between an analytic gradient and central differences (gradient_error).
struct GradientError {
  double worst = 0;        // largest relative error seen (infinity for NaN)
  size_t input = 0;        // where it is
  int64_t element = -1;
  double analytic = 0, numeric = 0;
  bool failed = false;     // some element exceeded the tolerance: the scan stopped there
};

// Central differences in double. `loss` recomputes the scalar loss from the current contents of
// `inputs` (f64 CPU tensors); `grads[i]` is the analytic gradient of loss w.r.t. inputs[i]. Every
// element is perturbed by +-h; the scan stops at the first relative error over `tol` (a NaN
// gradient counts as over). Errors are relative to max(|numeric|, 1e-3 * largest |gradient| of
// that input, abs_floor), so an exactly-zero gradient (a key bias) is compared against the
// rounding noise of the difference.
inline GradientError gradient_error(const std::vector<Tensor>& inputs,
                                    const std::vector<Tensor>& grads,
                                    const std::function<double()>& loss, double h, double tol,
                                    double abs_floor = 1e-6) {
  REQUIRE(inputs.size() == grads.size());
  GradientError e;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    REQUIRE(x.dtype() == DType::f64);
    REQUIRE(grads[k].shape() == x.shape());
    std::vector<double> g = to_doubles(grads[k]);
    double* p = x.data<double>();
    double scale = 0;
    for (double v : g) scale = std::max(scale, std::fabs(v));
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double old = p[i];
      p[i] = old + h;
      const double lp = loss();
      p[i] = old - h;
      const double lm = loss();
      p[i] = old;
      const double num = (lp - lm) / (2 * h);
      const double den = std::max({std::fabs(num), scale * 1e-3, abs_floor});
      double err = std::fabs(num - g[size_t(i)]) / den;
      if (std::isnan(err)) err = INFINITY;
      if (err > e.worst || e.element < 0) e = GradientError{err, k, i, g[size_t(i)], num, false};
      if (!(err <= tol)) {
        e.failed = true;
        return e;
      }
    }
  }
  return e;
}

// gradient_error as a Catch check, naming `what`, the input and the element on failure.
inline void check_gradients(const std::string& what, const std::vector<Tensor>& inputs,
                            const std::vector<Tensor>& grads, const std::function<double()>& loss,
                            double h = 1e-6, double tol = 1e-6, double abs_floor = 1e-6) {
  const GradientError e = gradient_error(inputs, grads, loss, h, tol, abs_floor);
  INFO(what << ": input " << e.input << " element " << e.element << ": analytic " << e.analytic
            << " numeric " << e.numeric << ", relative error " << e.worst);
  CHECK(!e.failed);
}

// sum(g * y) in double, the scalar whose gradient w.r.t. y is g.
inline double dot(const Tensor& g, const Tensor& y) {
  std::vector<double> a = to_doubles(g), b = to_doubles(y);
  REQUIRE(a.size() == b.size());
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace br::test

// The CPU pointwise kernels' fast paths, pinned element by element to the plain formulas they
// replace: f32 erf/exp approximations in GELU against std::erf/std::exp on a dense grid (so the
// PyTorch parity tests at 1e-5 keep their margin), and the blocked, vectorized Philox dropout against
// core/philox.h's dropout_uniform on rows spanning many blocks with ragged tails.
#include <cmath>
#include <limits>

#include "kernels/dropout.h"
#include "kernels/gelu.h"
#include "inputs.h"

using namespace br;
using namespace br::test;

namespace {

std::vector<float> grid(float lo, float hi, int64_t n) {
  std::vector<float> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(lo + (hi - lo) * float(i) / float(n - 1));
  for (float s : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-45f, 0.875f * 1.41421356f, -0.875f * 1.41421356f,
                  4.0f * 1.41421356f, 20.0f, -20.0f, 100.0f, -100.0f})
    v.push_back(s);
  return v;
}

}  // namespace

TEST_CASE("gelu f32 stays within 2e-7 of the std::erf formula on a dense grid", "[kernels][gelu]") {
  const std::vector<float> xs = grid(-9.0f, 9.0f, 1 << 20);
  const int64_t n = int64_t(xs.size());
  Tensor x = Tensor::from_host(xs, {n});
  Tensor y = poisoned({n}, DType::f32), dx = poisoned({n}, DType::f32);
  gelu_forward(y, x);
  gelu_backward(dx, Tensor::from_host(std::vector<float>(size_t(n), 1.0f), {n}), x);
  const std::vector<float> got = y.to_vector<float>(), dgot = dx.to_vector<float>();
  const float r2 = 0.70710678118654752440f, rs2pi = 0.39894228040143267794f;
  int64_t bad = 0, dbad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = xs[size_t(i)];
    const float want = 0.5f * v * (1.0f + std::erf(v * r2));
    const float dwant = 0.5f * (1.0f + std::erf(v * r2)) + v * (rs2pi * std::exp(-0.5f * v * v));
    // erf and exp differ from glibc by at most 1 ulp, scaled by 0.5·|x| in out and |x| in dinp.
    if (!(std::fabs(got[size_t(i)] - want) <= 1.2e-7f * std::fabs(v) + 1e-37f)) {
      if (++bad <= 5) UNSCOPED_INFO("gelu_forward(" << v << ") = " << got[size_t(i)] << ", want " << want);
    }
    if (!(std::fabs(dgot[size_t(i)] - dwant) <= 2.4e-7f * std::max(1.0f, std::fabs(dwant)))) {
      if (++dbad <= 5) UNSCOPED_INFO("gelu_backward(" << v << ") = " << dgot[size_t(i)] << ", want " << dwant);
    }
  }
  CHECK(bad == 0);
  CHECK(dbad == 0);
}

TEST_CASE("gelu f32 propagates infinities and NaN like the std::erf formula", "[kernels][gelu]") {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  Tensor x = Tensor::from_host(std::vector<float>{inf, -inf, nan}, {3});
  Tensor y = poisoned({3}, DType::f32);
  gelu_forward(y, x);
  const std::vector<float> got = y.to_vector<float>();
  CHECK(got[0] == inf);
  CHECK(std::isnan(got[1]));  // −inf·(1 + erf(−inf)) = −inf·0
  CHECK(std::isnan(got[2]));
}

TEST_CASE("dropout masks on long ragged rows equal dropout_uniform bit for bit in f32 and f64", "[kernels][dropout]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const DropoutKey key{0xfedcba9876543210ull ^ seed, 123456, 9};
  for (DType dt : {DType::f32, DType::f64})
    for (const Shape& s : {Shape{3, 1001}, Shape{2, 64}, Shape{4, 7, 19}, Shape{1, 65}}) {
      INFO(dtype_name(dt) << " " << shape_str(s));
      const int64_t rows = s[0], n = shape_numel(s) / rows;
      std::vector<int32_t> idv(static_cast<size_t>(rows));
      for (auto& v : idv) v = int32_t(rng() % 1000000);
      Tensor ids = Tensor::from_host(idv, {rows});
      Tensor x = to_dtype_device(rand64(s, rng, 0.5, 1.5), dt, Device::cpu), y = poisoned(s, dt);
      const float p = 0.1f;
      dropout_forward(y, x, p, key, ids);
      const std::vector<double> xv = to_doubles(x), yv = to_doubles(y);
      const double scale = dt == DType::f32 ? double(1.0f / (1.0f - p)) : 1.0 / (1.0 - double(p));
      int64_t bad = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t e = 0; e < n; ++e) {
          const bool keep = dropout_uniform(key, uint32_t(idv[size_t(r)]), uint32_t(e)) >= p;
          const size_t i = size_t(r * n + e);
          const double want = keep ? (dt == DType::f32 ? double(float(xv[i]) * float(scale)) : xv[i] * scale) : 0.0;
          if (yv[i] != want && ++bad <= 5) UNSCOPED_INFO("row " << r << " element " << e << ": " << yv[i] << ", want " << want);
        }
      CHECK(bad == 0);
    }
}

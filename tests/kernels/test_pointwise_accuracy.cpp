// The f32 CPU pointwise kernels use vectorizable approximations of erf and exp; these tests pin them
// element by element to the std::erf/std::exp formulas they replace, on a dense grid and at special
// values, so the PyTorch parity tests (1e-5) keep their margin.
#include <cmath>
#include <limits>

#include "kernels/gelu.h"
#include "pointwise_util.h"

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

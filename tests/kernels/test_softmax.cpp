// Masked attention softmax: a naive reference, exact zeros for masked keys, aliasing, bad inputs.
// Gradients and CUDA against the CPU (masked keys exactly 0 there too): the "softmax" op table entry.
#include <cmath>
#include <limits>

#include "kernels/softmax.h"
#include "inputs.h"

using namespace br;
using namespace br::test;

namespace {

// probs by the definition, in double
std::vector<double> reference_probs(const Tensor& scores, const Tensor& mask, double scale) {
  const Shape& s = scores.shape();
  const int64_t Sk = s[3], per_b = s[1] * s[2], rows = shape_numel(s) / Sk;
  auto x = to_doubles(scores);
  std::vector<double> mk = mask.defined() ? to_doubles(mask) : std::vector<double>(size_t(s[0] * Sk), 0.0);
  std::vector<double> p(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -INFINITY, sum = 0;
    for (int64_t k = 0; k < Sk; ++k) mx = std::max(mx, scale * x[r * Sk + k] + mk[(r / per_b) * Sk + k]);
    for (int64_t k = 0; k < Sk; ++k) sum += std::exp(scale * x[r * Sk + k] + mk[(r / per_b) * Sk + k] - mx);
    for (int64_t k = 0; k < Sk; ++k)
      p[r * Sk + k] = std::exp(scale * x[r * Sk + k] + mk[(r / per_b) * Sk + k] - mx) / sum;
  }
  return p;
}

}  // namespace

TEST_CASE("softmax_forward matches the definition and masked keys get exactly zero",
          "[kernels][softmax]") {
  std::mt19937_64 rng(fresh_seed());
  for (float neg : {-10000.0f, -std::numeric_limits<float>::max(), -INFINITY}) {
    INFO("mask value " << neg);
    const Shape s{2, 3, 5, 33};
    Tensor x = random_tensor(s, DType::f32, rng, Device::cpu, -4, 4);
    Tensor mask = random_key_mask(2, 33, rng, neg);
    Tensor p = poisoned(s, DType::f32);
    softmax_forward(p, x, mask, 0.125f);
    auto got = p.to_vector<float>();
    auto mk = mask.to_vector<float>();
    for (int64_t r = 0; r < 30; ++r) {
      double sum = 0;
      for (int64_t k = 0; k < 33; ++k) {
        sum += got[size_t(r * 33 + k)];
        if (mk[size_t((r / 15) * 33 + k)] != 0.0f) CHECK(got[size_t(r * 33 + k)] == 0.0f);
      }
      CHECK(sum == Approx(1.0).epsilon(1e-6));
    }
    if (neg == -10000.0f) CHECK(rel_l2(p, Tensor::from_host(reference_probs(x, mask, 0.125), s)) < 1e-6);
  }
}

TEST_CASE("softmax with every key masked by -inf gives zeros not NaN", "[kernels][softmax]") {
  Tensor x = Tensor::zeros({1, 1, 2, 3}, DType::f64);
  Tensor mask = Tensor::from_host(std::vector<float>(3, -INFINITY), {1, 3});
  Tensor p = poisoned({1, 1, 2, 3}, DType::f64);
  softmax_forward(p, x, mask, 1.0f);
  for (double v : p.to_vector<double>()) CHECK(v == 0.0);
}

TEST_CASE("softmax_backward: dscores may alias dprobs", "[kernels][softmax]") {
  std::mt19937_64 rng(fresh_seed());
  const Shape s{2, 2, 3, 7};
  Tensor x = rand64(s, rng), g = rand64(s, rng), p = Tensor::empty(s, DType::f64);
  softmax_forward(p, x, Tensor(), 1.0f);
  Tensor dx = poisoned(s, DType::f64);
  softmax_backward(dx, g, p, 0.5f);
  softmax_backward(g, g, p, 0.5f);
  CHECK(max_abs_diff(g, dx) == 0);
}

TEST_CASE("softmax rejects bad shapes with messages naming them", "[kernels][softmax]") {
  Tensor x = Tensor::zeros({2, 3, 4, 5}, DType::f32), p = Tensor::zeros({2, 3, 4, 5}, DType::f32);
  REQUIRE_THROWS_WITH(softmax_forward(p, x, Tensor::zeros({2, 4}, DType::f32), 1.0f),
                      Catch::Contains("softmax_forward: mask has shape [2, 4], expected [2, 5]"));
  REQUIRE_THROWS_WITH(softmax_forward(p, x, Tensor::zeros({2, 5}, DType::f64), 1.0f),
                      Catch::Contains("softmax_forward: mask is f64[2, 5]@cpu, expected f32"));
  REQUIRE_THROWS_WITH(softmax_forward(Tensor::zeros({6, 4, 5}, DType::f32), Tensor::zeros({6, 4, 5}, DType::f32),
                                      Tensor(), 1.0f),
                      Catch::Contains("softmax_forward: scores f32[6, 4, 5]@cpu must be [B,N,Sq,Sk]"));
  REQUIRE_THROWS_WITH(softmax_forward(Tensor::zeros({2, 3, 4, 6}, DType::f32), x, Tensor(), 1.0f),
                      Catch::Contains("softmax_forward: probs has shape [2, 3, 4, 6], expected [2, 3, 4, 5]"));
  REQUIRE_THROWS_WITH(softmax_backward(p, Tensor::zeros({2, 3, 4, 5}, DType::f64), p, 1.0f),
                      Catch::Contains("softmax_backward: dprobs is f64[2, 3, 4, 5]@cpu, expected f32"));
}

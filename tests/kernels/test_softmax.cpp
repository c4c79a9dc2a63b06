// Masked attention softmax: a naive reference, exact zeros for masked keys, f64 gradient check,
// bad inputs, CUDA against the CPU reference.
#include <cmath>
#include <limits>

#include "kernels/softmax.h"
#include "pointwise_util.h"

using namespace br;
using namespace br::test;

namespace {

Tensor random_mask(int64_t B, int64_t Sk, std::mt19937_64& rng, float neg) {
  std::vector<float> m(size_t(B * Sk));
  for (auto& v : m) v = (rng() % 3 == 0) ? neg : 0.0f;
  for (int64_t b = 0; b < B; ++b) m[size_t(b * Sk)] = 0.0f;  // at least one visible key per row
  return Tensor::from_host(m, {B, Sk});
}

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
    Tensor mask = random_mask(2, 33, rng, neg);
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

TEST_CASE("softmax gradients match central differences in f64 with Sk=1 and 33", "[kernels][softmax]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const Shape& s : {Shape{2, 3, 5, 33}, Shape{1, 2, 3, 1}, Shape{3, 1, 1, 7}}) {
    Tensor x = rand64(s, rng, -3, 3), g = rand64(s, rng);
    Tensor mask = s[3] > 1 ? random_mask(s[0], s[3], rng, -10000.0f) : Tensor();
    const float scale = 0.37f;
    Tensor p = Tensor::empty(s, DType::f64), dx = poisoned(s, DType::f64);
    softmax_forward(p, x, mask, scale);
    softmax_backward(dx, g, p, scale);
    check_gradients("softmax " + shape_str(s), {x}, {dx}, [&] {
      softmax_forward(p, x, mask, scale);
      return dot(g, p);
    }, 1e-5, 1e-5);
  }
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

TEST_CASE("softmax on CUDA matches the CPU reference in f32 and bf16 with masked keys exactly 0",
          "[kernels][softmax][cuda]") {
  if (skip_without_cuda()) return;
  std::mt19937_64 rng(fresh_seed());
  for (DType dt : {DType::f32, DType::bf16}) {
    for (const Shape& s : {Shape{2, 3, 5, 33}, Shape{2, 12, 7, 512}, Shape{3, 1, 2, 1}}) {
      INFO(dtype_name(dt) << " " << shape_str(s));
      Tensor x = round_through(random_tensor(s, DType::f32, rng, Device::cpu, -4, 4), dt);
      Tensor g = round_through(random_tensor(s, DType::f32, rng), dt);
      Tensor mask = s[3] > 1 ? random_mask(s[0], s[3], rng, -10000.0f) : Tensor();
      Tensor p = Tensor::empty(s, DType::f32), dx = Tensor::empty(s, DType::f32);
      softmax_forward(p, x, mask, 0.125f);
      Tensor pr = round_through(p, dt);
      softmax_backward(dx, g, pr, 0.125f);
      Tensor pc = poisoned(s, dt, Device::cuda), dxc = poisoned(s, dt, Device::cuda);
      softmax_forward(pc, to_dtype_device(x, dt, Device::cuda), mask.defined() ? mask.to(Device::cuda) : Tensor(),
                      0.125f);
      CHECK(rel_l2(pc, p) < tolerance(dt));
      if (mask.defined()) {
        auto got = to_doubles(pc);
        auto mk = mask.to_vector<float>();
        const int64_t Sk = s[3], per_b = s[1] * s[2];
        for (size_t i = 0; i < got.size(); ++i)
          if (mk[size_t((int64_t(i) / Sk / per_b) * Sk + int64_t(i) % Sk)] != 0.0f) REQUIRE(got[i] == 0.0);
      }
      softmax_backward(dxc, to_dtype_device(g, dt, Device::cuda), to_dtype_device(pr, dt, Device::cuda), 0.125f);
      CHECK(rel_l2(dxc, dx) < tolerance(dt));
    }
  }
}

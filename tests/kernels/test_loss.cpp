// Cross-entropy and MSE: values against the definitions (stable for large logits), bad labels (CPU
// and CUDA) and shapes. Gradients and CUDA against the CPU: the "cross_entropy" and "mse" op table
// entries.
#include <cmath>

#include "kernels/loss.h"
#include "inputs.h"

using namespace br;
using namespace br::test;

namespace {

double reference_ce(const std::vector<double>& z, const std::vector<int32_t>& y, int64_t C) {
  const int64_t B = int64_t(y.size());
  double s = 0;
  for (int64_t b = 0; b < B; ++b) {
    double mx = -INFINITY, e = 0;
    for (int64_t c = 0; c < C; ++c) mx = std::max(mx, z[b * C + c]);
    for (int64_t c = 0; c < C; ++c) e += std::exp(z[b * C + c] - mx);
    s += mx + std::log(e) - z[b * C + y[size_t(b)]];
  }
  return s / double(B);
}

}  // namespace

TEST_CASE("cross_entropy_forward matches the definition and is stable for large logits",
          "[kernels][loss]") {
  std::mt19937_64 rng(fresh_seed());
  Tensor z = random_tensor({7, 3}, DType::f32, rng, Device::cpu, -3, 3);
  Tensor y = random_labels(7, 3, rng);
  Tensor loss = poisoned({1}, DType::f32);
  cross_entropy_forward(loss, z, y);
  CHECK(loss.to_vector<float>()[0] == Approx(reference_ce(to_doubles(z), y.to_vector<int32_t>(), 3)).epsilon(1e-6));
  Tensor big = Tensor::from_host(std::vector<float>{1000.0f, 0.0f, -1000.0f, 1000.0f}, {2, 2});
  cross_entropy_forward(loss, big, Tensor::from_host(std::vector<int32_t>{0, 0}, {2}));
  CHECK(loss.to_vector<float>()[0] == Approx(1000.0f).epsilon(1e-6));  // row 0: 0, row 1: 2000
}

TEST_CASE("mse value in f64 with preds of shape B and B x 1", "[kernels][loss]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const Shape& s : {Shape{7}, Shape{5, 1}, Shape{1}}) {
    const int64_t B = s[0];
    Tensor p = rand64(s, rng, -2, 2), t = rand64({B}, rng, 0, 5);
    Tensor loss = poisoned({1}, DType::f64);
    mse_forward(loss, p, t);
    auto pv = to_doubles(p), tv = to_doubles(t);
    double want = 0;
    for (int64_t b = 0; b < B; ++b) want += (pv[size_t(b)] - tv[size_t(b)]) * (pv[size_t(b)] - tv[size_t(b)]) / double(B);
    CHECK(loss.to_vector<double>()[0] == Approx(want).epsilon(1e-13));
  }
}

TEST_CASE("losses reject bad labels or shapes or dtypes with messages naming them", "[kernels][loss]") {
  Tensor z = Tensor::zeros({3, 2}, DType::f32), loss = Tensor::zeros({1}, DType::f32);
  REQUIRE_THROWS_WITH(cross_entropy_forward(loss, z, Tensor::from_host(std::vector<int32_t>{0, 2, 1}, {3})),
                      Catch::Contains("cross_entropy_forward: label 2 in row 1 is outside [0, C=2)"));
  REQUIRE_THROWS_WITH(cross_entropy_backward(z, z, Tensor::from_host(std::vector<int32_t>{0, 1, -1}, {3}), 1.0f),
                      Catch::Contains("cross_entropy_backward: label -1 in row 2 is outside [0, C=2)"));
  REQUIRE_THROWS_WITH(cross_entropy_forward(loss, z, Tensor::zeros({2}, DType::i32)),
                      Catch::Contains("cross_entropy_forward: labels has shape [2], expected [3]"));
  REQUIRE_THROWS_WITH(cross_entropy_forward(loss, Tensor::zeros({3, 2, 1}, DType::f32), Tensor::zeros({3}, DType::i32)),
                      Catch::Contains("cross_entropy_forward: logits f32[3, 2, 1]@cpu must be [B,C]"));
  REQUIRE_THROWS_WITH(cross_entropy_forward(Tensor::zeros({2}, DType::f32), z, Tensor::zeros({3}, DType::i32)),
                      Catch::Contains("cross_entropy_forward: loss f32[2]@cpu must have one element"));
  REQUIRE_THROWS_WITH(cross_entropy_forward(Tensor::zeros({1}, DType::f64), z, Tensor::zeros({3}, DType::i32)),
                      Catch::Contains("cross_entropy_forward: loss f64[1]@cpu must be f32"));
  REQUIRE_THROWS_WITH(cross_entropy_backward(Tensor::zeros({3, 3}, DType::f32), z, Tensor::zeros({3}, DType::i32), 1.0f),
                      Catch::Contains("cross_entropy_backward: dlogits has shape [3, 3], expected [3, 2]"));
  Tensor p = Tensor::zeros({4, 1}, DType::f32);
  REQUIRE_THROWS_WITH(mse_forward(loss, p, Tensor::zeros({3}, DType::f32)),
                      Catch::Contains("mse_forward: targets f32[3]@cpu must be [B=4] or match preds f32[4, 1]@cpu"));
  REQUIRE_THROWS_WITH(mse_forward(loss, Tensor::zeros({4, 2}, DType::f32), Tensor::zeros({4}, DType::f32)),
                      Catch::Contains("mse_forward: preds f32[4, 2]@cpu must be [B] or [B,1]"));
  REQUIRE_THROWS_WITH(mse_backward(p, p, Tensor::zeros({4}, DType::f64), 1.0f),
                      Catch::Contains("mse_backward: targets f64[4]@cpu must have the dtype of preds"));
}

TEST_CASE("losses on CUDA reject a bad label and leave NaN, not a partial result",
          "[kernels][loss][cuda]") {
  if (skip_without_cuda()) return;
  Tensor zc = Tensor::zeros({3, 2}, DType::f32, Device::cuda);
  Tensor bad_labels = Tensor::from_host(std::vector<int32_t>{0, 5, 1}, {3}, Device::cuda);
  Tensor lc = Tensor::zeros({1}, DType::f32, Device::cuda);
  REQUIRE_THROWS_WITH(cross_entropy_forward(lc, zc, bad_labels),
                      Catch::Contains("cross_entropy_forward: label 5 in row 1 is outside [0, C=2)"));
  CHECK(std::isnan(lc.to(Device::cpu).to_vector<float>()[0]));  // not a sum over the good rows
  Tensor dzc = Tensor::zeros({3, 2}, DType::f32, Device::cuda);
  REQUIRE_THROWS_WITH(
      cross_entropy_backward(dzc, zc, bad_labels, 1.0f),
      Catch::Contains("cross_entropy_backward: label 5 in row 1 is outside [0, C=2)"));
  const std::vector<float> dz = dzc.to(Device::cpu).to_vector<float>();
  CHECK((std::isnan(dz[2]) && std::isnan(dz[3])));  // the bad row holds NaN, not stale values
}

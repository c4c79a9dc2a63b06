// Cross-entropy and MSE: values against the definitions (stable for large logits), f64 gradient
// checks, bad labels and shapes, CUDA against the CPU reference.
#include <cmath>

#include "kernels/loss.h"
#include "pointwise_util.h"

using namespace br;
using namespace br::test;

namespace {

Tensor random_labels(int64_t B, int64_t C, std::mt19937_64& rng) {
  std::vector<int32_t> v(static_cast<size_t>(B));
  for (auto& x : v) x = int32_t(rng() % uint64_t(C));
  return Tensor::from_host(v, {B});
}

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

TEST_CASE("cross-entropy gradient matches central differences (f64)", "[kernels][loss]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (auto [B, C] : {std::pair<int64_t, int64_t>{7, 3}, {1, 2}, {5, 33}, {3, 1}}) {
    Tensor z = rand64({B, C}, rng, -2, 2), y = random_labels(B, C, rng);
    Tensor dz = poisoned({B, C}, DType::f64), loss = Tensor::empty({1}, DType::f64);
    const float dloss = 0.7f;
    cross_entropy_backward(dz, z, y, dloss);
    check_gradients("cross_entropy B=" + std::to_string(B) + " C=" + std::to_string(C), {z}, {dz}, [&] {
      cross_entropy_forward(loss, z, y);
      return double(dloss) * loss.to_vector<double>()[0];
    }, 1e-5, 1e-6);
  }
}

TEST_CASE("mse value and gradient in f64 with preds of shape B and B x 1", "[kernels][loss]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const Shape& s : {Shape{7}, Shape{5, 1}, Shape{1}}) {
    const int64_t B = s[0];
    Tensor p = rand64(s, rng, -2, 2), t = rand64({B}, rng, 0, 5);
    Tensor loss = poisoned({1}, DType::f64), dp = poisoned(s, DType::f64);
    mse_forward(loss, p, t);
    auto pv = to_doubles(p), tv = to_doubles(t);
    double want = 0;
    for (int64_t b = 0; b < B; ++b) want += (pv[size_t(b)] - tv[size_t(b)]) * (pv[size_t(b)] - tv[size_t(b)]) / double(B);
    CHECK(loss.to_vector<double>()[0] == Approx(want).epsilon(1e-13));
    mse_backward(dp, p, t, 1.5f);
    check_gradients("mse " + shape_str(s), {p}, {dp}, [&] {
      mse_forward(loss, p, t);
      return 1.5 * loss.to_vector<double>()[0];
    }, 1e-5, 1e-6);
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

TEST_CASE("losses on CUDA match the CPU reference in f32 and bf16", "[kernels][loss][cuda]") {
  if (skip_without_cuda()) return;
  std::mt19937_64 rng(fresh_seed());
  for (DType dt : {DType::f32, DType::bf16}) {
    for (auto [B, C] : {std::pair<int64_t, int64_t>{32, 2}, {7, 3}, {1, 1}, {300, 77}}) {
      INFO(dtype_name(dt) << " B=" << B << " C=" << C);
      Tensor z = round_through(random_tensor({B, C}, DType::f32, rng, Device::cpu, -3, 3), dt);
      Tensor y = random_labels(B, C, rng);
      Tensor loss = Tensor::empty({1}, DType::f32), dz = Tensor::empty({B, C}, DType::f32);
      cross_entropy_forward(loss, z, y);
      cross_entropy_backward(dz, z, y, 0.5f);
      Tensor zc = to_dtype_device(z, dt, Device::cuda), yc = y.to(Device::cuda);
      Tensor lc = poisoned({1}, DType::f32, Device::cuda), dzc = poisoned({B, C}, dt, Device::cuda);
      cross_entropy_forward(lc, zc, yc);
      cross_entropy_backward(dzc, zc, yc, 0.5f);
      CHECK(rel_l2(lc, loss) < 1e-5);
      CHECK(rel_l2(dzc, dz) < tolerance(dt));
    }
    for (int64_t B : {1, 7, 1000}) {
      Tensor p = round_through(random_tensor({B, 1}, DType::f32, rng), dt), t = random_tensor({B}, DType::f32, rng);
      Tensor loss = Tensor::empty({1}, DType::f32), dp = Tensor::empty({B, 1}, DType::f32);
      mse_forward(loss, p, t);
      mse_backward(dp, p, t, 2.0f);
      Tensor pc = to_dtype_device(p, dt, Device::cuda), tc = t.to(Device::cuda);
      Tensor lc = poisoned({1}, DType::f32, Device::cuda), dpc = poisoned({B, 1}, dt, Device::cuda);
      mse_forward(lc, pc, tc);
      mse_backward(dpc, pc, tc, 2.0f);
      CHECK(rel_l2(lc, loss) < 1e-5);
      CHECK(rel_l2(dpc, dp) < tolerance(dt));
    }
  }
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

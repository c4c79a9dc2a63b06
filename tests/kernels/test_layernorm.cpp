// LayerNorm with fused residual: statistics, the backward formula on a reconstructed x, accumulation,
// f32 at BERT's row width, bad inputs. Gradients for inp, residual, weight and bias and CUDA (f32,
// bf16 with f32 or bf16 weights) against the CPU: the "layernorm" op table entry.
#include <cmath>

#include "kernels/layernorm.h"
#include "inputs.h"

using namespace br;
using namespace br::test;

namespace {

// dinp by the documented formula, straight from the definitions, in double.
std::vector<double> reference_dinp(const Tensor& dout, const Tensor& x, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& w) {
  const int64_t C = x.size(-1), M = x.numel() / C;
  auto dy = to_doubles(dout), xv = to_doubles(x), mu = to_doubles(mean), rs = to_doubles(rstd),
       wv = to_doubles(w);
  std::vector<double> dx(dy.size());
  for (int64_t m = 0; m < M; ++m) {
    double sg = 0, sgx = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double g = dy[m * C + c] * wv[c];
      sg += g / C;
      sgx += g * (xv[m * C + c] - mu[m]) * rs[m] / C;
    }
    for (int64_t c = 0; c < C; ++c) {
      const double xh = (xv[m * C + c] - mu[m]) * rs[m];
      dx[m * C + c] = rs[m] * (dy[m * C + c] * wv[c] - sg - xh * sgx);
    }
  }
  return dx;
}

}  // namespace

TEST_CASE("layernorm_forward gives per-row statistics and xsum and normalised rows", "[kernels][layernorm]") {
  std::mt19937_64 rng(fresh_seed());
  const Shape s{7, 33};
  Tensor inp = rand64(s, rng, -2, 3), res = rand64(s, rng);
  Tensor w = Tensor::from_host(std::vector<double>(33, 1.0), {33}), b = Tensor::zeros({33}, DType::f64);
  Tensor out = poisoned(s, DType::f64), xs = poisoned(s, DType::f64);
  Tensor mean = poisoned({7}, DType::f64), rstd = poisoned({7}, DType::f64);
  const double eps = 1e-5;
  layernorm_forward(out, mean, rstd, inp, res, w, b, eps, xs);
  auto a = to_doubles(inp), r = to_doubles(res), x = to_doubles(xs), o = to_doubles(out);
  auto mu = to_doubles(mean), rs = to_doubles(rstd);
  for (int64_t m = 0; m < 7; ++m) {
    double s1 = 0, s2 = 0, om = 0, ov = 0;
    for (int64_t c = 0; c < 33; ++c) {
      const size_t i = size_t(m * 33 + c);
      CHECK(x[i] == a[i] + r[i]);
      s1 += x[i];
    }
    s1 /= 33;
    for (int64_t c = 0; c < 33; ++c) s2 += (x[size_t(m * 33 + c)] - s1) * (x[size_t(m * 33 + c)] - s1) / 33;
    CHECK(mu[size_t(m)] == Approx(s1).epsilon(1e-13));
    CHECK(rs[size_t(m)] == Approx(1 / std::sqrt(s2 + eps)).epsilon(1e-13));
    for (int64_t c = 0; c < 33; ++c) om += o[size_t(m * 33 + c)] / 33;
    for (int64_t c = 0; c < 33; ++c) ov += o[size_t(m * 33 + c)] * o[size_t(m * 33 + c)] / 33;
    CHECK(std::fabs(om) < 1e-12);
    CHECK(ov == Approx(s2 / (s2 + eps)).epsilon(1e-12));
  }
}

TEST_CASE("layernorm_backward uses the given x with the forward mean and rstd and accumulates",
          "[kernels][layernorm]") {
  std::mt19937_64 rng(fresh_seed());
  const Shape s{7, 33};
  Tensor x = rand64(s, rng), g = rand64(s, rng), w = rand64({33}, rng);
  Tensor mean = rand64({7}, rng, -0.5, 0.5), rstd = rand64({7}, rng, 0.5, 2);
  Tensor dx = poisoned(s, DType::f64), dw = Tensor::zeros({33}, DType::f64), db = Tensor::zeros({33}, DType::f64);
  layernorm_backward(dx, dw, db, g, x, mean, rstd, w);
  const std::vector<double> want = reference_dinp(g, x, mean, rstd, w);
  CHECK(rel_l2(dx, Tensor::from_host(want, s)) < 1e-13);
  Tensor dw1 = dw.clone(), db1 = db.clone();
  layernorm_backward(Tensor(), dw, db, g, x, mean, rstd, w);
  std::vector<double> w1 = to_doubles(dw1), w2 = to_doubles(dw), b1 = to_doubles(db1), b2 = to_doubles(db);
  for (size_t i = 0; i < 33; ++i) {
    CHECK(w2[i] == Approx(2 * w1[i]).epsilon(1e-13));
    CHECK(b2[i] == Approx(2 * b1[i]).epsilon(1e-13));
  }
  Tensor dx2 = poisoned(s, DType::f64);
  layernorm_backward(dx2, Tensor(), Tensor(), g, x, mean, rstd, w);
  CHECK(max_abs_diff(dx2, dx) == 0);
}

TEST_CASE("layernorm f32 agrees with f64 (BERT row width)", "[kernels][layernorm]") {
  std::mt19937_64 rng(fresh_seed());
  const Shape s{5, 768};
  Tensor inp = random_tensor(s, DType::f32, rng, Device::cpu, -3, 5), res = random_tensor(s, DType::f32, rng);
  Tensor w = random_tensor({768}, DType::f32, rng), b = random_tensor({768}, DType::f32, rng);
  Tensor out = poisoned(s, DType::f32), mean = poisoned({5}, DType::f32), rstd = poisoned({5}, DType::f32);
  layernorm_forward(out, mean, rstd, inp, res, w, b, 1e-12, Tensor());
  Tensor out64 = poisoned(s, DType::f64), m64 = poisoned({5}, DType::f64), r64 = poisoned({5}, DType::f64);
  layernorm_forward(out64, m64, r64, to_f64_cpu(inp), to_f64_cpu(res), to_f64_cpu(w), to_f64_cpu(b), 1e-12,
                    Tensor());
  CHECK(rel_l2(out, out64) < 1e-5);
  CHECK(rel_l2(rstd, r64) < 1e-5);
}

TEST_CASE("layernorm rejects bad shapes and dtypes with messages naming them", "[kernels][layernorm]") {
  Tensor x = Tensor::zeros({4, 32}, DType::f32), out = Tensor::zeros({4, 32}, DType::f32);
  Tensor w = Tensor::zeros({32}, DType::f32), b = Tensor::zeros({32}, DType::f32);
  Tensor mean = Tensor::zeros({4}, DType::f32), rstd = Tensor::zeros({4}, DType::f32);
  REQUIRE_NOTHROW(layernorm_forward(out, mean, rstd, x, Tensor(), w, b, 1e-5, Tensor()));
  REQUIRE_THROWS_WITH(
      layernorm_forward(out, mean, rstd, x, Tensor(), Tensor::zeros({31}, DType::f32), b, 1e-5, Tensor()),
      Catch::Contains("layernorm_forward: weight has shape [31], expected [32]"));
  REQUIRE_THROWS_WITH(
      layernorm_forward(out, mean, rstd, x, Tensor::zeros({4, 31}, DType::f32), w, b, 1e-5, Tensor()),
      Catch::Contains("layernorm_forward: residual has shape [4, 31], expected [4, 32]"));
  REQUIRE_THROWS_WITH(
      layernorm_forward(out, Tensor::zeros({5}, DType::f32), rstd, x, Tensor(), w, b, 1e-5, Tensor()),
      Catch::Contains("layernorm_forward") && Catch::Contains("M=4"));
  REQUIRE_THROWS_WITH(
      layernorm_forward(out, mean, Tensor::zeros({4}, DType::f64), x, Tensor(), w, b, 1e-5, Tensor()),
      Catch::Contains("layernorm_forward: rstd is f64[4]@cpu, expected f32"));
  REQUIRE_THROWS_WITH(
      layernorm_forward(out, mean, rstd, x, Tensor(), Tensor::zeros({32}, DType::bf16), b, 1e-5, Tensor()),
      Catch::Contains("layernorm_forward: weight bf16[32]@cpu must have the activation dtype f32"));
  REQUIRE_THROWS_WITH(layernorm_forward(out, mean, rstd, x, Tensor(), w, b, -1.0, Tensor()),
                      Catch::Contains("layernorm_forward: eps"));
  REQUIRE_THROWS_WITH(layernorm_backward(out, Tensor::zeros({33}, DType::f32), Tensor(), x, x, mean, rstd, w),
                      Catch::Contains("layernorm_backward: dweight has shape [33], expected [32]"));
  REQUIRE_THROWS_WITH(layernorm_backward(out, Tensor(), Tensor(), Tensor::zeros({4, 33}, DType::f32), x,
                                         mean, rstd, w),
                      Catch::Contains("layernorm_backward: dout has shape [4, 33], expected [4, 32]"));
  Tensor xi = Tensor::zeros({4, 32}, DType::i32);
  REQUIRE_THROWS_WITH(layernorm_forward(xi, mean, rstd, xi, Tensor(), Tensor::zeros({32}, DType::i32),
                                        Tensor::zeros({32}, DType::i32), 1e-5, Tensor()),
                      Catch::Contains("layernorm_forward") && Catch::Contains("i32"));
}

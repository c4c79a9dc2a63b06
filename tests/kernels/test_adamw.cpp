// AdamW (torch and HF variants) against a double reference written from the two optimizers' source,
// over several steps with weight decay and a no-decay group; global gradient norm and clipping
// against a double reference on odd sizes; bad input. CUDA against the CPU: the "adamw" and
// "grad_norm" op table entries.
#include <cmath>
#include <string>
#include <vector>

#include "harness.h"
#include "kernels/adamw.h"
#include "kernels/grad_norm.h"

using namespace br;
using test::random_tensor;
using test::rel_l2;
using test::to_doubles;

namespace {

struct State {
  std::vector<double> p, m, v;
};

// torch.optim.AdamW._single_tensor_adamw and transformers.AdamW (4.11, correct_bias=True), in
// double, with the hyperparameters as the Python floats of their decimal literals.
void reference_step(State& s, const std::vector<double>& g, double lr, double b1, double b2,
                    double eps, double wd, bool hf, bool decay, int64_t t) {
  const double bc1 = 1 - std::pow(b1, double(t)), bc2 = 1 - std::pow(b2, double(t));
  for (size_t i = 0; i < g.size(); ++i) {
    s.v[i] = b2 * s.v[i] + (1 - b2) * g[i] * g[i];
    if (hf) {
      s.m[i] = b1 * s.m[i] + (1 - b1) * g[i];
      s.p[i] -= lr * std::sqrt(bc2) / bc1 * s.m[i] / (std::sqrt(s.v[i]) + eps);
      if (decay && wd > 0) s.p[i] -= lr * wd * s.p[i];
    } else {
      if (decay) s.p[i] *= 1 - lr * wd;
      s.m[i] = s.m[i] + (1 - b1) * (g[i] - s.m[i]);
      s.p[i] -= lr / bc1 * s.m[i] / (std::sqrt(s.v[i]) / std::sqrt(bc2) + eps);
    }
  }
}

// Relative L2 error, with the reference norm floored at `floor` per element: a one-element p or m
// can sit near 0 after a few steps, where only the fp32 rounding of terms of the size of one update
// (lr = 1e-2) is left. (A floor of 1e-3 failed about one run in a hundred, at 2e-6 to 4e-6.)
double rel_vec(const std::vector<double>& a, const std::vector<double>& b, double floor = 1e-2) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), floor * std::sqrt(double(a.size())));
}

}  // namespace

TEST_CASE("adamw_step follows torch.optim.AdamW and transformers.AdamW over several steps", "[adamw]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const std::vector<int64_t> sizes = {1, 7, 33, 127, 1000};
  for (bool hf : {false, true})
    for (double wd_py : {0.0, 0.01, 0.3}) {
      const float wd = float(wd_py);
      INFO("hf=" << hf << " wd=" << wd);
      const AdamWConfig cfg{1e-2f, 0.9f, 0.999f, 1e-8f, wd, hf};
      std::vector<Tensor> P, G, M, V;
      std::vector<bool> decay;
      std::vector<State> ref;
      for (size_t i = 0; i < sizes.size(); ++i) {
        P.push_back(random_tensor({sizes[i]}, DType::f32, rng));
        M.push_back(Tensor::zeros({sizes[i]}, DType::f32));
        V.push_back(Tensor::zeros({sizes[i]}, DType::f32));
        G.push_back(Tensor::empty({sizes[i]}, DType::f32));
        decay.push_back(i % 2 == 0);
        ref.push_back(State{to_doubles(P[i]), std::vector<double>(size_t(sizes[i])),
                            std::vector<double>(size_t(sizes[i]))});
      }
      for (int64_t t = 1; t <= 6; ++t) {
        for (size_t i = 0; i < sizes.size(); ++i) {
          G[i].copy_from(random_tensor({sizes[i]}, DType::f32, rng, Device::cpu, -0.1, 0.1));
          reference_step(ref[i], to_doubles(G[i]), 1e-2, 0.9, 0.999, 1e-8, wd_py, hf, decay[i], t);
        }
        adamw_step(P, G, M, V, decay, cfg, t);
      }
      for (size_t i = 0; i < sizes.size(); ++i) {
        INFO("tensor " << i << " size " << sizes[i]);
        CHECK(rel_vec(to_doubles(P[i]), ref[i].p) < 2e-6);
        CHECK(rel_vec(to_doubles(M[i]), ref[i].m) < 2e-6);
        CHECK(rel_vec(to_doubles(V[i]), ref[i].v) < 2e-6);
      }
    }
}

TEST_CASE("adamw_step single-tensor form at the first step matches the closed form of both variants", "[adamw]") {
  // Step 1 with m = v = 0: m̂ = g, v̂ = g², so torch moves p by −lr·wd·p − lr·g/(|g| + eps) and
  // HF by −lr·sqrt(1−β2)/(1−β1)·0.1g/(sqrt(0.001)|g| + eps) then −lr·wd·p.
  const float lr = 0.1f, wd = 0.5f;
  for (bool hf : {false, true}) {
    Tensor p = Tensor::from_host(std::vector<float>{1.0f, -2.0f, 0.5f}, {3});
    Tensor g = Tensor::from_host(std::vector<float>{0.5f, 0.25f, -4.0f}, {3});
    Tensor m = Tensor::zeros({3}, DType::f32), v = Tensor::zeros({3}, DType::f32);
    adamw_step(p, g, m, v, AdamWConfig{lr, 0.9f, 0.999f, 1e-8f, wd, hf}, 1);
    std::vector<float> pv = p.to_vector<float>(), gv = {0.5f, 0.25f, -4.0f}, p0 = {1.0f, -2.0f, 0.5f};
    for (size_t i = 0; i < 3; ++i) {
      double expect;
      const double gi = gv[i], sgn = gi > 0 ? 1 : -1;
      if (!hf) {
        expect = p0[i] * (1 - 0.1 * 0.5) - 0.1 * sgn * std::fabs(gi) / (std::fabs(gi) + 1e-8);
      } else {
        const double after = p0[i] - 0.1 * std::sqrt(0.001) / 0.1 * (0.1 * gi) / (std::sqrt(0.001) * std::fabs(gi) + 1e-8);
        expect = after - 0.1 * 0.5 * after;
      }
      INFO("hf=" << hf << " i=" << i);
      CHECK(std::fabs(pv[i] - expect) < 1e-6);
    }
    CHECK(std::fabs(m.to_vector<float>()[2] - 0.1f * -4.0f) < 1e-7);
    CHECK(std::fabs(v.to_vector<float>()[2] - 0.001f * 16.0f) < 1e-8);
  }
}

TEST_CASE("global_grad_norm and clip_grad_norm match a double reference", "[grad_norm]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  CHECK(global_grad_norm({}) == 0.0);
  for (DType dt : {DType::f32, DType::f64}) {
    std::vector<Tensor> grads;
    double ss = 0;
    for (int64_t n : {1, 7, 33, 127, 4099, 100003}) {
      grads.push_back(random_tensor({n}, dt, rng));
      for (double x : to_doubles(grads.back())) ss += x * x;
    }
    grads.push_back(random_tensor({3, 5, 7}, dt, rng));
    for (double x : to_doubles(grads.back())) ss += x * x;
    const double norm = std::sqrt(ss);
    CHECK(std::fabs(global_grad_norm(grads) - norm) < 1e-12 * norm);

    std::vector<std::vector<double>> before;
    for (const Tensor& g : grads) before.push_back(to_doubles(g));
    // Above the norm: nothing changes, bit for bit.
    CHECK(std::fabs(clip_grad_norm(grads, norm * 2) - norm) < 1e-12 * norm);
    for (size_t i = 0; i < grads.size(); ++i) CHECK(to_doubles(grads[i]) == before[i]);
    // Below: every gradient scaled by float(max/(norm + 1e-6)), the pre-clip norm returned.
    const double max_norm = norm / 3;
    CHECK(std::fabs(clip_grad_norm(grads, max_norm) - norm) < 1e-12 * norm);
    const float coef = float(max_norm / (norm + 1e-6));
    for (size_t i = 0; i < grads.size(); ++i) {
      std::vector<double> after = to_doubles(grads[i]);
      for (size_t e = 0; e < after.size(); ++e) {
        const double expect = dt == DType::f32 ? double(float(before[i][e]) * coef) : before[i][e] * double(coef);
        REQUIRE(after[e] == expect);
      }
    }
    CHECK(std::fabs(global_grad_norm(grads) - max_norm) < 1e-5 * max_norm);
  }
}

TEST_CASE("adamw and grad norm reject bad input", "[adamw][grad_norm]") {
  using Catch::Matchers::Contains;
  Tensor p = Tensor::zeros({4, 3}, DType::f32), g = Tensor::zeros({4, 3}, DType::f32);
  Tensor m = Tensor::zeros({4, 3}, DType::f32), v = Tensor::zeros({4, 3}, DType::f32);
  const AdamWConfig cfg{1e-3f};
  CHECK_THROWS_WITH(adamw_step(p, Tensor::zeros({3, 4}, DType::f32), m, v, cfg, 1),
                    Contains("adamw_step") && Contains("grad") && Contains("[3, 4]") && Contains("[4, 3]"));
  CHECK_THROWS_WITH(adamw_step(p, g, Tensor::zeros({4, 3}, DType::f64), v, cfg, 1),
                    Contains("adamw_step") && Contains("f64[4, 3]"));
  CHECK_THROWS_WITH(adamw_step(Tensor::zeros({4, 3}, DType::f64), g, m, v, cfg, 1),
                    Contains("adamw_step") && Contains("param"));
  CHECK_THROWS_WITH(adamw_step(p, g, m, v, cfg, 0), Contains("adamw_step") && Contains("step 0"));
  CHECK_THROWS_WITH(adamw_step(p, g, m, v, AdamWConfig{1e-3f, 1.0f}, 1), Contains("betas"));
  CHECK_THROWS_WITH(adamw_step({p, p}, {g}, {m, m}, {v, v}, {true, true}, cfg, 1),
                    Contains("2 params but 1 grads"));
  CHECK_THROWS_WITH(adamw_step({p}, {g}, {m}, {v}, {true, false}, cfg, 1), Contains("2 decay flags"));
  CHECK_THROWS_WITH(global_grad_norm({g, Tensor()}), Contains("global_grad_norm") && Contains("gradient 1"));
  CHECK_THROWS_WITH(global_grad_norm({g, Tensor::zeros({2}, DType::i32)}),
                    Contains("global_grad_norm") && Contains("i32[2]"));
  CHECK_THROWS_WITH(scale_(Tensor::zeros({5}, DType::bf16), 2.0f), Contains("scale_") && Contains("bf16[5]"));
  CHECK_THROWS_WITH(clip_grad_norm({g}, 0.0), Contains("clip_grad_norm") && Contains("max_norm"));
  if (cuda_available()) {
    CHECK_THROWS_WITH(adamw_step(p, g.to(Device::cuda), m, v, cfg, 1), Contains("expected on cpu"));
    CHECK_THROWS_WITH(global_grad_norm({g, g.to(Device::cuda)}), Contains("gradient 1"));
  }
}

TEST_CASE("clip_grad_norm with a non-finite norm poisons the gradients like torch", "[grad_norm]") {
  Tensor a = Tensor::from_host(std::vector<float>{1.0f, NAN, 2.0f}, {3});
  Tensor b = Tensor::from_host(std::vector<float>{3.0f}, {1});
  CHECK(std::isnan(clip_grad_norm({a, b}, 1.0)));
  for (double x : to_doubles(b)) CHECK(std::isnan(x));
  Tensor c = Tensor::from_host(std::vector<float>{INFINITY, 2.0f}, {2});
  CHECK(std::isinf(clip_grad_norm({c}, 1.0)));
  std::vector<float> cv = c.to_vector<float>();
  CHECK(std::isnan(cv[0]));
  CHECK(cv[1] == 0.0f);
}

// matmul and linear: forward against a naive triple loop, gradients against central differences in
// double (every transpose combination, 2-D and batched), accumulation of parameter gradients,
// CUDA against the CPU reference, and the error messages for bad input.
#include <string>
#include <vector>

#include "harness.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"

using namespace br;
using test::dot;
using test::random_tensor;
using test::rel_l2;
using test::to_doubles;
using test::to_f64_cpu;

namespace {

Shape with_batch(const Shape& batch, int64_t r, int64_t c) {
  Shape s = batch;
  s.push_back(r);
  s.push_back(c);
  return s;
}

// C = alpha * op(A) op(B) + beta * C0 by the definition, in double, for shapes [.., r, c], with
// the magnitude |alpha| Σ|a b| + |beta c0| of each element that bounds its rounding error.
struct Reference {
  std::vector<double> value, magnitude;
};
Reference naive_matmul(const Tensor& A, bool ta, const Tensor& B, bool tb, const Tensor& C0,
                       double alpha, double beta) {
  std::vector<double> a = to_doubles(A), b = to_doubles(B), c0 = to_doubles(C0);
  const int64_t M = C0.size(-2), N = C0.size(-1), K = ta ? A.size(-2) : A.size(-1);
  const int64_t G = C0.numel() / (M * N);
  Reference r{std::vector<double>(c0.size()), std::vector<double>(c0.size())};
  for (int64_t g = 0; g < G; ++g)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0, mag = 0;
        for (int64_t k = 0; k < K; ++k) {
          double x = ta ? a[size_t(g * M * K + k * M + m)] : a[size_t(g * M * K + m * K + k)];
          double y = tb ? b[size_t(g * K * N + n * K + k)] : b[size_t(g * K * N + k * N + n)];
          s += x * y;
          mag += std::fabs(x * y);
        }
        size_t i = size_t(g * M * N + m * N + n);
        r.value[i] = alpha * s + (beta == 0 ? 0.0 : beta * c0[i]);
        r.magnitude[i] = std::fabs(alpha) * mag + std::fabs(beta * c0[i]);
      }
  return r;
}

// Each element within (K + 2) roundings of its magnitude.
void require_close(const Tensor& C, const Reference& want, int64_t K) {
  std::vector<double> got = to_doubles(C);
  REQUIRE(got.size() == want.value.size());
  const double eps = C.dtype() == DType::f64 ? 0x1p-52 : 0x1p-23;
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << " got " << got[i] << " want " << want.value[i]);
    REQUIRE(std::fabs(got[i] - want.value[i]) <= double(K + 2) * eps * want.magnitude[i] + 1e-300);
  }
}

struct Dims {
  Shape batch;
  int64_t M, K, N;
};

const std::vector<Dims> kDims = {{{}, 7, 33, 5},  {{}, 1, 1, 1},  {{}, 1, 17, 3},
                                 {{1}, 7, 33, 5}, {{3}, 4, 9, 6}, {{2, 3}, 5, 2, 3}};

}  // namespace

TEST_CASE("matmul matches the definition for every transpose and alpha and beta", "[gemm]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (DType dt : {DType::f64, DType::f32}) {
    for (const Dims& d : kDims) {
      for (int t = 0; t < 4; ++t) {
        const bool ta = t & 1, tb = t & 2;
        INFO(dtype_name(dt) << " batch " << shape_str(d.batch) << " M=" << d.M << " K=" << d.K
                            << " N=" << d.N << " transA=" << ta << " transB=" << tb);
        Tensor A = random_tensor(ta ? with_batch(d.batch, d.K, d.M) : with_batch(d.batch, d.M, d.K),
                                 dt, rng);
        Tensor B = random_tensor(tb ? with_batch(d.batch, d.N, d.K) : with_batch(d.batch, d.K, d.N),
                                 dt, rng);
        Tensor C0 = random_tensor(with_batch(d.batch, d.M, d.N), dt, rng);
        Tensor C = Tensor::empty(C0.shape(), dt);
        test::poison(C);
        matmul(C, A, ta, B, tb);
        require_close(C, naive_matmul(A, ta, B, tb, C0, 1.0, 0.0), d.K);

        C.copy_from(C0);
        matmul(C, A, ta, B, tb, -0.5f, 0.25f);
        require_close(C, naive_matmul(A, ta, B, tb, C0, -0.5, 0.25), d.K);

        C.copy_from(C0);
        matmul(C, A, ta, B, tb, 2.0f, 1.0f);
        require_close(C, naive_matmul(A, ta, B, tb, C0, 2.0, 1.0), d.K);
      }
    }
  }
}

TEST_CASE("matmul gradients by central differences for all transposes in 2-D and batched",
          "[gemm]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const Dims& d : kDims) {
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      INFO("batch " << shape_str(d.batch) << " M=" << d.M << " K=" << d.K << " N=" << d.N
                    << " transA=" << ta << " transB=" << tb);
      const float alpha = 0.75f, beta = -1.5f;
      Tensor A = random_tensor(ta ? with_batch(d.batch, d.K, d.M) : with_batch(d.batch, d.M, d.K),
                               DType::f64, rng);
      Tensor B = random_tensor(tb ? with_batch(d.batch, d.N, d.K) : with_batch(d.batch, d.K, d.N),
                               DType::f64, rng);
      Tensor C0 = random_tensor(with_batch(d.batch, d.M, d.N), DType::f64, rng);
      Tensor G = random_tensor(C0.shape(), DType::f64, rng);
      Tensor C = Tensor::empty(C0.shape(), DType::f64);
      auto loss = [&] {
        C.copy_from(C0);
        matmul(C, A, ta, B, tb, alpha, beta);
        return dot(G, C);
      };
      // C = α op(A) op(B) + β C0: d op(A) = α G op(B)ᵀ, d op(B) = α op(A)ᵀ G, dC0 = β G.
      Tensor dA = Tensor::empty(A.shape(), DType::f64), dB = Tensor::empty(B.shape(), DType::f64);
      if (!ta)
        matmul(dA, G, false, B, !tb, alpha);
      else
        matmul(dA, B, tb, G, true, alpha);
      if (!tb)
        matmul(dB, A, !ta, G, false, alpha);
      else
        matmul(dB, G, true, A, ta, alpha);
      Tensor dC0 = G.clone();
      double* p = dC0.data<double>();
      for (int64_t i = 0; i < dC0.numel(); ++i) p[i] *= beta;
      // The loss is linear in each single element, so central differences are exact up to
      // rounding: a large step keeps that rounding far below the tolerance.
      test::check_gradients("matmul", {A, B, C0}, {dA, dB, dC0}, loss, 1e-2);
    }
  }
}

TEST_CASE("matmul with beta = 0 ignores NaN in C and K = 0 gives beta * C", "[gemm]") {
  std::mt19937_64 rng(7);
  Tensor A = random_tensor({3, 4}, DType::f32, rng), B = random_tensor({4, 2}, DType::f32, rng);
  Tensor C = Tensor::empty({3, 2}, DType::f32);
  test::poison(C);
  matmul(C, A, false, B, false, 1.0f, 0.0f);
  for (double v : to_doubles(C)) CHECK(std::isfinite(v));

  Tensor A0 = Tensor::empty({3, 0}, DType::f64), B0 = Tensor::empty({0, 2}, DType::f64);
  Tensor C1 = Tensor::from_host(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2});
  matmul(C1, A0, false, B0, false, 1.0f, 2.0f);
  CHECK(C1.to_vector<double>() == std::vector<double>{2, 4, 6, 8, 10, 12});
}

TEST_CASE("matmul rejects bad input with the op and the shapes in the message", "[gemm]") {
  Tensor A = Tensor::zeros({7, 33}, DType::f32), B = Tensor::zeros({32, 5}, DType::f32);
  Tensor C = Tensor::zeros({7, 5}, DType::f32);
  CHECK_THROWS_WITH(matmul(C, A, false, B, false),
                    Catch::Contains("matmul") && Catch::Contains("K mismatch") &&
                        Catch::Contains("[7, 33]") && Catch::Contains("[32, 5]"));
  Tensor B2 = Tensor::zeros({33, 5}, DType::f32);
  CHECK_THROWS_WITH(matmul(C, A, true, B2, false),
                    Catch::Contains("matmul") && Catch::Contains("transA=true"));
  CHECK_THROWS_WITH(matmul(Tensor::zeros({7, 6}, DType::f32), A, false, B2, false),
                    Catch::Contains("matmul: C f32[7, 6]"));
  CHECK_THROWS_WITH(
      matmul(C, A, false, Tensor::zeros({33, 5}, DType::f64), false),
      Catch::Contains("matmul") && Catch::Contains("f64[33, 5]") && Catch::Contains("dtype"));
  CHECK_THROWS_WITH(matmul(Tensor::zeros({7, 5}, DType::f64), A, false, B2, false),
                    Catch::Contains("matmul: CPU supports f32 or f64"));
  CHECK_THROWS_WITH(
      matmul(Tensor::zeros({2, 7, 5}, DType::f32), Tensor::zeros({2, 7, 33}, DType::f32), false,
             Tensor::zeros({3, 33, 5}, DType::f32), false),
      Catch::Contains("matmul: batch dimensions differ") && Catch::Contains("[3, 33, 5]"));
  CHECK_THROWS_WITH(matmul(C, Tensor::zeros({1, 7, 33}, DType::f32), false, B2, false),
                    Catch::Contains("matmul") && Catch::Contains("same rank"));
  CHECK_THROWS_WITH(matmul(C, Tensor(), false, B2, false), Catch::Contains("matmul"));
  Tensor S = Tensor::zeros({5, 5}, DType::f32);
  CHECK_THROWS_WITH(matmul(S, S, false, Tensor::zeros({5, 5}, DType::f32), false),
                    Catch::Contains("matmul: C f32[5, 5]") && Catch::Contains("overlaps"));
  Tensor bf = Tensor::zeros({7, 33}, DType::bf16);
  CHECK_THROWS_WITH(matmul(Tensor::zeros({7, 5}, DType::bf16), bf, false,
                           Tensor::zeros({33, 5}, DType::bf16), false),
                    Catch::Contains("matmul: CPU supports f32 or f64"));
}

TEST_CASE("matmul rejects tensors on different devices", "[gemm][cuda]") {
  if (test::skip_without_cuda()) return;
  Tensor A = Tensor::zeros({7, 33}, DType::f32), B = Tensor::zeros({33, 5}, DType::f32);
  Tensor C = Tensor::zeros({7, 5}, DType::f32);
  CHECK_THROWS_WITH(matmul(C, A, false, B.to(Device::cuda), false),
                    Catch::Contains("matmul: tensors on different devices"));
  CHECK_THROWS_WITH(linear_forward(C, A, B.to(Device::cuda), Tensor()),
                    Catch::Contains("linear_forward: tensors on different devices"));
}

TEST_CASE("linear forward and backward by central differences with and without bias", "[gemm]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  struct Case {
    Shape in;
    int64_t N;
    bool bias;
  };
  for (const Case& c : {Case{{7, 33}, 5, true}, Case{{7, 33}, 5, false}, Case{{2, 3, 33}, 5, true},
                        Case{{1, 1, 4}, 1, true}, Case{{3, 1, 6}, 127, false}}) {
    INFO("inp " << shape_str(c.in) << " N=" << c.N << " bias=" << c.bias);
    const int64_t K = c.in.back();
    Shape out_shape = c.in;
    out_shape.back() = c.N;
    Tensor x = random_tensor(c.in, DType::f64, rng), w = random_tensor({c.N, K}, DType::f64, rng);
    Tensor b = c.bias ? random_tensor({c.N}, DType::f64, rng) : Tensor();
    Tensor G = random_tensor(out_shape, DType::f64, rng);
    Tensor y = Tensor::empty(out_shape, DType::f64);
    test::poison(y);
    linear_forward(y, x, w, b);
    // The forward against the definition.
    {
      std::vector<double> xv = to_doubles(x), wv = to_doubles(w), yv = to_doubles(y);
      std::vector<double> bv = c.bias ? to_doubles(b) : std::vector<double>(size_t(c.N), 0.0);
      const int64_t M = x.numel() / K;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < c.N; ++n) {
          double s = bv[size_t(n)];
          for (int64_t k = 0; k < K; ++k) s += xv[size_t(m * K + k)] * wv[size_t(n * K + k)];
          REQUIRE(yv[size_t(m * c.N + n)] == Approx(s).epsilon(1e-12).margin(1e-12));
        }
    }
    auto loss = [&] {
      linear_forward(y, x, w, b);
      return dot(G, y);
    };
    // Parameter gradients start from R and must end at R + gradient (accumulation).
    Tensor dx = Tensor::empty(x.shape(), DType::f64);
    test::poison(dx);
    Tensor R = random_tensor({c.N, K}, DType::f64, rng), Rb = random_tensor({c.N}, DType::f64, rng);
    Tensor dw = R.clone(), db = c.bias ? Rb.clone() : Tensor();
    linear_backward(dx, dw, db, G, x, w);
    Tensor gw = dw.clone();
    {
      double* p = gw.data<double>();
      const double* r = R.data<double>();
      for (int64_t i = 0; i < gw.numel(); ++i) p[i] -= r[i];
    }
    std::vector<Tensor> inputs = {x, w}, grads = {dx, gw};
    if (c.bias) {
      Tensor gb = db.clone();
      double* p = gb.data<double>();
      const double* r = Rb.data<double>();
      for (int64_t i = 0; i < gb.numel(); ++i) p[i] -= r[i];
      inputs.push_back(b);
      grads.push_back(gb);
    }
    // The loss is linear in each single element, so central differences are exact up to
    // rounding: a large step keeps that rounding far below the tolerance.
    test::check_gradients("linear", inputs, grads, loss, 1e-2);
  }
}

TEST_CASE("linear_backward accumulates dweight and dbias and overwrites dinp and skips undefined",
          "[gemm]") {
  std::mt19937_64 rng(11);
  Tensor x = random_tensor({4, 3, 9}, DType::f32, rng), w = random_tensor({6, 9}, DType::f32, rng);
  Tensor dy = random_tensor({4, 3, 6}, DType::f32, rng);
  Tensor dx = Tensor::empty(x.shape(), DType::f32), dw = Tensor::zeros({6, 9}, DType::f32),
         db = Tensor::zeros({6}, DType::f32);
  test::poison(dx);
  linear_backward(dx, dw, db, dy, x, w);
  Tensor dx1 = dx.clone(), dw1 = dw.clone(), db1 = db.clone();
  linear_backward(dx, dw, db, dy, x, w);
  CHECK(rel_l2(dx, dx1) == 0.0);
  std::vector<double> w1 = to_doubles(dw1), w2 = to_doubles(dw), b1 = to_doubles(db1),
                      b2 = to_doubles(db);
  for (size_t i = 0; i < w1.size(); ++i) CHECK(w2[i] == Approx(2 * w1[i]).epsilon(1e-6));
  for (size_t i = 0; i < b1.size(); ++i) CHECK(b2[i] == Approx(2 * b1[i]).epsilon(1e-6));
  // Only dweight: dinp and dbias untouched (poisoned stays poisoned, undefined is fine).
  Tensor dw2 = Tensor::zeros({6, 9}, DType::f32);
  linear_backward(Tensor(), dw2, Tensor(), dy, x, w);
  CHECK(rel_l2(dw2, dw1) < 1e-6);
  Tensor dx2 = Tensor::empty(x.shape(), DType::f32);
  linear_backward(dx2, Tensor(), Tensor(), dy, x, w);
  CHECK(rel_l2(dx2, dx1) == 0.0);
}

TEST_CASE("linear rejects bad input naming the op and the shapes", "[gemm]") {
  Tensor x = Tensor::zeros({7, 33}, DType::f32), w = Tensor::zeros({5, 32}, DType::f32);
  Tensor y = Tensor::zeros({7, 5}, DType::f32), b = Tensor::zeros({5}, DType::f32);
  CHECK_THROWS_WITH(linear_forward(y, x, w, b), Catch::Contains("linear_forward") &&
                                                    Catch::Contains("[7, 33]") &&
                                                    Catch::Contains("[5, 32]"));
  Tensor w33 = Tensor::zeros({5, 33}, DType::f32);
  CHECK_THROWS_WITH(linear_forward(y, x, w33, Tensor::zeros({4}, DType::f32)),
                    Catch::Contains("linear_forward") && Catch::Contains("bias"));
  CHECK_THROWS_WITH(linear_forward(Tensor::zeros({6, 5}, DType::f32), x, w33, b),
                    Catch::Contains("linear_forward") && Catch::Contains("rows"));
  CHECK_THROWS_WITH(linear_forward(y, x, Tensor::zeros({5, 33}, DType::f64), b),
                    Catch::Contains("linear_forward") && Catch::Contains("weight"));
  CHECK_THROWS_WITH(
      linear_backward(Tensor(), Tensor::zeros({5, 32}, DType::f32), Tensor(), y, x, w33),
      Catch::Contains("linear_backward") && Catch::Contains("dweight"));
  CHECK_THROWS_WITH(
      linear_backward(Tensor(), Tensor::zeros({5, 33}, DType::f64), Tensor(), y, x, w33),
      Catch::Contains("linear_backward") && Catch::Contains("dweight"));
  CHECK_THROWS_WITH(
      linear_backward(Tensor::zeros({7, 32}, DType::f32), Tensor(), Tensor(), y, x, w33),
      Catch::Contains("linear_backward") && Catch::Contains("dinp"));
  CHECK_THROWS_WITH(
      linear_backward(Tensor(), Tensor(), Tensor(), Tensor::zeros({6, 5}, DType::f32), x, w33),
      Catch::Contains("linear_backward") && Catch::Contains("[6, 5]"));
}

// ---- CUDA against the CPU reference (f64 on the same, already rounded, inputs) ----

TEST_CASE("matmul on CUDA matches the CPU reference in f32 and tf32 and bf16 with bf16 or f32 C",
          "[gemm][cuda]") {
  if (test::skip_without_cuda()) return;
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  struct Types {
    DType ab, c;
    bool tf32;
  };
  for (Types ty : {Types{DType::f32, DType::f32, false}, Types{DType::f32, DType::f32, true},
                   Types{DType::bf16, DType::bf16, false}, Types{DType::bf16, DType::f32, false}}) {
    set_cuda_tf32(ty.tf32);
    for (const Dims& d :
         {Dims{{}, 7, 33, 5}, Dims{{}, 1, 1, 1}, Dims{{3}, 65, 127, 33}, Dims{{2, 3}, 17, 64, 9}}) {
      for (int t = 0; t < 4; ++t) {
        const bool ta = t & 1, tb = t & 2;
        INFO(dtype_name(ty.ab) << "->" << dtype_name(ty.c) << " tf32=" << ty.tf32 << " batch "
                               << shape_str(d.batch) << " M=" << d.M << " K=" << d.K << " N=" << d.N
                               << " transA=" << ta << " transB=" << tb);
        Tensor A = random_tensor(ta ? with_batch(d.batch, d.K, d.M) : with_batch(d.batch, d.M, d.K),
                                 ty.ab, rng, Device::cuda);
        Tensor B = random_tensor(tb ? with_batch(d.batch, d.N, d.K) : with_batch(d.batch, d.K, d.N),
                                 ty.ab, rng, Device::cuda);
        Tensor C0 = random_tensor(with_batch(d.batch, d.M, d.N), ty.c, rng, Device::cuda);
        // bf16 products are exact in fp32, so with an f32 C only the accumulation order differs.
        // TF32 rounds each input to 10 mantissa bits: about 4e-4 relative per product.
        const double tol = ty.tf32                ? 2e-3
                           : ty.c == DType::bf16  ? test::tolerance(DType::bf16)
                           : ty.ab == DType::bf16 ? 1e-5
                                                  : test::tolerance(DType::f32);
        Tensor C = Tensor::empty(C0.shape(), ty.c, Device::cuda);
        test::poison(C);
        matmul(C, A, ta, B, tb);
        Tensor ref = Tensor::empty(C0.shape(), DType::f64);
        matmul(ref, to_f64_cpu(A), ta, to_f64_cpu(B), tb);
        CHECK(rel_l2(C, ref) <= tol);
        C.copy_from(C0);
        matmul(C, A, ta, B, tb, -0.5f, 0.75f);
        Tensor ref2 = to_f64_cpu(C0);
        matmul(ref2, to_f64_cpu(A), ta, to_f64_cpu(B), tb, -0.5f, 0.75f);
        CHECK(rel_l2(C, ref2) <= tol);
      }
    }
  }
  set_cuda_tf32(false);
}

TEST_CASE("linear on CUDA matches the CPU reference in f32 and bf16 with f32 master grads",
          "[gemm][cuda]") {
  if (test::skip_without_cuda()) return;
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  // With a bias, the forward runs as one cuBLASLt call with the BIAS epilogue; without, as GemmEx.
  for (bool with_bias : {true, false}) {
    for (DType dt : {DType::f32, DType::bf16}) {
      for (DType gdt : {dt, DType::f32}) {
        INFO("compute " << dtype_name(dt) << " grads " << dtype_name(gdt) << " bias " << with_bias);
        const Device cu = Device::cuda;
        Tensor x = random_tensor({2, 9, 33}, dt, rng, cu), w = random_tensor({65, 33}, dt, rng, cu);
        Tensor b = with_bias ? random_tensor({65}, dt, rng, cu) : Tensor();
        Tensor dy = random_tensor({2, 9, 65}, dt, rng, cu);
        Tensor dw0 = random_tensor({65, 33}, gdt, rng, cu), db0 = random_tensor({65}, gdt, rng, cu);
        Tensor y = Tensor::empty({2, 9, 65}, dt, cu), dx = Tensor::empty(x.shape(), dt, cu);
        test::poison(y);
        test::poison(dx);
        Tensor dw = dw0.clone(), db = db0.clone();
        linear_forward(y, x, w, b);
        linear_backward(dx, dw, db, dy, x, w);

        Tensor X = to_f64_cpu(x), W = to_f64_cpu(w), DY = to_f64_cpu(dy);
        Tensor Bv = with_bias ? to_f64_cpu(b) : Tensor();
        Tensor Y = Tensor::empty(y.shape(), DType::f64), DX = Tensor::empty(x.shape(), DType::f64);
        Tensor DW = to_f64_cpu(dw0), DB = to_f64_cpu(db0);
        linear_forward(Y, X, W, Bv);
        linear_backward(DX, DW, DB, DY, X, W);
        const double tol = test::tolerance(dt);
        CHECK(rel_l2(y, Y) <= tol);
        CHECK(rel_l2(dx, DX) <= tol);
        CHECK(rel_l2(dw, DW) <=
              test::tolerance(gdt == DType::f32 && dt == DType::f32 ? DType::f32 : DType::bf16));
        CHECK(rel_l2(db, DB) <=
              test::tolerance(gdt == DType::f32 && dt == DType::f32 ? DType::f32 : DType::bf16));
      }
    }
  }
}

// matmul and linear: forward against a naive triple loop (every transpose combination, 2-D and
// batched), beta = 0 and K = 0, accumulation and skipped gradients, and the error messages for bad
// input. Gradients and CUDA (f32, tf32, bf16) against the CPU: the "matmul" and "linear" op table
// entries.
#include <omp.h>
#include <fstream>

#include <string>
#include <vector>

#include "harness.h"
#include "kernels/cast.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"

using namespace br;
using test::random_tensor;
using test::rel_l2;
using test::to_doubles;

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

TEST_CASE("linear_forward matches the definition with and without bias", "[gemm]") {
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
    Tensor y = Tensor::empty(out_shape, DType::f64);
    test::poison(y);
    linear_forward(y, x, w, b);
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

namespace {
struct ThreadCase {
  int64_t M, N, K;
  bool ta, tb;
  float beta;
};
// Each product at 1 and 2 threads, with CPU bf16 products on or off: the same bits.
void check_same_bits_across_threads(const std::vector<ThreadCase>& cases, uint64_t seed,
                                    bool bf16) {
  const int saved = omp_get_max_threads();
  std::mt19937_64 rng(seed);
  for (const ThreadCase& c : cases) {
    Tensor A = random_tensor(c.ta ? Shape{c.K, c.M} : Shape{c.M, c.K}, DType::f32, rng);
    Tensor B = random_tensor(c.tb ? Shape{c.N, c.K} : Shape{c.K, c.N}, DType::f32, rng);
    Tensor C0 = random_tensor({c.M, c.N}, DType::f32, rng);
    std::vector<std::vector<float>> out;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      set_cpu_bf16_matmul(bf16);
      Tensor C = C0.clone();
      matmul(C, A, c.ta, B, c.tb, 1.0f, c.beta);
      set_cpu_bf16_matmul(false);
      out.push_back(C.to_vector<float>());
    }
    INFO("M " << c.M << " N " << c.N << " K " << c.K << " ta " << c.ta << " bf16 " << bf16);
    CHECK(out[0] == out[1]);
  }
  omp_set_num_threads(saved);
}
}  // namespace

// docs/DEVELOPING.md, "Threads and bits": the f32 CPU products of a BERT step give the same bits
// at 1 and 2 threads (the library splits the output, never the sum over K).
TEST_CASE("matmul gives the same bits at 1 and 2 threads on BERT's linear shapes", "[gemm]") {
  check_same_bits_across_threads(
      {{2048, 1536, 384, false, true, 0.0f}, {512, 384, 1536, false, false, 0.0f},
       {384, 384, 2048, true, false, 1.0f}, {1536, 384, 512, true, false, 1.0f},
       {4096, 384, 384, false, true, 0.0f}},
      17, false);
}

namespace {
// x rounded to bf16 (nearest even), as f32.
Tensor bf16_rounded(const Tensor& x) {
  std::vector<float> v = x.to_vector<float>();
  for (float& f : v) f = bf16_to_float(float_to_bf16(f));
  return Tensor::from_host(v, x.shape());
}
// set_cpu_bf16_matmul for one scope.
struct Bf16Matmul {
  Bf16Matmul() { set_cpu_bf16_matmul(true); }
  ~Bf16Matmul() { set_cpu_bf16_matmul(false); }
};
}  // namespace

TEST_CASE("cpu_bf16_matmul_native follows the CPU's flags", "[kernels][gemm][bf16]") {
  std::ifstream in("/proc/cpuinfo");
  std::string line, flags;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      flags = " " + line.substr(line.find(':') + 1) + " ";
      break;
    }
  if (flags.empty()) return br::test::skip("no flags line in /proc/cpuinfo");
  auto has = [&](const char* f) { return flags.find(std::string(" ") + f + " ") != std::string::npos; };
  INFO("flags:" << flags);
  // AVX512-BF16 or AMX: oneDNN's brgemm has a bf16 kernel. No AVX-512 at all: none.
  if (has("avx512_bf16") || has("amx_bf16")) CHECK(cpu_bf16_matmul_native());
  if (!has("avx512f")) CHECK_FALSE(cpu_bf16_matmul_native());
  // The fallback switch for tests does not change the answer.
  const bool native = cpu_bf16_matmul_native();
  set_cpu_bf16_matmul_fallback(true);
  CHECK(cpu_bf16_matmul_native() == native);
  set_cpu_bf16_matmul_fallback(false);
}

TEST_CASE("CPU bf16 products: the definition over bf16-rounded A and B, f32 accumulation, the "
          "same bits at 1 and 2 threads", "[gemm][bf16]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  std::vector<Dims> dims = kDims;
  dims.push_back({{}, 130, 67, 95});   // awkward sizes past one block
  dims.push_back({{}, 300, 384, 257});
  dims.push_back({{12}, 33, 32, 33});  // attention-like batched products
  const int saved = omp_get_max_threads();
  // oneDNN's bf16 kernel where this CPU has one, then the sgemm fallback of CPUs without
  for (bool fallback : {false, true})
  for (const Dims& d : dims) {
    set_cpu_bf16_matmul_fallback(fallback);
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      INFO("fallback " << fallback << " batch " << shape_str(d.batch) << " M=" << d.M << " K="
                       << d.K << " N=" << d.N << " transA=" << ta << " transB=" << tb);
      Tensor A = random_tensor(ta ? with_batch(d.batch, d.K, d.M) : with_batch(d.batch, d.M, d.K),
                               DType::f32, rng);
      Tensor B = random_tensor(tb ? with_batch(d.batch, d.N, d.K) : with_batch(d.batch, d.K, d.N),
                               DType::f32, rng);
      Tensor C0 = random_tensor(with_batch(d.batch, d.M, d.N), DType::f32, rng);
      const Tensor A16 = bf16_rounded(A), B16 = bf16_rounded(B);
      Tensor C = Tensor::empty(C0.shape(), DType::f32);
      std::vector<std::vector<float>> by_threads;
      for (int threads : {1, 2}) {
        omp_set_num_threads(threads);
        Bf16Matmul on;
        test::poison(C);
        matmul(C, A, ta, B, tb);
        require_close(C, naive_matmul(A16, ta, B16, tb, C0, 1.0, 0.0), d.K);
        C.copy_from(C0);
        matmul(C, A, ta, B, tb, -0.5f, 0.25f);
        require_close(C, naive_matmul(A16, ta, B16, tb, C0, -0.5, 0.25), d.K);
        C.copy_from(C0);
        matmul(C, A, ta, B, tb, 2.0f, 1.0f);
        require_close(C, naive_matmul(A16, ta, B16, tb, C0, 2.0, 1.0), d.K);
        by_threads.push_back(C.to_vector<float>());
      }
      omp_set_num_threads(saved);
      CHECK(by_threads[0] == by_threads[1]);
      // the mode really rounds: f32 products of the unrounded inputs differ
      if (d.K >= 32) {
        Tensor F = C0.clone();
        matmul(F, A, ta, B, tb, 2.0f, 1.0f);
        CHECK(rel_l2(F, C) > 1e-4);
      }
    }
  }
  set_cpu_bf16_matmul_fallback(false);
  // f64 products are never rounded.
  Tensor A = random_tensor({9, 40}, DType::f64, rng), B = random_tensor({40, 7}, DType::f64, rng);
  Tensor C = Tensor::empty({9, 7}, DType::f64), D = Tensor::empty({9, 7}, DType::f64);
  matmul(D, A, false, B, false);
  {
    Bf16Matmul on;
    matmul(C, A, false, B, false);
  }
  CHECK(C.to_vector<double>() == D.to_vector<double>());
}

// A model's bf16 weight copies (BertForSequenceClassification::compute_weights) enter the products
// as bf16 tensors: the same bits as rounding the f32 operand inside the product. linear_* take
// them too; without the mode a bf16 operand with f32 ones is an error.
TEST_CASE("CPU bf16 products take operands already in bf16, with the same bits", "[gemm][bf16]") {
  std::mt19937_64 rng(17);
  std::vector<Dims> dims = kDims;
  dims.push_back({{}, 130, 67, 95});
  dims.push_back({{3}, 33, 32, 33});
  for (bool fallback : {false, true})
    for (const Dims& d : dims)
      for (int t = 0; t < 4; ++t) {
        const bool ta = t & 1, tb = t & 2;
        INFO("fallback " << fallback << " batch " << shape_str(d.batch) << " M=" << d.M
                         << " K=" << d.K << " N=" << d.N << " transA=" << ta << " transB=" << tb);
        set_cpu_bf16_matmul_fallback(fallback);
        Tensor A = random_tensor(ta ? with_batch(d.batch, d.K, d.M) : with_batch(d.batch, d.M, d.K),
                                 DType::f32, rng);
        Tensor B = random_tensor(tb ? with_batch(d.batch, d.N, d.K) : with_batch(d.batch, d.K, d.N),
                                 DType::f32, rng);
        Tensor C0 = random_tensor(with_batch(d.batch, d.M, d.N), DType::f32, rng);
        const Tensor A16 = cast(A, DType::bf16), B16 = cast(B, DType::bf16);
        Bf16Matmul on;
        std::vector<std::vector<float>> r;
        using Operands = std::pair<const Tensor*, const Tensor*>;
        for (auto [a, b] : {Operands{&A, &B}, {&A16, &B}, {&A, &B16}, {&A16, &B16}}) {
          Tensor C = C0.clone();
          matmul(C, *a, ta, *b, tb, -0.5f, 0.25f);
          r.push_back(C.to_vector<float>());
        }
        CHECK(r[1] == r[0]);
        CHECK(r[2] == r[0]);
        CHECK(r[3] == r[0]);
      }
  set_cpu_bf16_matmul_fallback(false);
  Tensor x = random_tensor({5, 12}, DType::f32, rng), w = random_tensor({7, 12}, DType::f32, rng);
  Tensor b = random_tensor({7}, DType::f32, rng), w16 = cast(w, DType::bf16);
  Tensor y = Tensor::empty({5, 7}, DType::f32), y16 = Tensor::empty({5, 7}, DType::f32);
  CHECK_THROWS_WITH(matmul(y, x, false, w16, true), Catch::Contains("bf16 product mode"));
  CHECK_THROWS_WITH(linear_forward(y, x, w16, b), Catch::Contains("linear_forward") &&
                                                      Catch::Contains("bf16 product mode"));
  Bf16Matmul on;
  linear_forward(y, x, w, b);
  linear_forward(y16, x, w16, b);
  CHECK(y16.to_vector<float>() == y.to_vector<float>());
  Tensor g = random_tensor({5, 7}, DType::f32, rng);
  Tensor dx = Tensor::empty({5, 12}, DType::f32), dx16 = Tensor::empty({5, 12}, DType::f32);
  Tensor dw = Tensor::zeros({7, 12}, DType::f32), dw16 = Tensor::zeros({7, 12}, DType::f32);
  linear_backward(dx, dw, Tensor(), g, x, w);
  linear_backward(dx16, dw16, Tensor(), g, x, w16);
  CHECK(dx16.to_vector<float>() == dx.to_vector<float>());
  CHECK(dw16.to_vector<float>() == dw.to_vector<float>());
  // a bf16 operand is not a way into other dtype mixes
  CHECK_THROWS_WITH(matmul(y, x, false, cast(w, DType::f16), true),
                    Catch::Contains("share a dtype"));
}

TEST_CASE("CPU bf16 products give the same bits at 1 and 2 threads on BERT's linear shapes",
          "[gemm][bf16]") {
  check_same_bits_across_threads(
      {{2048, 1536, 384, false, true, 0.0f}, {512, 384, 1536, false, false, 0.0f},
       {384, 384, 2048, true, false, 1.0f}, {1536, 384, 512, true, false, 1.0f},
       {768, 3072, 4096, true, false, 1.0f}},
      19, true);
}

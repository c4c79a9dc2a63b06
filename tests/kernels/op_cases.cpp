// The entries of the op table (op_table.h), one function per op family in the order of kernels/.
// Sizes: `sizes` are small and awkward (7, 33, 127, batch 1, length 1) because central differences
// perturb every element; `device_sizes` add the shapes BERT runs, which take the CUDA kernels'
// multi-block and vectorised paths.
#include <cmath>
#include <utility>

#include "inputs.h"
#include "kernels/activation.h"
#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/bias.h"
#include "kernels/cast.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/embedding.h"
#include "kernels/fused.h"
#include "kernels/gelu.h"
#include "kernels/gemm.h"
#include "kernels/grad_norm.h"
#include "kernels/layernorm.h"
#include "kernels/linear.h"
#include "kernels/loss.h"
#include "kernels/padding.h"
#include "kernels/permute.h"
#include "kernels/softmax.h"
#include "kernels/sparse_pack.h"
#include "op_table.h"

namespace br::test {

namespace {

constexpr DType f32 = DType::f32, f64 = DType::f64, f16 = DType::f16, bf16 = DType::bf16;
const Precision kF32{};
const Precision kBF16{bf16, bf16, bf16};
Precision exact(DType act, DType param) { return Precision{act, param, act, true}; }
Precision exact(DType t) { return exact(t, t); }

// Shapes whose middle dimension may be absent (0).
Shape shape3(int64_t a, int64_t b, int64_t c) { return b ? Shape{a, b, c} : Shape{a, c}; }

// a·t as an f64 CPU tensor: an analytic gradient that is not an op output.
Tensor scaled(const Tensor& t, double a) {
  std::vector<double> v = to_doubles(t);
  for (double& x : v) x *= a;
  return Tensor::from_host(v, t.shape());
}

// u8 [numel] on the CPU: 1 where t is nonzero (a dropout keep pattern).
Tensor nonzero(const Tensor& t) {
  std::vector<uint8_t> v;
  for (double x : to_doubles(t)) v.push_back(x != 0.0);
  return Tensor::from_host(v, {int64_t(v.size())});
}

// The probabilities of masked keys (mask [B, Sk] != 0), in order, as f64 on the CPU.
Tensor at_masked_keys(const Tensor& probs, const Tensor& mask) {
  const std::vector<double> p = to_doubles(probs);
  const std::vector<float> m = mask.to(Device::cpu).to_vector<float>();
  const int64_t Sk = probs.size(-1), per_b = probs.numel() / probs.size(0);
  std::vector<double> v;
  for (int64_t i = 0; i < probs.numel(); ++i)
    if (m[size_t(i / per_b * Sk + i % Sk)] != 0.0f) v.push_back(p[size_t(i)]);
  return Tensor::from_host(v, {int64_t(v.size())});
}

// The tensor counts of a model's parameter list: odd sizes, and the CUDA chunk boundary (2048).
std::vector<int64_t> tensor_sizes(bool large) {
  if (large) return {1, 7, 2047, 2048, 2049, 100003, 768 * 768};
  return {1, 7, 33, 127};
}

// ---- gemm.h, linear.h, bias.h ----

OpCase matmul_case() {
  OpCase c;
  c.name = "matmul";
  c.covers = {"matmul", "set_cuda_tf32", "cuda_tf32"};
  // Batch [G1, G2] without its zeros; C0 = 0: beta 0 and a poisoned C, else alpha 0.75, beta -1.5.
  c.dims = "G1 G2 M K N transA transB C0";
  c.sizes = cross({{0, 0, 7, 33, 5},
                   {0, 0, 1, 1, 1},
                   {0, 0, 1, 17, 3},
                   {1, 0, 7, 33, 5},
                   {3, 0, 4, 9, 6},
                   {2, 3, 5, 2, 3}},
                  {{0, 1}, {0, 1}, {1}});
  // C0 = 0 on CUDA only: on the CPU, beta = 0 is test_gemm.cpp's "ignores NaN in C".
  c.device_sizes =
      cross({{0, 0, 7, 33, 5}, {0, 0, 1, 1, 1}, {3, 0, 65, 127, 33}, {2, 3, 17, 64, 9}},
            {{0, 1}, {0, 1}, {0, 1}});
  c.precisions = {kF32, Precision{f32, f32, f32, false, true}, kBF16, Precision{bf16, f32, f32}};
  // TF32 rounds each input to 10 mantissa bits: about 4e-4 relative per product.
  c.tol = [](const Precision& p, DType out) { return p.tf32 ? 2e-3 : tolerance(out); };
  // The loss is linear in each element, so central differences are exact up to rounding, which a
  // large step keeps far below the tolerance.
  c.fd_step = 1e-2;
  c.run = [](OpRun& e, const Dims& d) {
    Shape batch;
    for (int i : {0, 1})
      if (d[size_t(i)]) batch.push_back(d[size_t(i)]);
    auto bs = [&](int64_t r, int64_t cols) {
      Shape s = batch;
      s.push_back(r);
      s.push_back(cols);
      return s;
    };
    const int64_t M = d[2], K = d[3], N = d[4];
    const bool ta = d[5], tb = d[6], with_c = d[7];
    const float alpha = with_c ? 0.75f : 1.0f, beta = with_c ? -1.5f : 0.0f;
    Tensor A = e.in("A", ta ? bs(K, M) : bs(M, K)), B = e.in("B", tb ? bs(N, K) : bs(K, N));
    Tensor C = with_c ? e.out_init("C", e.in("C0", bs(M, N), Role::param))
                      : e.out("C", bs(M, N), Role::param);
    matmul(C, A, ta, B, tb, alpha, beta);
    // d op(A) = α G op(B)ᵀ, d op(B) = α op(A)ᵀ G, dC0 = β G: products that need G in A's dtype.
    if (!e.backward() || e.dtype(Role::act) != e.dtype(Role::param)) return;
    Tensor G = e.upstream("C"), dA = e.grad("A"), dB = e.grad("B");
    if (!ta)
      matmul(dA, G, false, B, !tb, alpha);
    else
      matmul(dA, B, tb, G, true, alpha);
    if (!tb)
      matmul(dB, A, !ta, G, false, alpha);
    else
      matmul(dB, G, true, A, ta, alpha);
    if (with_c) e.grad_is("C0", scaled(G, beta));
  };
  return c;
}

OpCase linear_case() {
  OpCase c;
  c.name = "linear";
  c.covers = {"linear_forward", "linear_backward"};
  c.dims = "B S K N bias";  // inp [B, S, K] ([B, K] when S = 0), weight [N, K]
  c.sizes = {
      {7, 0, 33, 5, 1}, {7, 0, 33, 5, 0}, {2, 3, 33, 5, 1}, {1, 1, 4, 1, 1}, {3, 1, 6, 127, 0}};
  // With a bias the CUDA forward is one cuBLASLt call with the BIAS epilogue; without, GemmEx.
  c.device_sizes = {{2, 9, 33, 65, 1}, {2, 9, 33, 65, 0}, {7, 0, 33, 5, 1},
                    {1, 1, 4, 1, 1},   {3, 1, 6, 127, 0}, {4, 128, 768, 768, 1}};
  c.precisions = {kF32, kBF16, Precision{bf16, bf16, f32}};
  c.tol = [](const Precision& p, DType) { return tolerance(p.act); };
  c.fd_step = 1e-2;  // linear in each element (matmul)
  c.run = [](OpRun& e, const Dims& d) {
    const int64_t B = d[0], S = d[1], K = d[2], N = d[3];
    Tensor x = e.in("inp", shape3(B, S, K)), w = e.in("weight", {N, K});
    Tensor b = d[4] ? e.in("bias", {N}) : Tensor();
    Tensor y = e.out("out", shape3(B, S, N));
    linear_forward(y, x, w, b);
    if (!e.backward()) return;
    Tensor dw = e.acc_grad("weight"), db = d[4] ? e.acc_grad("bias") : Tensor();
    linear_backward(e.grad("inp"), dw, db, e.upstream("out"), x, w);
  };
  return c;
}

OpCase bias_case() {
  OpCase c;
  c.name = "bias_add";
  c.covers = {"bias_add_forward", "bias_add_backward"};
  c.dims = "B S N";  // [B, S, N] ([B, N] when S = 0)
  c.sizes = {{7, 0, 5}, {2, 3, 33}, {1, 0, 1}, {1, 0, 127}, {300, 0, 3}};
  c.device_sizes = {{7, 0, 5}, {2, 3, 33}, {1, 0, 1}, {1, 0, 127}, {1000, 0, 77}, {2048, 0, 768}};
  c.precisions = {kF32, kBF16, Precision{bf16, bf16, f32}};
  c.tol = [](const Precision& p, DType) { return tolerance(p.act); };
  c.fd_step = 1e-2;  // linear in each element
  c.run = [](OpRun& e, const Dims& d) {
    const Shape s = shape3(d[0], d[1], d[2]);
    Tensor x = e.in("inp", s), b = e.in("bias", {d[2]}), y = e.out("out", s);
    bias_add_forward(y, x, b);
    if (!e.backward()) return;
    Tensor dy = e.upstream("out");
    e.grad_is("inp", dy);
    bias_add_backward(e.acc_grad("bias"), dy);
  };
  return c;
}

// ---- activation.h, gelu.h, elementwise.h, cast.h ----

// An elementwise op over any shape: awkward shapes, and on CUDA one more that spans many blocks.
OpCase elementwise_case(std::string name, std::vector<std::string> covers, std::vector<Dims> sizes,
                        Dims large) {
  OpCase c;
  c.name = std::move(name);
  c.covers = std::move(covers);
  c.dims = "shape";
  c.sizes = std::move(sizes);
  c.device_sizes = c.sizes;
  c.device_sizes.push_back(std::move(large));
  c.precisions = {kF32, kBF16};
  return c;
}

OpCase tanh_case() {
  OpCase c = elementwise_case("tanh", {"tanh_forward", "tanh_backward"},
                              {{7, 33}, {1}, {2, 1, 127}}, {32, 768});
  c.run = [](OpRun& e, const Dims& s) {
    Tensor x = e.in("inp", s, Role::act, {-3, 3}), y = e.out("out", s);
    tanh_forward(y, x);
    if (!e.backward()) return;
    tanh_backward(e.grad("inp"), e.upstream("out"), e.feed("out", y));
  };
  return c;
}

OpCase gelu_case() {
  OpCase c = elementwise_case("gelu", {"gelu_forward", "gelu_backward"}, {{7, 33}, {1}, {3, 1, 5}},
                              {8, 128, 3072});
  c.device_sizes.push_back({33, 129});
  c.fd_tol = 1e-5;
  c.run = [](OpRun& e, const Dims& s) {
    // Float erf is accurate to ~1e-7·|x| absolutely: at x ≪ 0, GELU(x) is tiny and its relative
    // error large, which a few-element tensor does not average out. Bound the absolute one too.
    Tensor x = e.in("inp", s, Role::act, {-4, 4}), y = e.out("out", s, Role::act, 1, 1);
    gelu_forward(y, x);
    if (!e.backward()) return;
    gelu_backward(e.grad("inp", 1, 1), e.upstream("out"), x);
  };
  return c;
}

OpCase add_case() {
  OpCase c = elementwise_case("add", {"add"}, {{7, 33}, {1}, {2, 1, 127}}, {1000, 77});
  c.fd_step = 1e-2;  // linear
  c.run = [](OpRun& e, const Dims& s) {
    Tensor a = e.in("a", s), b = e.in("b", s), y = e.out("out", s);
    add(y, a, b);
    if (!e.backward()) return;
    Tensor dy = e.upstream("out");
    e.grad_is("a", dy);
    e.grad_is("b", dy);
  };
  return c;
}

OpCase axpy_case() {
  OpCase c = elementwise_case("axpy", {"axpy"}, {{7, 33}, {1}, {2, 1, 127}}, {1000, 77});
  c.fd_step = 1e-2;  // linear
  c.run = [](OpRun& e, const Dims& s) {
    Tensor x = e.in("x", s), y = e.out_init("out", e.in("out before", s));
    axpy(y, -0.75f, x);
    if (!e.backward()) return;
    Tensor dy = e.upstream("out");
    e.grad_is("out before", dy);
    e.grad_is("x", scaled(dy, -0.75));
  };
  return c;
}

OpCase cast_case() {
  OpCase c = elementwise_case("cast", {"cast", "fill"}, {{7, 33}, {1}, {3, 1, 129}}, {1000, 77});
  // act = in, param = out; rounding to nearest even on both backends.
  c.precisions = {exact(f32, bf16), exact(bf16, f32), exact(f32, f16), exact(f16, f32),
                  exact(f64, bf16), exact(f64, f16),  exact(f32, f64)};
  c.has_backward = false;
  c.run = [](OpRun& e, const Dims& s) {
    Tensor x = e.in("in", s, Role::act, {-3, 3}), y = e.out("out", s, Role::param);
    cast(y, x);
    e.exact("cast(in, dtype)", cast(x, e.dtype(Role::param)));
    Tensor f = e.out("filled", s, Role::param);
    fill(f, 0.1);
  };
  return c;
}

// ---- layernorm.h, softmax.h, dropout.h ----

OpCase layernorm_case() {
  OpCase c;
  c.name = "layernorm";
  c.covers = {"layernorm_forward", "layernorm_backward"};
  c.dims = "B S C residual";  // rows [B, S] of C
  c.sizes = {{7, 1, 33, 1}, {1, 1, 33, 1}, {2, 3, 5, 0}, {4, 1, 1, 1}};
  c.device_sizes = {{7, 1, 33, 1},   {1, 1, 33, 1},   {2, 3, 5, 0},    {4, 1, 1, 1},
                    {64, 1, 768, 0}, {3, 17, 768, 1}, {8, 128, 768, 1}};
  c.precisions = {kF32, Precision{bf16, f32, f32}, kBF16};
  c.fd_tol = 1e-5;
  c.run = [](OpRun& e, const Dims& d) {
    const int64_t C = d[2], M = d[0] * d[1];
    const Shape s{d[0], d[1], C};
    Tensor inp = e.in("inp", s, Role::act, {-2, 3}), res = d[3] ? e.in("residual", s) : Tensor();
    Tensor w = e.in("weight", {C}, Role::param, {0.5, 1.5}), b = e.in("bias", {C}, Role::param);
    Tensor out = e.out("out", s), xs = e.out("xsum", s);
    Tensor mean = e.out("mean", {M}, Role::stat), rstd = e.out("rstd", {M}, Role::stat);
    layernorm_forward(out, mean, rstd, inp, res, w, b, 1e-5, xs);
    if (!e.backward()) return;
    // With C = 1, dinp = 0 exactly, but g − mean(g) contracted to an FMA leaves rstd (~316) times
    // the rounding of g: bounded absolutely.
    Tensor dx = e.grad("inp", 1, C == 1 ? 100 : 0);
    if (d[3]) e.grad_is("residual", dx);
    // Parameter gradients sum over every row: a looser bound than the rows themselves.
    Tensor dw = e.acc_grad("weight", 10), db = e.acc_grad("bias", 10);
    layernorm_backward(dx, dw, db, e.upstream("out"), e.feed("xsum", xs), e.feed("mean", mean),
                       e.feed("rstd", rstd), w);
  };
  return c;
}

OpCase softmax_case() {
  OpCase c;
  c.name = "softmax";
  c.covers = {"softmax_forward", "softmax_backward"};
  c.dims = "B N Sq Sk masked";
  c.sizes = {{2, 3, 5, 33, 1}, {1, 2, 3, 1, 0}, {3, 1, 1, 7, 1}};
  c.device_sizes = {{2, 3, 5, 33, 1},   {1, 2, 3, 1, 0}, {3, 1, 1, 7, 1},
                    {2, 12, 7, 512, 1}, {3, 1, 2, 1, 0}, {4, 12, 128, 128, 1}};
  c.precisions = {kF32, kBF16};
  c.fd_tol = 1e-5;
  c.run = [](OpRun& e, const Dims& d) {
    const Shape s{d[0], d[1], d[2], d[3]};
    const float scale = 0.37f;
    Tensor x = e.in("scores", s, Role::act, {-4, 4});
    auto make_mask = [&](std::mt19937_64& rng) { return random_key_mask(d[0], d[3], rng, -1e4f); };
    Tensor mask = d[4] ? e.data("mask", make_mask) : Tensor();
    Tensor p = e.out("probs", s);
    softmax_forward(p, x, mask, scale);
    if (mask.defined() && e.compared()) e.exact("probs of masked keys", at_masked_keys(p, mask));
    if (!e.backward()) return;
    softmax_backward(e.grad("scores"), e.upstream("probs"), e.feed("probs", p), scale);
  };
  return c;
}

OpCase dropout_case() {
  OpCase c;
  c.name = "dropout";
  c.covers = {"dropout_forward", "dropout_backward"};
  c.dims = "rows n p%";  // [rows, n] ([rows] when n = 0)
  c.sizes = {{7, 33, 25}, {1, 1, 25}, {5, 0, 25}, {3, 7, 0}};
  c.device_sizes = {{7, 33, 10}, {1, 1, 25}, {5, 0, 10}, {3, 7, 0}, {8, 512 * 768, 10}};
  // Masks are bit-identical across backends and dtypes ("kept" results); values in f32 too.
  c.precisions = {kF32, exact(f32), kBF16};
  c.run = [](OpRun& e, const Dims& d) {
    const Shape s = d[1] ? Shape{d[0], d[1]} : Shape{d[0]};
    const float p = float(d[2]) / 100.0f;
    const DropoutKey key{0xfeedbeefcafef00dull, 1234, 56};
    Tensor ids = e.data("example_ids", [&](std::mt19937_64& rng) {
      std::vector<int32_t> v(static_cast<size_t>(d[0]));
      for (auto& x : v) x = int32_t(rng() % 1000000);
      return ids_tensor(v, {d[0]});
    });
    Tensor x = e.in("inp", s, Role::act, {0.5, 1.5}), y = e.out("out", s);
    dropout_forward(y, x, p, key, ids);
    if (e.compared()) e.exact("kept by forward", nonzero(y));
    if (!e.backward()) return;
    Tensor dx = e.grad("inp");
    dropout_backward(dx, e.upstream("out"), p, key, ids);
    if (e.compared()) e.exact("kept by backward", nonzero(dx));
  };
  return c;
}

// ---- fused.h ----

// Example ids [B] for dropout masks, random per case.
Tensor random_example_ids(OpRun& e, int64_t B) {
  return e.data("example_ids", [&](std::mt19937_64& rng) {
    std::vector<int32_t> v(static_cast<size_t>(B));
    for (auto& x : v) x = int32_t(rng() % 1000000);
    return ids_tensor(v, {B});
  });
}

OpCase bias_gelu_case() {
  OpCase c;
  c.name = "bias_gelu";
  c.covers = {"bias_gelu_forward", "bias_gelu_backward"};
  c.dims = "B S N dbias";  // [B, S, N] ([B, N] when S = 0); dbias 0: no bias gradient
  c.sizes = {{7, 0, 5, 1}, {2, 3, 33, 1}, {1, 0, 1, 1}, {3, 0, 3, 0}, {30, 0, 3, 1}};
  c.device_sizes = {{7, 0, 5, 1},      {2, 3, 33, 1},     {1, 0, 1, 1},
                    {3, 0, 3, 0},      {1000, 0, 77, 1},  {16, 128, 1536, 1},
                    {16, 128, 1536, 0}, {129, 0, 1000, 1}};
  c.precisions = {kF32, kBF16, Precision{bf16, bf16, f32}};
  c.fd_tol = 1e-5;
  c.run = [](OpRun& e, const Dims& d) {
    const Shape s = shape3(d[0], d[1], d[2]);
    // As the gelu entry: GELU of a very negative input is tiny, bound the absolute error too.
    Tensor x = e.in("inp", s, Role::act, {-3, 3}), b = e.in("bias", {d[2]}, Role::act, {-1, 1});
    Tensor pre = e.out("pre", s), y = e.out("out", s, Role::act, 1, 1);
    bias_gelu_forward(pre, y, x, b);
    if (!e.backward()) return;
    Tensor dx = e.grad("inp", 1, 1);
    bias_gelu_backward(dx, d[3] ? e.acc_grad("bias", 10) : Tensor(), e.upstream("out"),
                       e.feed("pre", pre));
  };
  return c;
}

OpCase dropout_bias_case() {
  OpCase c;
  c.name = "dropout_bias";
  c.covers = {"dropout_bias_backward"};
  c.dims = "B S N p% dbias";  // [B, S, N] ([B, N] when S = 0); dropout samples along B
  c.sizes = {{7, 0, 33, 25, 1}, {2, 3, 5, 25, 1}, {1, 1, 1, 25, 1}, {3, 2, 3, 0, 1},
             {2, 3, 7, 25, 0}};
  c.device_sizes = {{7, 0, 33, 25, 1},    {2, 3, 5, 25, 1},      {1, 1, 1, 25, 1},
                    {3, 2, 3, 0, 1},      {2, 3, 7, 25, 0},      {16, 128, 384, 10, 1},
                    {16, 128, 1536, 10, 0}, {5, 27, 1000, 10, 1}};
  c.precisions = {kF32, kBF16, Precision{bf16, bf16, f32}};
  c.fd_step = 1e-2;  // linear in each element
  c.run = [](OpRun& e, const Dims& d) {
    const Shape s = shape3(d[0], d[1], d[2]);
    const float p = float(d[3]) / 100.0f;
    const DropoutKey key{0x5eed5eed12345678ull, 99, 4};
    Tensor ids = random_example_ids(e, d[0]);
    Tensor x = e.in("inp", s), b = e.in("bias", {d[2]}), t = e.out("inp + bias", s);
    bias_add_forward(t, x, b);
    Tensor y = e.out("out", s);
    dropout_forward(y, t, p, key, ids);
    if (!e.backward()) return;
    Tensor dx = e.grad("inp");
    dropout_bias_backward(dx, d[4] ? e.acc_grad("bias", 10) : Tensor(), e.upstream("out"), p, key,
                          ids);
    if (e.compared()) e.exact("kept by backward", nonzero(dx));
  };
  return c;
}

OpCase bias_dropout_residual_layernorm_case() {
  OpCase c;
  c.name = "bias_dropout_residual_layernorm";
  c.covers = {"bias_dropout_residual_layernorm_forward", "dropout_bias_backward"};
  c.dims = "B S C p% residual";  // rows [B, S] of C; dropout samples along B
  c.sizes = {{7, 1, 33, 25, 1}, {1, 1, 33, 0, 1}, {2, 3, 5, 25, 0}, {3, 2, 3, 25, 1}};
  c.device_sizes = {{7, 1, 33, 25, 1},     {1, 1, 33, 0, 1},      {2, 3, 5, 25, 0},
                    {3, 2, 3, 25, 1},      {16, 128, 384, 10, 1}, {3, 17, 768, 10, 1},
                    {8, 16, 1000, 10, 0}};
  c.precisions = {kF32, Precision{bf16, f32, f32}, kBF16};
  c.fd_tol = 1e-5;
  c.run = [](OpRun& e, const Dims& d) {
    const int64_t C = d[2], M = d[0] * d[1];
    const Shape s{d[0], d[1], C};
    const float p = float(d[3]) / 100.0f;
    const DropoutKey key{0xabad1deaull, 17, 9};
    Tensor ids = random_example_ids(e, d[0]);
    Tensor inp = e.in("inp", s, Role::act, {-2, 3}), b = e.in("bias", {C});
    Tensor res = d[4] ? e.in("residual", s) : Tensor();
    Tensor w = e.in("weight", {C}, Role::param, {0.5, 1.5}), lb = e.in("ln_bias", {C}, Role::param);
    Tensor out = e.out("out", s), xs = e.out("xsum", s);
    Tensor mean = e.out("mean", {M}, Role::stat), rstd = e.out("rstd", {M}, Role::stat);
    bias_dropout_residual_layernorm_forward(out, mean, rstd, xs, inp, b, p, key, ids, res, w, lb,
                                            1e-5);
    if (!e.backward()) return;
    // dxsum is residual's gradient (or a scratch result without one); dropout_bias_backward
    // carries it to inp and bias.
    Tensor dxs = d[4] ? e.grad("residual") : e.out("dxsum", s);
    layernorm_backward(dxs, e.acc_grad("weight", 10), e.acc_grad("ln_bias", 10), e.upstream("out"),
                       e.feed("xsum", xs), e.feed("mean", mean), e.feed("rstd", rstd), w);
    dropout_bias_backward(e.grad("inp"), e.acc_grad("bias", 10), dxs, p, key, ids);
  };
  return c;
}

// ---- attention.h, permute.h, padding.h ----

// Materialized or flash attention with the awkward key mask and example ids for dropout.
OpCase attention_case(bool flash) {
  OpCase c;
  c.name = flash ? "flash_attention" : "attention";
  c.covers = flash ? std::vector<std::string>{"flash_attention_forward", "flash_attention_backward"}
                   : std::vector<std::string>{"attention_forward", "attention_backward"};
  // Q: the query rows, the first Q of S when 0 < Q < S (materialized on the CPU), else all S.
  c.dims = "B N S D p% Q";
  c.sizes = cross({{2, 3, 7, 5}, {1, 1, 1, 3}, {2, 2, 5, 4}, {3, 1, 6, 2}},
                  {{0, 25}, flash ? std::vector<int64_t>{0} : std::vector<int64_t>{0, 1, 3}});
  // The fused CUDA kernel needs D = 64.
  std::vector<Dims> device = {{2, 3, 7, 64}, {1, 2, 33, 64}, {2, 12, 128, 64}, {1, 1, 1, 64}};
  if (!flash) device.push_back({2, 2, 77, 5});
  c.device_sizes = cross(device, {{0, 10}, {0}});
  c.precisions = {kF32, kBF16};
  c.tol = [](const Precision&, DType out) { return out == bf16 ? 2e-2 : tolerance(out); };
  // Flash backward recomputes P from an fp32 lse: ~1e-7 relative error even in double.
  c.fd_tol = flash ? 2e-4 : 1e-5;
  c.run = [flash](OpRun& e, const Dims& d) {
    const int64_t B = d[0], N = d[1], S = d[2], D = d[3];
    const int64_t Sq = d[5] > 0 && d[5] < S ? d[5] : S;
    const float p = float(d[4]) / 100.0f, scale = 1.0f / std::sqrt(float(D));
    // The dropout rows at a stride past S, as the model sets it (its max_position_embeddings).
    const DropoutKey key{0x1234abcd5678ull, 7, 3, uint32_t(S + 3)};
    const Shape sh{B, N, S, D}, qsh{B, N, Sq, D};
    Tensor q = e.in("q", qsh, Role::act, {-2, 2}), k = e.in("k", sh, Role::act, {-2, 2});
    Tensor v = e.in("v", sh);
    Tensor mask =
        e.data("mask", [&](std::mt19937_64&) { return key_mask(awkward_lengths(B, S), S); });
    Tensor ids =
        p > 0 ? e.data("example_ids", [&](std::mt19937_64&) { return example_ids(B); }) : Tensor();
    Tensor out = e.out("out", qsh);
    if (!flash) {
      Tensor probs = e.out("probs", {B, N, Sq, S});
      attention_forward(out, probs, q, k, v, mask, scale, p, key, ids);
      if (!e.backward()) return;
      attention_backward(e.grad("q"), e.grad("k"), e.grad("v"), e.upstream("out"), q, k, v,
                         e.feed("probs", probs), scale, p, key, ids);
      return;
    }
    // lse is a log: a lone score near 0 (S = 1) makes its relative error large, so bound the
    // absolute one too.
    Tensor lse = e.out("lse", {B, N, S}, Role::f32, 1, 1);
    flash_attention_forward(out, lse, q, k, v, mask, scale, p, key, ids);
    if (!e.backward()) return;
    // With S = 1, dq = dk = 0 exactly, but flash forms dS from two dot products summed in
    // different orders: only rounding noise of O(1) terms is left, bounded absolutely.
    const double abs = S == 1 ? 1 : 0;
    flash_attention_backward(e.grad("q", 1, abs), e.grad("k", 1, abs), e.grad("v"),
                             e.upstream("out"), q, k, v, e.feed("out", out), e.feed("lse", lse),
                             mask, scale, p, key, ids);
  };
  return c;
}

OpCase heads_case(bool split) {
  OpCase c;
  c.name = split ? "split_heads" : "merge_heads";
  c.covers = {split ? "split_heads" : "merge_heads"};
  c.dims = "B S N D";  // [B, S, N·D] <-> [B, N, S, D]
  c.sizes = {{2, 7, 3, 5}, {1, 3, 2, 1}, {1, 1, 1, 1}, {1, 33, 4, 1}, {3, 1, 2, 16}};
  c.device_sizes = {{2, 7, 3, 5},  {1, 1, 1, 1},   {1, 33, 4, 1},
                    {3, 1, 2, 16}, {2, 5, 12, 64}, {8, 128, 12, 64}};
  c.precisions = {exact(f32), exact(bf16), exact(f16), exact(f64)};
  c.fd_step = 1e-2;  // linear
  c.run = [split](OpRun& e, const Dims& d) {
    const int64_t B = d[0], S = d[1], N = d[2], D = d[3];
    const Shape tokens{B, S, N * D}, heads{B, N, S, D};
    if (split) {
      Tensor x = e.in("in", tokens), h = e.out("out", heads);
      split_heads(h, x, N);
      if (e.backward()) merge_heads(e.grad("in"), e.upstream("out"));
    } else {
      Tensor h = e.in("in", heads), x = e.out("out", tokens);
      merge_heads(x, h);
      if (e.backward()) split_heads(e.grad("in"), e.upstream("out"), N);
    }
  };
  return c;
}

OpCase padding_case() {
  OpCase c;
  c.name = "zero_padding_rows";
  c.covers = {"zero_padding_rows"};
  c.dims = "B G S R";  // x [B, G, S, R] ([B, S, R] when G = 0), token mask [B, S]
  c.sizes = {{1, 0, 1, 1}, {3, 0, 5, 4}, {2, 3, 7, 5}, {4, 2, 9, 9}};
  c.device_sizes = {{1, 0, 1, 1}, {3, 0, 77, 33}, {2, 12, 129, 64}, {5, 4, 131, 131}};
  c.precisions = {exact(f32), exact(f64), exact(f16), exact(bf16)};
  c.has_backward = false;
  c.run = [](OpRun& e, const Dims& d) {
    const Shape s = d[1] ? Shape{d[0], d[1], d[2], d[3]} : Shape{d[0], d[2], d[3]};
    Tensor mask = e.data("token_mask",
                         [&](std::mt19937_64& rng) { return random_token_mask(d[0], d[2], rng); });
    zero_padding_rows(e.out_init("x", e.in("x before", s)), mask);
  };
  return c;
}

// ---- embedding.h, loss.h ----

OpCase embedding_case() {
  OpCase c;
  c.name = "embedding";
  c.covers = {"embedding_forward", "embedding_backward"};
  c.dims = "V H M pad% accumulate";  // table [V, H], M ids, a fraction of them 0 ([PAD])
  c.sizes = {{5, 7, 13, 40, 0}, {5, 7, 13, 40, 1}, {1, 1, 1, 0, 0}, {11, 33, 6, 0, 1}};
  // BERT's vocabulary and a [PAD]-heavy batch: hot rows for the deterministic CUDA backward.
  c.device_sizes = {{5, 7, 13, 40, 0},
                    {5, 7, 13, 40, 1},
                    {1, 1, 1, 0, 0},
                    {11, 33, 6, 0, 1},
                    {30522, 768, 4096, 60, 0}};
  // act = out/dout, param = table, grad = dtable.
  c.precisions = {kF32, Precision{f32, bf16, f32}, Precision{bf16, f32, f32},
                  Precision{bf16, bf16, f32}};
  c.deterministic = true;
  c.run = [](OpRun& e, const Dims& d) {
    const int64_t V = d[0], H = d[1], M = d[2];
    Tensor ids = e.data("ids", [&](std::mt19937_64& rng) {
      std::vector<int32_t> v = random_ids(M, V, rng, double(d[3]) / 100.0);
      v[size_t(std::min<int64_t>(5, M - 1))] = int32_t(V - 1);
      return ids_tensor(v, {M});
    });
    Tensor table = e.in("table", {V, H}, Role::param);
    Tensor out = d[4] ? e.out_init("out", e.in("out before", {M, H})) : e.out("out", {M, H});
    embedding_forward(out, ids, table, d[4] != 0);
    if (!e.backward()) return;
    embedding_backward(e.acc_grad("table"), e.upstream("out"), ids);
  };
  return c;
}

OpCase cross_entropy_case() {
  OpCase c;
  c.name = "cross_entropy";
  c.covers = {"cross_entropy_forward", "cross_entropy_backward"};
  c.dims = "B C";
  c.sizes = {{7, 3}, {1, 2}, {5, 33}, {3, 1}};
  c.device_sizes = {{7, 3}, {1, 2}, {5, 33}, {3, 1}, {32, 2}, {1, 1}, {300, 77}};
  c.precisions = {kF32, kBF16};
  c.run = [](OpRun& e, const Dims& d) {
    Tensor z = e.in("logits", {d[0], d[1]}, Role::act, {-3, 3});
    Tensor y =
        e.data("labels", [&](std::mt19937_64& rng) { return random_labels(d[0], d[1], rng); });
    // A confident row has a loss near 0, log(1 + e^−margin), where float rounding is relatively
    // large: bound the absolute error too (values are O(1)).
    Tensor loss = e.out("loss", {1}, Role::stat, 1, 1);
    cross_entropy_forward(loss, z, y);
    if (!e.backward()) return;
    cross_entropy_backward(e.grad("logits", 1, 1), z, y, e.upstream_value("loss"));
  };
  return c;
}

OpCase mse_case() {
  OpCase c;
  c.name = "mse";
  c.covers = {"mse_forward", "mse_backward"};
  c.dims = "B column";  // preds [B, 1] or [B]
  c.sizes = {{7, 0}, {5, 1}, {1, 0}};
  c.device_sizes = {{7, 0}, {5, 1}, {1, 1}, {7, 1}, {1000, 1}};
  c.precisions = {kF32, Precision{bf16, f32, f32}, kBF16};  // act = preds, param = targets
  c.run = [](OpRun& e, const Dims& d) {
    const Shape s = d[1] ? Shape{d[0], 1} : Shape{d[0]};
    Tensor p = e.in("preds", s, Role::act, {-2, 2}),
           t = e.in("targets", {d[0]}, Role::param, {0, 5});
    Tensor loss = e.out("loss", {1}, Role::stat);
    mse_forward(loss, p, t);
    if (!e.backward()) return;
    mse_backward(e.grad("preds"), p, t, e.upstream_value("loss"));
  };
  return c;
}

// ---- sparse_pack.h ----

OpCase sparse_pack_case() {
  OpCase c;
  c.name = "sparse_pack";
  c.covers = {"pack_topk", "pack_topk_into", "unpack", "sparse_pack_bytes", "sparse_mask_row_bytes"};
  // x [B, n] ([B, G, n / G] when G > 0); ties: 0 none, 1 every value 0, 2 values on a 0.25 grid.
  c.dims = "B n G prune% ties";
  c.sizes = cross({{1, 7, 0, 80}, {3, 33, 0, 50}, {2, 127, 0, 99}, {4, 65, 5, 0}}, {{0, 1, 2}});
  c.device_sizes = cross({{1, 7, 0, 80},
                          {3, 33, 0, 50},
                          {2, 127, 0, 99},
                          {4, 65, 5, 0},
                          {3, 4097, 0, 80},
                          {2, 12 * 64 * 64, 0, 80},
                          {2, 9001, 0, 80},
                          {3, 1000, 0, 30},
                          {5, 300, 0, 100},
                          {1, 100000, 0, 90}},
                         {{0, 1, 2}});
  // act = x, param = the kept values' dtype; bit-identical on both backends.
  c.precisions = {exact(f32, f16), exact(f32, f32),  exact(f32, bf16),
                  exact(f16, f16), exact(bf16, f32), exact(f16, bf16)};
  c.has_backward = false;
  c.run = [](OpRun& e, const Dims& d) {
    const int64_t B = d[0], n = d[1], G = d[2];
    const Shape s = G ? Shape{B, G, n / G} : Shape{B, n};
    const double ratio = double(d[3]) / 100.0;
    const Init init = d[4] == 1 ? Init{0, 0} : d[4] == 2 ? Init{-1, 1, 0.25} : Init{-3, 3};
    Tensor x = e.in("x", s, Role::act, init);
    const DType vd = e.dtype(Role::param);
    SparsePack p = pack_topk(x, ratio, vd);
    e.check(p.bytes() == sparse_pack_bytes(B, n, ratio, vd), "pack_topk holds sparse_pack_bytes");
    e.check(p.mask.size(1) == sparse_mask_row_bytes(n), "mask rows of sparse_mask_row_bytes");
    e.exact("mask", p.mask);
    e.exact("values", p.values);
    // pack_topk_into by chunks of samples (sample 0, then the rest) into row views of one pack:
    // the same bytes as the whole pack.
    SparsePack q = p;
    q.mask = Tensor::empty(p.mask.shape(), DType::u8, x.device());
    q.values = Tensor::empty(p.values.shape(), vd, x.device());
    for (auto [b0, b1] : {std::pair<int64_t, int64_t>{0, 1}, {1, B}}) {
      if (b0 >= b1) continue;
      SparsePack part = q;
      part.shape[0] = part.batch = b1 - b0;
      part.mask = q.mask.rows(b0, b1);
      part.values = q.values.rows(b0 * q.k, b1 * q.k);
      pack_topk_into(part, x.rows(b0, b1));
    }
    auto bytes = [](const Tensor& t) {
      std::vector<uint8_t> v(t.nbytes());
      t.copy_to_host(v.data(), v.size());
      return v;
    };
    e.check(bytes(q.mask) == bytes(p.mask) && bytes(q.values) == bytes(p.values),
            "pack_topk_into by chunks of samples writes pack_topk's bytes");
    unpack(e.out("unpack(out, p)", s), p);
    e.exact("unpack(p)", unpack(p));
  };
  return c;
}

// ---- grad_norm.h, adamw.h ----

OpCase grad_norm_case() {
  OpCase c;
  c.name = "grad_norm";
  c.covers = {"global_grad_norm", "clip_grad_norm", "scale_"};
  c.dims = "large";  // the tensor sizes of tensor_sizes(large)
  c.sizes = {{0}};
  c.device_sizes = {{0}, {1}};
  c.precisions = {kF32, kBF16};
  c.has_backward = false;
  c.deterministic = true;
  c.run = [](OpRun& e, const Dims& d) {
    std::vector<Tensor> g;
    for (int64_t n : tensor_sizes(d[0] != 0)) {
      const std::string name = "grad " + std::to_string(g.size());
      g.push_back(e.out_init(name, e.in(name + " before", {n})));
    }
    g.push_back(e.out_init("grad [3, 5, 7]", e.in("grad [3, 5, 7] before", {3, 5, 7})));
    const double norm = global_grad_norm(g);
    e.scalar("global_grad_norm", norm, 1e-6);
    clip_grad_norm(g, norm / 2);  // scale_ on each gradient
    e.scalar("global_grad_norm after clipping", global_grad_norm(g), tolerance(e.dtype(Role::act)));
  };
  return c;
}

OpCase adamw_case() {
  OpCase c;
  c.name = "adamw";
  c.covers = {"adamw_step"};
  c.dims = "hf large single";  // single: the one-tensor form, one call per tensor
  c.sizes = {{0, 0, 0}, {1, 0, 0}, {0, 0, 1}, {1, 0, 1}};
  c.device_sizes = {{0, 0, 0}, {1, 0, 0}, {0, 0, 1}, {1, 0, 1}, {0, 1, 0}, {1, 1, 0}};
  c.precisions = {kF32};
  c.reference = f32;  // AdamW runs on fp32 state only
  c.tol = [](const Precision&, DType) { return 1e-6; };
  c.has_backward = false;
  c.run = [](OpRun& e, const Dims& d) {
    const AdamWConfig cfg{2e-3f, 0.9f, 0.98f, 1e-6f, 0.01f, d[0] != 0};
    const std::vector<int64_t> sizes = tensor_sizes(d[1] != 0);
    std::vector<Tensor> P, M, V;
    std::vector<bool> decay;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const std::string n = " " + std::to_string(i);
      P.push_back(e.out_init("param" + n, e.in("param" + n + " before", {sizes[i]})));
      M.push_back(e.out_init("m" + n, e.in("m" + n + " before", {sizes[i]}, Role::act, {0, 0})));
      V.push_back(e.out_init("v" + n, e.in("v" + n + " before", {sizes[i]}, Role::act, {0, 0})));
      decay.push_back(i % 3 != 1);
    }
    for (int64_t t = 1; t <= 4; ++t) {
      std::vector<Tensor> G;
      for (size_t i = 0; i < sizes.size(); ++i)
        G.push_back(e.in("grad " + std::to_string(i) + " step " + std::to_string(t), {sizes[i]}));
      if (!d[2]) {
        adamw_step(P, G, M, V, decay, cfg, t);
        continue;
      }
      for (size_t i = 0; i < sizes.size(); ++i) {
        AdamWConfig one = cfg;
        if (!decay[i]) one.weight_decay = 0.0f;
        adamw_step(P[i], G[i], M[i], V[i], one, t);
      }
    }
  };
  return c;
}

}  // namespace

const std::vector<OpCase>& op_table() {
  static const std::vector<OpCase> table = {
      matmul_case(),        linear_case(),        bias_case(),       tanh_case(),
      gelu_case(),          add_case(),           axpy_case(),       cast_case(),
      layernorm_case(),     softmax_case(),       dropout_case(),    bias_gelu_case(),
      dropout_bias_case(),  bias_dropout_residual_layernorm_case(),    attention_case(false),
      attention_case(true), heads_case(true),     heads_case(false), padding_case(),
      embedding_case(),     cross_entropy_case(), mse_case(),        sparse_pack_case(),
      grad_norm_case(),     adamw_case(),
  };
  return table;
}

}  // namespace br::test

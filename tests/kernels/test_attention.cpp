// Attention (materialized and flash): forward against a naive double reference written from the
// definition, padded keys, Back Razor probabilities, flash gradients against materialized ones, bad
// input. Gradients by central differences (mask with mostly padded samples, dropout on) and CUDA
// against the CPU: the "attention" and "flash_attention" op table entries.
#include <cmath>
#include <string>
#include <vector>

#include "inputs.h"
#include "kernels/attention.h"

using namespace br;
using test::awkward_lengths;
using test::example_ids;
using test::key_mask;
using test::random_tensor;
using test::rel_l2;
using test::to_doubles;

namespace {

struct Dims {
  int64_t B, N, S, D;
};

std::string dims_str(const Dims& d) {
  return "B=" + std::to_string(d.B) + " N=" + std::to_string(d.N) + " S=" + std::to_string(d.S) +
         " D=" + std::to_string(d.D);
}

struct Reference {
  std::vector<double> out, probs, lse;
};

// The definition, in double: S_ij = scale·q_i·k_j + mask_j, P = softmax_j, out_i = Σ_j z_ij P_ij v_j.
Reference naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                          double scale, float p, const DropoutKey& key, const Tensor& ids) {
  const int64_t B = q.size(0), N = q.size(1), S = q.size(2), D = q.size(3);
  std::vector<double> Q = to_doubles(q), K = to_doubles(k), V = to_doubles(v);
  std::vector<double> M = mask.defined() ? to_doubles(mask) : std::vector<double>(size_t(B * S), 0);
  std::vector<int32_t> I = p > 0 ? ids.to(Device::cpu).to_vector<int32_t>() : std::vector<int32_t>();
  Reference r;
  r.out.assign(size_t(B * N * S * D), 0);
  r.probs.assign(size_t(B * N * S * S), 0);
  r.lse.assign(size_t(B * N * S), 0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < S; ++i) {
        const int64_t bn = b * N + n;
        std::vector<double> s(static_cast<size_t>(S));
        double mx = -INFINITY;
        for (int64_t j = 0; j < S; ++j) {
          double acc = 0;
          for (int64_t d = 0; d < D; ++d) acc += Q[size_t((bn * S + i) * D + d)] * K[size_t((bn * S + j) * D + d)];
          s[size_t(j)] = scale * acc + M[size_t(b * S + j)];
          mx = std::max(mx, s[size_t(j)]);
        }
        double sum = 0;
        for (int64_t j = 0; j < S; ++j) sum += std::exp(s[size_t(j)] - mx);
        r.lse[size_t(bn * S + i)] = mx + std::log(sum);
        for (int64_t j = 0; j < S; ++j) {
          const double P = std::exp(s[size_t(j)] - mx) / sum;
          r.probs[size_t((bn * S + i) * S + j)] = P;
          double z = 1;
          if (p > 0) {
            const int64_t L = attention_dropout_stride(key, uint32_t(S));
            const uint32_t e = uint32_t((n * L + i) * L + j);
            z = dropout_uniform(key, uint32_t(I[size_t(b)]), e) >= p ? 1.0 / (1.0 - double(p)) : 0.0;
          }
          for (int64_t d = 0; d < D; ++d)
            r.out[size_t((bn * S + i) * D + d)] += z * P * V[size_t((bn * S + j) * D + d)];
        }
      }
  return r;
}

double rel_l2_vec(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

// Relative L2 in fp32 is ~1e-7; in double ~1e-15.
double ref_tol(DType t) { return t == DType::f64 ? 1e-12 : 2e-6; }

const DropoutKey kKey{0x1234abcd5678ull, 7, 3};

}  // namespace

TEST_CASE("attention_forward and flash_attention_forward match the definition", "[attention]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const std::vector<Dims> dims = {{1, 1, 1, 1}, {2, 3, 7, 5}, {1, 2, 33, 16}, {3, 1, 7, 64},
                                  {2, 2, 1, 3}, {2, 1, 130, 8}};  // 130: three 64-key tiles
  for (DType dt : {DType::f64, DType::f32})
    for (const Dims& d : dims)
      for (bool masked : {false, true})
        for (float p : {0.0f, 0.3f, -1.0f}) {
          // p < 0: p = 0.3 with the dropout row length L > S (the model's max_position_embeddings).
          DropoutKey key = kKey;
          if (p < 0) p = 0.3f, key.length = uint32_t(d.S + 9);
          INFO(dtype_name(dt) << " " << dims_str(d) << " masked=" << masked << " p=" << p
                              << " L=" << key.length);
          Tensor q = random_tensor({d.B, d.N, d.S, d.D}, dt, rng, Device::cpu, -2, 2);
          Tensor k = random_tensor({d.B, d.N, d.S, d.D}, dt, rng, Device::cpu, -2, 2);
          Tensor v = random_tensor({d.B, d.N, d.S, d.D}, dt, rng);
          Tensor mask = masked ? key_mask(awkward_lengths(d.B, d.S), d.S) : Tensor();
          Tensor ids = p > 0 ? example_ids(d.B) : Tensor();
          const float scale = 1.0f / std::sqrt(float(d.D));
          Tensor out = Tensor::empty(q.shape(), dt), probs = Tensor::empty({d.B, d.N, d.S, d.S}, dt);
          test::poison(out);
          test::poison(probs);
          attention_forward(out, probs, q, k, v, mask, scale, p, key, ids);
          Reference r = naive_attention(q, k, v, mask, scale, p, key, ids);
          CHECK(rel_l2_vec(to_doubles(out), r.out) < ref_tol(dt));
          CHECK(rel_l2_vec(to_doubles(probs), r.probs) < ref_tol(dt));

          Tensor fout = Tensor::empty(q.shape(), dt), lse = Tensor::empty({d.B, d.N, d.S}, DType::f32);
          test::poison(fout);
          test::poison(lse);
          flash_attention_forward(fout, lse, q, k, v, mask, scale, p, key, ids);
          CHECK(rel_l2_vec(to_doubles(fout), r.out) < ref_tol(dt));
          CHECK(rel_l2_vec(to_doubles(lse), r.lse) < 1e-6);
        }
}

TEST_CASE("attention probabilities of padded keys are exactly zero and rows sum to one", "[attention]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const int64_t B = 3, N = 2, S = 9, D = 4;
  const std::vector<int64_t> len = {9, 1, 4};
  for (DType dt : {DType::f64, DType::f32}) {
    Tensor q = random_tensor({B, N, S, D}, dt, rng, Device::cpu, -3, 3);
    Tensor k = random_tensor({B, N, S, D}, dt, rng, Device::cpu, -3, 3);
    Tensor v = random_tensor({B, N, S, D}, dt, rng);
    Tensor out = Tensor::empty(q.shape(), dt), probs = Tensor::empty({B, N, S, S}, dt);
    attention_forward(out, probs, q, k, v, key_mask(len, S), 0.5f, 0.0f, kKey, Tensor());
    std::vector<double> P = to_doubles(probs);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < S; ++i) {
          double sum = 0;
          for (int64_t j = 0; j < S; ++j) {
            const double x = P[size_t((((b * N) + n) * S + i) * S + j)];
            if (j >= len[size_t(b)]) CHECK(x == 0.0);
            sum += x;
          }
          CHECK(std::fabs(sum - 1.0) < 1e-6);
        }
  }
}

TEST_CASE("flash attention gradients agree with the materialized ones in double", "[attention]") {
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  // The CPU flash kernels work on 64 x 64 tiles: S = 65, 150 cross tile edges, with partial tiles.
  const std::vector<Dims> dims = {{2, 3, 7, 5},  {1, 1, 1, 3},  {2, 2, 5, 4},
                                  {3, 1, 6, 2},  {2, 1, 65, 8}, {1, 2, 150, 32}};
  for (const Dims& d : dims)
    for (float p : {0.0f, 0.25f}) {
      INFO(dims_str(d) << " p=" << p);
      const Shape sh = {d.B, d.N, d.S, d.D};
      Tensor q = random_tensor(sh, DType::f64, rng), k = random_tensor(sh, DType::f64, rng);
      Tensor v = random_tensor(sh, DType::f64, rng), g = random_tensor(sh, DType::f64, rng);
      Tensor mask = key_mask(awkward_lengths(d.B, d.S), d.S);
      Tensor ids = p > 0 ? example_ids(d.B) : Tensor();
      const float scale = 0.7f;
      Tensor out = Tensor::empty(sh, DType::f64), probs = Tensor::empty({d.B, d.N, d.S, d.S}, DType::f64);
      attention_forward(out, probs, q, k, v, mask, scale, p, kKey, ids);
      Tensor dq = Tensor::empty(sh, DType::f64), dk = Tensor::empty(sh, DType::f64),
             dv = Tensor::empty(sh, DType::f64);
      attention_backward(dq, dk, dv, g, q, k, v, probs, scale, p, kKey, ids);
      Tensor fout = Tensor::empty(sh, DType::f64), lse = Tensor::empty({d.B, d.N, d.S}, DType::f32);
      flash_attention_forward(fout, lse, q, k, v, mask, scale, p, kKey, ids);
      Tensor fq = Tensor::empty(sh, DType::f64), fk = Tensor::empty(sh, DType::f64),
             fv = Tensor::empty(sh, DType::f64);
      for (const Tensor* t : {&fq, &fk, &fv}) test::poison(*t);
      flash_attention_backward(fq, fk, fv, g, q, k, v, fout, lse, mask, scale, p, kKey, ids);
      // P recomputed from an fp32 lse: ~1e-7 relative. With S = 1 the exact dq, dk are 0, so a
      // tiny absolute difference is accepted too.
      CHECK((rel_l2(fq, dq) < 1e-6 || test::max_abs_diff(fq, dq) < 1e-9));
      CHECK((rel_l2(fk, dk) < 1e-6 || test::max_abs_diff(fk, dk) < 1e-9));
      CHECK((rel_l2(fv, dv) < 1e-6 || test::max_abs_diff(fv, dv) < 1e-9));
    }
}

TEST_CASE("attention_backward uses the probabilities it is given (Back Razor)", "[attention]") {
  // With P replaced by an arbitrary row-stochastic-or-not matrix R, the contract is
  // dv = dropout(R)ᵀ·dout and dS = R ⊙ (dP − rowsum(dP ⊙ R)); check dv and dq against that.
  const uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const int64_t B = 2, N = 2, S = 5, D = 3;
  const float p = 0.2f, scale = 0.9f;
  const Shape sh = {B, N, S, D};
  Tensor q = random_tensor(sh, DType::f64, rng), k = random_tensor(sh, DType::f64, rng);
  Tensor v = random_tensor(sh, DType::f64, rng), g = random_tensor(sh, DType::f64, rng);
  Tensor R = random_tensor({B, N, S, S}, DType::f64, rng, Device::cpu, 0, 1);
  Tensor ids = example_ids(B);
  DropoutKey key = kKey;
  key.length = 11;  // a dropout row length past S: element (n, i, j) = (n·11 + i)·11 + j
  Tensor dq = Tensor::empty(sh, DType::f64), dk = Tensor::empty(sh, DType::f64),
         dv = Tensor::empty(sh, DType::f64);
  attention_backward(dq, dk, dv, g, q, k, v, R, scale, p, key, ids);
  std::vector<double> Q = to_doubles(q), K = to_doubles(k), V = to_doubles(v), G = to_doubles(g),
                      P = to_doubles(R), dV(size_t(B * N * S * D), 0), dQ(size_t(B * N * S * D), 0);
  std::vector<int32_t> I = ids.to_vector<int32_t>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t bn = b * N + n;
      auto z = [&](int64_t i, int64_t j) {
        return dropout_uniform(key, uint32_t(I[size_t(b)]), uint32_t((n * 11 + i) * 11 + j)) >= p
                   ? 1.0 / (1.0 - double(p)) : 0.0;
      };
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> dP(static_cast<size_t>(S));
        double r = 0;
        for (int64_t j = 0; j < S; ++j) {
          double dpd = 0;
          for (int64_t e = 0; e < D; ++e) dpd += G[size_t((bn * S + i) * D + e)] * V[size_t((bn * S + j) * D + e)];
          dP[size_t(j)] = z(i, j) * dpd;
          r += dP[size_t(j)] * P[size_t((bn * S + i) * S + j)];
        }
        for (int64_t j = 0; j < S; ++j) {
          const double Pij = P[size_t((bn * S + i) * S + j)];
          const double dS = Pij * (dP[size_t(j)] - r);
          for (int64_t e = 0; e < D; ++e) {
            dQ[size_t((bn * S + i) * D + e)] += scale * dS * K[size_t((bn * S + j) * D + e)];
            dV[size_t((bn * S + j) * D + e)] += z(i, j) * Pij * G[size_t((bn * S + i) * D + e)];
          }
        }
      }
    }
  CHECK(rel_l2_vec(to_doubles(dv), dV) < 1e-12);
  CHECK(rel_l2_vec(to_doubles(dq), dQ) < 1e-12);
}

// With a fixed dropout row length, a sample's attention does not depend on how far its batch is
// padded: the same inputs padded to S = 6 and S = 13 give the same outputs and gradients on the
// real rows, dropout on (a batch split by length trains as the whole batch). With L = S (length 0)
// the masks differ, which this test must see.
TEST_CASE("attention with a fixed dropout row length is the same at any padded length", "[attention]") {
  std::mt19937_64 rng(5);
  const int64_t B = 2, N = 3, D = 4, Smax = 13;
  const std::vector<int64_t> len = {6, 4};
  const DType t = DType::f64;
  Tensor q = random_tensor({B, N, Smax, D}, t, rng), k = random_tensor({B, N, Smax, D}, t, rng);
  Tensor v = random_tensor({B, N, Smax, D}, t, rng);
  Tensor ids = example_ids(B);
  // The output gradient of padded query rows is zero, as in the model (nothing reads them).
  std::vector<double> gh = to_doubles(random_tensor({B, N, Smax, D}, t, rng));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = len[size_t(b)]; i < Smax; ++i)
        for (int64_t j = 0; j < D; ++j) gh[size_t(((b * N + n) * Smax + i) * D + j)] = 0;
  Tensor g = Tensor::from_host(gh, {B, N, Smax, D});
  // x's first S rows of each head, [B, N, S, D].
  auto rows = [&](const Tensor& x, int64_t S) {
    std::vector<double> all = to_doubles(x), r;
    for (int64_t bn = 0; bn < B * N; ++bn)
      r.insert(r.end(), all.begin() + bn * Smax * D, all.begin() + (bn * Smax + S) * D);
    return r;
  };
  struct Run {
    std::vector<double> out, dq, dk, dv;
  };
  auto run = [&](int64_t S, const DropoutKey& key) {
    const Shape sh = {B, N, S, D};
    Tensor qs = Tensor::from_host(rows(q, S), sh), ks = Tensor::from_host(rows(k, S), sh);
    Tensor vs = Tensor::from_host(rows(v, S), sh), gs = Tensor::from_host(rows(g, S), sh);
    Tensor mask = key_mask(len, S);
    Tensor out = Tensor::empty(sh, t), probs = Tensor::empty({B, N, S, S}, t);
    attention_forward(out, probs, qs, ks, vs, mask, 0.5f, 0.4f, key, ids);
    Tensor dq = Tensor::empty(sh, t), dk = Tensor::empty(sh, t), dv = Tensor::empty(sh, t);
    attention_backward(dq, dk, dv, gs, qs, ks, vs, probs, 0.5f, 0.4f, key, ids);
    // The real rows only: (b, n, i < len[b], :).
    Run r;
    for (auto [src, dst] : {std::pair{&out, &r.out}, {&dq, &r.dq}, {&dk, &r.dk}, {&dv, &r.dv}}) {
      std::vector<double> all = to_doubles(*src);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t n = 0; n < N; ++n)
          dst->insert(dst->end(), all.begin() + ((b * N + n) * S) * D,
                      all.begin() + ((b * N + n) * S + len[size_t(b)]) * D);
    }
    return r;
  };
  DropoutKey fixed = kKey;
  fixed.length = 16;
  const Run a = run(6, fixed), b = run(13, fixed);
  CHECK(rel_l2_vec(a.out, b.out) < 1e-14);
  CHECK(rel_l2_vec(a.dq, b.dq) < 1e-14);
  CHECK(rel_l2_vec(a.dk, b.dk) < 1e-14);
  CHECK(rel_l2_vec(a.dv, b.dv) < 1e-14);
  const Run c = run(6, kKey), d = run(13, kKey);  // L = S: other masks
  CHECK(rel_l2_vec(c.out, d.out) > 1e-3);
}

// The first Sq query rows alone (the last layer's [CLS] queries): the whole problem's first rows,
// dropout included; with the other rows' output gradients zero, the same dk and dv, and dq's
// first rows. In double, to rounding (one row's products in other GEMM shapes).
TEST_CASE("materialized attention on the first query rows is those rows of the whole", "[attention]") {
  std::mt19937_64 rng(21);
  for (int64_t Sq : {1, 3}) {
    const int64_t B = 3, N = 2, S = 9, D = 4;
    INFO("Sq " << Sq);
    const DType t = DType::f64;
    Tensor q = random_tensor({B, N, S, D}, t, rng), k = random_tensor({B, N, S, D}, t, rng);
    Tensor v = random_tensor({B, N, S, D}, t, rng), dout = random_tensor({B, N, S, D}, t, rng);
    Tensor mask = key_mask(awkward_lengths(B, S), S), ids = example_ids(B);
    const float p = 0.3f;
    // The whole problem, with the output gradient of every row past Sq zero.
    std::vector<double> g = to_doubles(dout);
    for (int64_t bn = 0; bn < B * N; ++bn)
      for (int64_t i = Sq; i < S; ++i)
        for (int64_t j = 0; j < D; ++j) g[size_t((bn * S + i) * D + j)] = 0;
    Tensor dout_whole = Tensor::from_host(g, {B, N, S, D});
    Tensor out = Tensor::empty({B, N, S, D}, t), probs = Tensor::empty({B, N, S, S}, t);
    attention_forward(out, probs, q, k, v, mask, 0.5f, p, kKey, ids);
    Tensor dq = Tensor::empty({B, N, S, D}, t), dk = Tensor::empty({B, N, S, D}, t);
    Tensor dv = Tensor::empty({B, N, S, D}, t);
    attention_backward(dq, dk, dv, dout_whole, q, k, v, probs, 0.5f, p, kKey, ids);
    // The first Sq rows of each (b, n) as tensors of their own.
    auto first_rows = [&](const Tensor& x, int64_t width) {
      std::vector<double> all = to_doubles(x), rows;
      for (int64_t bn = 0; bn < B * N; ++bn)
        rows.insert(rows.end(), all.begin() + bn * S * width, all.begin() + (bn * S + Sq) * width);
      return Tensor::from_host(rows, {B, N, Sq, width});
    };
    Tensor q1 = first_rows(q, D), dout1 = first_rows(dout, D);
    Tensor out1 = Tensor::empty({B, N, Sq, D}, t), probs1 = Tensor::empty({B, N, Sq, S}, t);
    attention_forward(out1, probs1, q1, k, v, mask, 0.5f, p, kKey, ids);
    CHECK(rel_l2(out1, first_rows(out, D)) < 1e-14);
    CHECK(rel_l2(probs1, first_rows(probs, S)) < 1e-14);
    Tensor dq1 = Tensor::empty({B, N, Sq, D}, t), dk1 = Tensor::empty({B, N, S, D}, t);
    Tensor dv1 = Tensor::empty({B, N, S, D}, t);
    attention_backward(dq1, dk1, dv1, dout1, q1, k, v, probs1, 0.5f, p, kKey, ids);
    CHECK(rel_l2(dq1, first_rows(dq, D)) < 1e-14);
    CHECK(rel_l2(dk1, dk) < 1e-14);
    CHECK(rel_l2(dv1, dv) < 1e-14);
  }
}

TEST_CASE("attention rejects bad input with messages naming the op and shapes", "[attention]") {
  std::mt19937_64 rng(1);
  const Shape sh = {2, 3, 7, 5};
  Tensor q = random_tensor(sh, DType::f32, rng), k = random_tensor(sh, DType::f32, rng);
  Tensor v = random_tensor(sh, DType::f32, rng);
  Tensor out = Tensor::empty(sh, DType::f32), probs = Tensor::empty({2, 3, 7, 7}, DType::f32);
  Tensor lse = Tensor::empty({2, 3, 7}, DType::f32);
  Tensor mask = key_mask({7, 3}, 7), ids = example_ids(2);
  using Catch::Matchers::Contains;
  Tensor k_bad = random_tensor({2, 3, 6, 5}, DType::f32, rng);
  CHECK_THROWS_WITH(attention_forward(out, probs, q, k_bad, v, mask, 1.0f, 0.0f, kKey, Tensor()),
                    Contains("attention_forward") && Contains("[2, 3, 6, 5]") && Contains("[2, 3, 7, 5]"));
  CHECK_THROWS_WITH(attention_forward(out, Tensor::empty({2, 3, 7, 5}, DType::f32), q, k, v, mask, 1.0f,
                                      0.0f, kKey, Tensor()),
                    Contains("probs") && Contains("[2, 3, 7, 7]"));
  CHECK_THROWS_WITH(attention_forward(out, probs, q, k, random_tensor(sh, DType::f64, rng), mask, 1.0f,
                                      0.0f, kKey, Tensor()),
                    Contains("attention_forward") && Contains("v is f64"));
  CHECK_THROWS_WITH(attention_forward(out, probs, q, k, v, key_mask({7, 3, 1}, 7), 1.0f, 0.0f, kKey,
                                      Tensor()),
                    Contains("mask") && Contains("[3, 7]") && Contains("[2, 7]"));
  CHECK_THROWS_WITH(attention_forward(out, probs, q, k, v, Tensor::zeros({2, 7}, DType::f64), 1.0f,
                                      0.0f, kKey, Tensor()),
                    Contains("mask") && Contains("expected f32"));
  CHECK_THROWS_WITH(attention_forward(out, probs, q, k, v, mask, 1.0f, 0.1f, kKey, Tensor()),
                    Contains("example_ids") && Contains("undefined"));
  CHECK_THROWS_WITH(attention_forward(out, probs, q, k, v, mask, 1.0f, 1.5f, kKey, ids),
                    Contains("dropout_p"));
  DropoutKey short_key = kKey;
  short_key.length = 6;  // fewer than the 7 keys
  CHECK_THROWS_WITH(attention_forward(out, probs, q, k, v, mask, 1.0f, 0.1f, short_key, ids),
                    Contains("attention_forward") && Contains("row length 6") && Contains("7 keys"));
  DropoutKey huge_key = kKey;
  huge_key.length = 50000;  // N·L·L = 7.5e9 > 2^32
  CHECK_THROWS_WITH(attention_forward(out, probs, q, k, v, mask, 1.0f, 0.1f, huge_key, ids),
                    Contains("32-bit dropout element index"));
  CHECK_THROWS_WITH(attention_forward(out, probs, q.view({6, 7, 5}), k, v, mask, 1.0f, 0.0f, kKey, ids),
                    Contains("[B, N, S, D]"));
  CHECK_THROWS_WITH(attention_forward(out, probs, test::to_dtype_device(q, DType::bf16, Device::cpu), k,
                                      v, mask, 1.0f, 0.0f, kKey, ids),
                    Contains("CPU supports f32 and f64"));
  Tensor d = Tensor::empty(sh, DType::f32);
  CHECK_THROWS_WITH(attention_backward(d, d, Tensor::empty({2, 3, 7, 4}, DType::f32), d, q, k, v, probs,
                                       1.0f, 0.0f, kKey, Tensor()),
                    Contains("attention_backward") && Contains("dv") && Contains("[2, 3, 7, 4]"));
  CHECK_THROWS_WITH(flash_attention_forward(out, Tensor::empty({2, 3, 7}, DType::f64), q, k, v, mask,
                                            1.0f, 0.0f, kKey, Tensor()),
                    Contains("flash_attention_forward") && Contains("lse"));
  CHECK_THROWS_WITH(flash_attention_backward(d, d, d, d, q, k, v, out, Tensor::empty({2, 3, 6}, DType::f32),
                                             mask, 1.0f, 0.0f, kKey, Tensor()),
                    Contains("flash_attention_backward") && Contains("[2, 3, 6]"));
  if (cuda_available()) {
    Tensor qc = q.to(Device::cuda), oc = out.to(Device::cuda), lc = lse.to(Device::cuda);
    CHECK_THROWS_WITH(flash_attention_forward(oc, lc, qc, qc, qc, mask.to(Device::cuda), 1.0f, 0.0f, kKey,
                                              Tensor()),
                      Contains("D = 64"));
    CHECK_THROWS_WITH(attention_forward(oc, probs, qc, qc, qc, Tensor(), 1.0f, 0.0f, kKey, Tensor()),
                      Contains("different devices"));
  }
}

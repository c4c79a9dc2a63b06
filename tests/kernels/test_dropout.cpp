// Philox dropout: the mask is exactly dropout_uniform(key, example_ids[r], e) >= p, it depends on
// the example id (not the row), backward regenerates it, keep rate ≈ 1 − p, bad inputs. Gradients
// and CUDA masks bit-identical to the CPU: the "dropout" op table entry.
#include <cmath>
#include <numeric>

#include "kernels/dropout.h"
#include "inputs.h"

using namespace br;
using namespace br::test;

namespace {

Tensor iota_ids(int64_t n, int32_t first = 0) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return Tensor::from_host(v, {n});
}

Tensor ones(const Shape& s, DType d = DType::f32) {
  std::vector<float> v(size_t(shape_numel(s)), 1.0f);
  return to_dtype_device(Tensor::from_host(v, s), d, Device::cpu);
}

// keep pattern (out != 0) of dropout applied to ones
std::vector<bool> mask_of(const Shape& s, float p, const DropoutKey& key, const Tensor& ids) {
  Tensor x = ones(s), y = poisoned(s, DType::f32);
  dropout_forward(y, x, p, key, ids);
  std::vector<bool> m;
  for (float v : y.to_vector<float>()) m.push_back(v != 0.0f);
  return m;
}

size_t count_diff(const std::vector<bool>& a, const std::vector<bool>& b) {
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += a[i] != b[i];
  return n;
}

}  // namespace

TEST_CASE("dropout keeps element e of row r when dropout_uniform of its example id and e is at least p and scales by 1/(1-p)",
          "[kernels][dropout]") {
  std::mt19937_64 rng(fresh_seed());
  const DropoutKey key{0x123456789abcdefull, 17, 5};
  for (const Shape& s : {Shape{7, 33}, Shape{3, 2, 5}, Shape{1, 1}, Shape{9}}) {
    INFO(shape_str(s));
    const int64_t rows = s[0], n = shape_numel(s) / rows;
    std::vector<int32_t> idv(static_cast<size_t>(rows));
    for (auto& v : idv) v = int32_t(rng() % 100000);
    Tensor ids = Tensor::from_host(idv, {rows});
    Tensor x = rand64(s, rng, 0.5, 1.5), y = poisoned(s, DType::f64);
    const float p = 0.3f;
    dropout_forward(y, x, p, key, ids);
    auto xv = to_doubles(x), yv = to_doubles(y);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t e = 0; e < n; ++e) {
        const bool keep = dropout_uniform(key, uint32_t(idv[size_t(r)]), uint32_t(e)) >= p;
        const size_t i = size_t(r * n + e);
        if (keep) REQUIRE(yv[i] == Approx(xv[i] / (1.0 - double(p))).epsilon(1e-15));
        else REQUIRE(yv[i] == 0.0);
      }
  }
}

TEST_CASE("dropout backward regenerates the forward mask", "[kernels][dropout]") {
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const DropoutKey key{seed, 3, 9};
  const Shape s{7, 33};
  Tensor ids = iota_ids(7, 40);
  Tensor g = rand64(s, rng), dx = poisoned(s, DType::f64);
  dropout_backward(dx, g, 0.25f, key, ids);
  Tensor one = ones(s, DType::f64), keep = poisoned(s, DType::f64);
  dropout_forward(keep, one, 0.25f, key, ids);
  auto kv = to_doubles(keep), gv = to_doubles(g), dv = to_doubles(dx);
  for (size_t i = 0; i < kv.size(); ++i) REQUIRE(dv[i] == kv[i] * gv[i]);
}

TEST_CASE("dropout keeps about 1-p of 1e5 elements", "[kernels][dropout]") {
  const Shape s{100, 1000};
  for (float p : {0.1f, 0.5f, 0.9f}) {
    auto m = mask_of(s, p, DropoutKey{fresh_seed(), 1, 2}, iota_ids(100));
    const double kept = double(std::count(m.begin(), m.end(), true)) / double(m.size());
    const double sigma = std::sqrt(p * (1 - p) / double(m.size()));
    INFO("p " << p << " kept " << kept);
    CHECK(std::fabs(kept - (1 - p)) < 6 * sigma);
  }
}

TEST_CASE("dropout masks repeat for the same key and change with seed or step or site or example",
          "[kernels][dropout]") {
  const Shape s{4, 257};
  const DropoutKey k{42, 7, 3};
  Tensor ids = iota_ids(4, 1000);
  auto base = mask_of(s, 0.5f, k, ids);
  CHECK(count_diff(base, mask_of(s, 0.5f, k, ids)) == 0);
  // 1028 fair coins: two independent masks differ in about half the places.
  CHECK(count_diff(base, mask_of(s, 0.5f, DropoutKey{43, 7, 3}, ids)) > 300);
  CHECK(count_diff(base, mask_of(s, 0.5f, DropoutKey{42ull | (1ull << 40), 7, 3}, ids)) > 300);
  CHECK(count_diff(base, mask_of(s, 0.5f, DropoutKey{42, 8, 3}, ids)) > 300);
  CHECK(count_diff(base, mask_of(s, 0.5f, DropoutKey{42, 7, 4}, ids)) > 300);
  CHECK(count_diff(base, mask_of(s, 0.5f, k, iota_ids(4, 2000))) > 300);
}

TEST_CASE("dropout mask follows example_ids and not row position", "[kernels][dropout]") {
  std::mt19937_64 rng(fresh_seed());
  const Shape s{5, 3, 11};
  const DropoutKey key{99, 1, 1};
  const std::vector<int32_t> idv = {10, 11, 12, 13, 14}, perm = {3, 0, 4, 2, 1};
  Tensor x = random_tensor(s, DType::f32, rng), y = poisoned(s, DType::f32);
  dropout_forward(y, x, 0.5f, key, Tensor::from_host(idv, {5}));
  std::vector<int32_t> pid;
  Tensor xp = Tensor::empty(s, DType::f32);
  for (int64_t r = 0; r < 5; ++r) {
    pid.push_back(idv[size_t(perm[size_t(r)])]);
    xp.rows(r, r + 1).copy_from(x.rows(perm[size_t(r)], perm[size_t(r)] + 1));
  }
  Tensor yp = poisoned(s, DType::f32);
  dropout_forward(yp, xp, 0.5f, key, Tensor::from_host(pid, {5}));
  for (int64_t r = 0; r < 5; ++r)
    CHECK(max_abs_diff(yp.rows(r, r + 1), y.rows(perm[size_t(r)], perm[size_t(r)] + 1)) == 0);
  // A batch split into two halves sees the same masks as the whole batch.
  Tensor y2 = poisoned({2, 3, 11}, DType::f32);
  dropout_forward(y2, x.rows(3, 5), 0.5f, key, Tensor::from_host(std::vector<int32_t>{13, 14}, {2}));
  CHECK(max_abs_diff(y2, y.rows(3, 5)) == 0);
}

TEST_CASE("dropout p=0 copies and p=1 zeroes and out may alias inp", "[kernels][dropout]") {
  std::mt19937_64 rng(fresh_seed());
  Tensor x = random_tensor({3, 7}, DType::f32, rng), y = poisoned({3, 7}, DType::f32);
  dropout_forward(y, x, 0.0f, DropoutKey{1, 2, 3}, iota_ids(3));
  CHECK(max_abs_diff(y, x) == 0);
  dropout_forward(y, x, 1.0f, DropoutKey{1, 2, 3}, iota_ids(3));
  for (float v : y.to_vector<float>()) CHECK(v == 0.0f);
  Tensor z = x.clone(), want = poisoned({3, 7}, DType::f32);
  dropout_forward(want, x, 0.4f, DropoutKey{1, 2, 3}, iota_ids(3));
  dropout_forward(z, z, 0.4f, DropoutKey{1, 2, 3}, iota_ids(3));
  CHECK(max_abs_diff(z, want) == 0);
}

TEST_CASE("dropout rejects bad p or ids or shapes with messages naming them", "[kernels][dropout]") {
  Tensor x = Tensor::zeros({4, 8}, DType::f32), y = Tensor::zeros({4, 8}, DType::f32);
  const DropoutKey k{};
  REQUIRE_THROWS_WITH(dropout_forward(y, x, 1.5f, k, iota_ids(4)),
                      Catch::Contains("dropout_forward: p=1.5 must be in [0, 1]"));
  REQUIRE_THROWS_WITH(dropout_forward(y, x, NAN, k, iota_ids(4)), Catch::Contains("dropout_forward: p="));
  REQUIRE_THROWS_WITH(dropout_forward(y, x, 0.1f, k, iota_ids(3)),
                      Catch::Contains("dropout_forward: example_ids has shape [3], expected [4]"));
  REQUIRE_THROWS_WITH(dropout_forward(y, x, 0.1f, k, Tensor::zeros({4}, DType::i64)),
                      Catch::Contains("dropout_forward: example_ids is i64[4]@cpu, expected i32"));
  REQUIRE_THROWS_WITH(dropout_backward(Tensor::zeros({4, 9}, DType::f32), x, 0.1f, k, iota_ids(4)),
                      Catch::Contains("dropout_backward: output has shape [4, 9], expected [4, 8]"));
  REQUIRE_THROWS_WITH(dropout_forward(y, x, 0.1f, k, Tensor()),
                      Catch::Contains("dropout_forward: example_ids is undefined"));
}

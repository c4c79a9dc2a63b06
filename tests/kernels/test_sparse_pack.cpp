// Back Razor pack/unpack against a brute-force reference: sort each sample by (|x| desc, index asc),
// keep the first k; check the documented mask layout bit by bit and the kept values exactly. CUDA
// bit-identical to the CPU (ties included): the "sparse_pack" op table entry.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <numeric>

#include "harness.h"
#include "core/allocator.h"
#include "kernels/sparse_pack.h"

using namespace br;

namespace {

// |x| as an orderable integer, in the input dtype (sparse_pack.h): NaN above +inf.
uint64_t magnitude_key(const Tensor& x, int64_t i) {
  switch (x.dtype()) {
    case DType::f32: return float_bits(x.data<float>()[i]) & 0x7fffffffu;
    case DType::f64: return std::bit_cast<uint64_t>(x.data<double>()[i]) & 0x7fffffffffffffffull;
    case DType::f16:
    case DType::bf16: return static_cast<const uint16_t*>(x.raw())[i] & 0x7fffu;
    default: FAIL("magnitude_key: unexpected dtype"); return 0;
  }
}

uint64_t value_bits(const Tensor& v, int64_t i) {
  uint64_t bits = 0;
  std::memcpy(&bits, static_cast<const char*>(v.raw()) + i * int64_t(dtype_size(v.dtype())),
              dtype_size(v.dtype()));
  return bits;
}

bool mask_bit(const SparsePack& p, int64_t b, int64_t j) {
  const auto* bytes = p.mask.data<uint8_t>() + b * sparse_mask_row_bytes(p.n);
  return (bytes[j / 8] >> (j % 8)) & 1;
}

// Kept indices of each sample by the reference rule.
std::vector<std::vector<int64_t>> reference_keep(const Tensor& x, int64_t k) {
  const int64_t B = x.size(0), n = x.numel() / B;
  std::vector<std::vector<int64_t>> keep(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) {
    std::vector<int64_t> idx(static_cast<size_t>(n));
    std::iota(idx.begin(), idx.end(), b * n);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t c) {
      return magnitude_key(x, a) > magnitude_key(x, c);
    });
    idx.resize(size_t(k));
    std::sort(idx.begin(), idx.end());
    for (int64_t& i : idx) i -= b * n;
    keep[size_t(b)] = idx;
  }
  return keep;
}

// Checks p against the reference: k, mask bits (with zero padding), values bit-exact in order.
// Mismatches are counted and the first one named: one Catch assertion per element would make
// this the slowest test of the suite.
void check_against_reference(const Tensor& x, double ratio, const SparsePack& p) {
  const int64_t B = x.size(0), n = x.numel() / B;
  const int64_t k = backrazor_keep_count(n, ratio);
  REQUIRE(p.batch == B);
  REQUIRE(p.n == n);
  REQUIRE(p.k == k);
  REQUIRE(p.shape == x.shape());
  REQUIRE(p.dtype == x.dtype());
  auto keep = reference_keep(x, k);
  const Tensor converted = cast(x, p.values.dtype());  // what a value buffer must hold
  const int64_t row_bits = sparse_mask_row_bytes(n) * 8;
  std::string first;
  int64_t bad = 0;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<char> want(size_t(row_bits), 0);
    for (int64_t j : keep[size_t(b)]) want[size_t(j)] = 1;
    int64_t bits = 0;
    for (int64_t j = 0; j < row_bits; ++j) {
      bits += mask_bit(p, b, j);
      if (mask_bit(p, b, j) != bool(want[size_t(j)]) && bad++ == 0)
        first = "mask bit of sample " + std::to_string(b) + " element " + std::to_string(j);
    }
    if (bits != k && bad++ == 0)
      first = "sample " + std::to_string(b) + " keeps " + std::to_string(bits);
    for (int64_t q = 0; q < k; ++q) {
      const int64_t i = b * n + keep[size_t(b)][size_t(q)];
      if (value_bits(p.values, b * k + q) != value_bits(converted, i) && bad++ == 0)
        first = "sample " + std::to_string(b) + " kept value " + std::to_string(q) + " (element " +
                std::to_string(i) + ")";
    }
  }
  INFO(bad << " mismatches against the reference of n=" << n << " k=" << k << ", first: " << first);
  REQUIRE(bad == 0);
}

// unpack(pack(x)): kept positions hold the value rounded to the value dtype and back, others 0.
void check_round_trip(const Tensor& x, const SparsePack& p) {
  Tensor out = Tensor::empty(x.shape(), x.dtype());
  test::poison(out);
  unpack(out, p);
  const int64_t B = p.batch, n = p.n;
  const Tensor rounded = cast(cast(x, p.values.dtype()), x.dtype());
  const uint64_t zero = value_bits(Tensor::zeros({1}, x.dtype()), 0);
  int64_t bad = 0, first = -1;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t j = 0; j < n; ++j) {
      const int64_t i = b * n + j;
      const uint64_t want = mask_bit(p, b, j) ? value_bits(rounded, i) : zero;
      if (value_bits(out, i) != want && bad++ == 0) first = i;
    }
  INFO(bad << " elements of " << x.str() << " via " << p.values.str() << " differ, first "
            << first);
  REQUIRE(bad == 0);
}

Tensor make(const std::vector<float>& v, const Shape& shape, DType dtype) {
  return cast(Tensor::from_host(v, shape), dtype);
}

}  // namespace

TEST_CASE("backrazor_keep_count follows DESIGN.md and the spec's worked numbers", "[kernels][sparse]") {
  CHECK(backrazor_keep_count(393216, 0.8) == 78645);
  CHECK(backrazor_keep_count(3145728, 0.8) == 629147);
  CHECK(backrazor_keep_count(768, 0.8) == 155);
  CHECK(backrazor_keep_count(10, 0.0) == 10);  // n - 0 + 1 clipped to n
  CHECK(backrazor_keep_count(10, 1.0) == 1);
  CHECK(backrazor_keep_count(1, 0.5) == 1);
  CHECK(backrazor_keep_count(7, 0.99) == 2);
  CHECK(backrazor_keep_count(0, 0.8) == 0);
  CHECK_THROWS_WITH(backrazor_keep_count(10, 1.5), Catch::Contains("prune_ratio 1.5 not in [0, 1]"));
  CHECK_THROWS_WITH(backrazor_keep_count(-1, 0.5), Catch::Contains("n=-1"));
  CHECK(sparse_mask_row_bytes(1) == 4);
  CHECK(sparse_mask_row_bytes(32) == 4);
  CHECK(sparse_mask_row_bytes(33) == 8);
}

TEST_CASE("pack_topk keeps exactly the k largest magnitudes per sample", "[kernels][sparse]") {
  uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  const std::vector<Shape> shapes = {{1, 7}, {3, 33}, {2, 127}, {4, 5, 13}, {5}, {2, 3001}, {1, 4099}};
  for (const Shape& shape : shapes)
    for (DType vd : {DType::f32, DType::f16, DType::bf16})
      for (double ratio : {0.0, 0.5, 0.8, 0.99, 1.0}) {
        INFO("shape " << shape_str(shape) << " values " << dtype_name(vd) << " ratio " << ratio);
        Tensor x = test::random_tensor(shape, DType::f32, rng, Device::cpu, -3.0, 3.0);
        SparsePack p = pack_topk(x, ratio, vd);
        CHECK(p.bytes() == sparse_pack_bytes(p.batch, p.n, ratio, vd));
        check_against_reference(x, ratio, p);
      }
}

TEST_CASE("pack_topk on f64, f16 and bf16 inputs", "[kernels][sparse]") {
  uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  struct Case { DType in, values; Shape shape; };
  const std::vector<Case> cases = {
      {DType::f64, DType::f64, {3, 33}},   {DType::f64, DType::f64, {2, 2500}},
      {DType::f64, DType::f16, {2, 127}},  {DType::f64, DType::f32, {1, 3000}},
      {DType::f16, DType::f16, {3, 100}},  {DType::f16, DType::f32, {2, 5000}},
      {DType::bf16, DType::bf16, {4, 65}}, {DType::bf16, DType::f32, {2, 3333}},
      {DType::f16, DType::bf16, {2, 77}},
  };
  for (const Case& c : cases)
    for (double ratio : {0.3, 0.8}) {
      INFO(dtype_name(c.in) << shape_str(c.shape) << " -> " << dtype_name(c.values) << " ratio "
                            << ratio);
      Tensor x = test::random_tensor(c.shape, c.in, rng);
      SparsePack p = pack_topk(x, ratio, c.values);
      check_against_reference(x, ratio, p);
      check_round_trip(x, p);
    }
}

TEST_CASE("pack_topk breaks ties by lower index", "[kernels][sparse]") {
  SECTION("all-equal magnitudes with mixed signs keep the first k") {
    std::vector<float> v(2 * 45);
    for (size_t i = 0; i < v.size(); ++i) v[i] = i % 3 ? 0.5f : -0.5f;
    Tensor x = make(v, {2, 45}, DType::f32);
    SparsePack p = pack_topk(x, 0.8, DType::f32);
    REQUIRE(p.k == 10);
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t j = 0; j < 45; ++j) CHECK(mask_bit(p, b, j) == (j < 10));
    check_against_reference(x, 0.8, p);
  }
  SECTION("zero rows keep the first k zeros, not the whole row") {
    for (int64_t n : {7, 64, 3000}) {
      Tensor x = Tensor::zeros({3, n}, DType::f32);
      x.data<float>()[n + 5] = -0.0f;
      SparsePack p = pack_topk(x, 0.9, DType::f16);
      for (int64_t b = 0; b < 3; ++b)
        for (int64_t j = 0; j < n; ++j) REQUIRE(mask_bit(p, b, j) == (j < p.k));
      check_against_reference(x, 0.9, p);
      check_round_trip(x, p);
    }
  }
  SECTION("many ties at the threshold (padded attention rows)") {
    uint64_t seed = test::fresh_seed();
    INFO("seed " << seed);
    std::mt19937_64 rng(seed);
    for (int64_t n : {97, 1000, 4133}) {
      std::vector<float> v(size_t(2 * n));
      std::uniform_int_distribution<int> level(0, 3);
      for (float& f : v) f = (rng() & 1 ? 1.0f : -1.0f) * 0.25f * float(level(rng));
      Tensor x = make(v, {2, n}, DType::f32);
      for (double ratio : {0.2, 0.5, 0.8, 0.99}) {
        INFO("n " << n << " ratio " << ratio);
        SparsePack p = pack_topk(x, ratio, DType::f32);
        check_against_reference(x, ratio, p);
        check_round_trip(x, p);
      }
    }
  }
}

TEST_CASE("pack_topk keeps NaN and inf first", "[kernels][sparse]") {
  std::vector<float> v = {1.0f, NAN, -INFINITY, 3.0f, -2.0f, 0.5f, INFINITY, -NAN, 0.0f};
  Tensor x = make(v, {1, 9}, DType::f32);
  SparsePack p = pack_topk(x, 0.6, DType::f32);  // k = 9 - 5 + 1 = 5
  REQUIRE(p.k == 5);
  std::vector<bool> want = {false, true, true, true, false, false, true, true, false};
  for (int64_t j = 0; j < 9; ++j) CHECK(mask_bit(p, 0, j) == want[size_t(j)]);
  check_against_reference(x, 0.6, p);
}

TEST_CASE("pack_topk on long samples: NaN, inf, f16 overflow, ties inside the histogram bin", "[kernels][sparse]") {
  uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (int64_t n : {2049, 4133, 6000, 49152}) {
    Tensor x = test::random_tensor({3, n}, DType::f32, rng, Device::cpu, -3.0, 3.0);
    float* v = x.data<float>();
    for (int64_t i = 0; i < 3 * n; i += 97) v[i] = NAN;
    for (int64_t i = 5; i < 3 * n; i += 101) v[i] = (i & 1) ? INFINITY : -INFINITY;
    for (int64_t i = 7; i < 3 * n; i += 89) v[i] = 1e5f;  // overflows f16 to inf
    // Many exact copies of magnitudes near the 80% threshold, so the threshold bin holds ties.
    for (int64_t i = 11; i < 3 * n; i += 13) v[i] = (i & 2) ? 0.6f : -0.6f;
    for (double ratio : {0.5, 0.8, 0.95})
      for (DType vd : {DType::f32, DType::f16, DType::bf16}) {
        INFO("n " << n << " ratio " << ratio << " values " << dtype_name(vd));
        SparsePack p = pack_topk(x, ratio, vd);
        check_against_reference(x, ratio, p);
        check_round_trip(x, p);
      }
  }
}

// The f32 select brackets the threshold from a strided subsample (stride n/512 made odd and prime
// to 3: 97 for n = 49152). Samples whose subsample lies about the rest, so that the bracket misses
// and the full histogram decides, and a sample whose bracket holds more keys than one nth_element
// should take (the candidates' own histogram).
TEST_CASE("pack_topk when the subsample misleads the threshold's bracket", "[kernels][sparse]") {
  const int64_t n = 49152, stride = 97;
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> u(1.0f, 2.0f);
  std::vector<float> v(size_t(3 * n));
  for (int64_t i = 0; i < n; ++i) {
    const bool sampled = i % stride == 0;
    v[size_t(i)] = sampled ? 1e-3f * u(rng) : u(rng);          // the subsample: all tiny
    v[size_t(n + i)] = sampled ? 10.0f * u(rng) : -u(rng);     // the subsample: all huge
    v[size_t(2 * n + i)] = (i % 3 ? 1.0f : -1.0f) * (1.0f + float(i % 7) * 1e-7f);  // few levels
  }
  Tensor x = make(v, {3, n}, DType::f32);
  for (double ratio : {0.5, 0.8, 0.99}) {
    INFO("ratio " << ratio);
    SparsePack p = pack_topk(x, ratio, DType::f16);
    check_against_reference(x, ratio, p);
    check_round_trip(x, p);
  }
}

TEST_CASE("unpack(pack(x)) is the pruned tensor, and keep-all is exact", "[kernels][sparse]") {
  uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  for (const Shape& shape : std::vector<Shape>{{1, 1}, {3, 31}, {2, 3, 11}, {2, 2049}})
    for (DType vd : {DType::f32, DType::f16, DType::bf16}) {
      INFO(shape_str(shape) << " " << dtype_name(vd));
      Tensor x = test::random_tensor(shape, DType::f32, rng);
      SparsePack p = pack_topk(x, 0.7, vd);
      check_round_trip(x, p);
      Tensor y = unpack(p);
      CHECK(y.shape() == x.shape());
      CHECK(y.dtype() == DType::f32);
      CHECK(y.category() == MemCategory::activations);
    }
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = test::random_tensor({4, 333}, dt, rng);
    x.flat().rows(7, 8).zero_();
    SparsePack p = pack_topk(x, 0.0, dt);
    REQUIRE(p.k == 333);
    Tensor y = unpack(p);
    CHECK(std::memcmp(y.raw(), x.raw(), x.nbytes()) == 0);
  }
}

TEST_CASE("pack_topk allocates under the requested category", "[kernels][sparse]") {
  std::mt19937_64 rng(1);
  Tensor x = test::random_tensor({2, 100}, DType::f32, rng);
  int64_t before = memory_stats(Device::cpu).cur(MemCategory::saved_activations);
  SparsePack p = pack_topk(x, 0.8, DType::f16);
  CHECK(memory_stats(Device::cpu).cur(MemCategory::saved_activations) - before == p.bytes());
  CHECK(p.bytes() == 2 * 16 + 2 * 21 * 2);  // 100 bits -> 4 words per row
  SparsePack w = pack_topk(x, 0.8, DType::f16, MemCategory::workspace);
  CHECK(w.mask.category() == MemCategory::workspace);
  CHECK(w.values.category() == MemCategory::workspace);
}

TEST_CASE("pack_topk and unpack reject bad inputs", "[kernels][sparse]") {
  std::mt19937_64 rng(2);
  Tensor x = test::random_tensor({2, 10}, DType::f32, rng);
  CHECK_THROWS_WITH(pack_topk(Tensor(), 0.5, DType::f16), Catch::Contains("pack_topk"));
  CHECK_THROWS_WITH(pack_topk(Tensor::zeros({0, 4}, DType::f32), 0.5, DType::f16),
                    Catch::Contains("pack_topk: x f32[0, 4]@cpu needs a batch dimension"));
  CHECK_THROWS_WITH(pack_topk(Tensor::zeros({}, DType::f32), 0.5, DType::f16),
                    Catch::Contains("pack_topk: x f32[]@cpu needs a batch dimension"));
  CHECK_THROWS_WITH(pack_topk(Tensor::zeros({2, 4}, DType::i32), 0.5, DType::f16),
                    Catch::Contains("pack_topk: x i32[2, 4]@cpu must be floating"));
  CHECK_THROWS_WITH(pack_topk(x, 0.5, DType::f64),
                    Catch::Contains("value dtype f64 not supported for x f32[2, 10]@cpu"));
  CHECK_THROWS_WITH(pack_topk(x, 0.5, DType::u8), Catch::Contains("value dtype u8"));
  CHECK_THROWS_WITH(pack_topk(x, -0.1, DType::f16),
                    Catch::Contains("prune_ratio -0.1 not in [0, 1] (x f32[2, 10]@cpu)"));
  CHECK_THROWS_WITH(pack_topk(x, NAN, DType::f16), Catch::Contains("not in [0, 1]"));

  SparsePack p = pack_topk(x, 0.5, DType::f16);
  CHECK_THROWS_WITH(unpack(Tensor::empty({2, 11}, DType::f32), p),
                    Catch::Contains("unpack: out has shape [2, 11], expected [2, 10]"));
  CHECK_THROWS_WITH(unpack(Tensor::empty({2, 10}, DType::f16), p),
                    Catch::Contains("unpack: out is f16[2, 10]@cpu, expected f32"));
  SparsePack bad = p;
  bad.values = p.values.rows(0, 5);
  CHECK_THROWS_WITH(unpack(bad), Catch::Contains("unpack: values has shape [5]"));
  bad = p;
  bad.mask = Tensor::zeros({2, 8}, DType::u8);
  CHECK_THROWS_WITH(unpack(bad), Catch::Contains("unpack: mask has shape [2, 8], expected [2, 4]"));
  bad = p;
  bad.mask = p.mask.clone();
  bad.mask.data<uint8_t>()[0] ^= 1;  // one bit too many or too few in row 0
  CHECK_THROWS_WITH(unpack(bad), Catch::Contains("unpack: mask row 0"));
  bad = p;
  bad.mask = p.mask.clone();
  bad.mask.data<uint8_t>()[3] |= 0x80;  // padding bit 31 of a 10-element row
  CHECK_THROWS_WITH(unpack(bad), Catch::Contains("padding set"));
}

TEST_CASE("unpack on CUDA rejects a bad mask before writing", "[kernels][sparse][cuda]") {
  if (test::skip_without_cuda()) return;
  std::mt19937_64 rng(3);
  Tensor x = test::random_tensor({3, 4100}, DType::f32, rng);  // two chunks per row
  SparsePack p = pack_topk(x.to(Device::cuda), 0.5, DType::f16);
  Tensor out = Tensor::zeros(x.shape(), DType::f32, Device::cuda);
  for (int which = 0; which < 2; ++which) {
    Tensor mask = p.mask.to(Device::cpu);
    // row 2, element 4096 (second chunk): k +- 1
    if (which == 0) mask.data<uint8_t>()[2 * 516 + 512] ^= 1;
    else mask.data<uint8_t>()[516 + 515] |= 0x80;  // row 1: padding bit 31 of word 128 (n = 4100)
    SparsePack bad = p;
    bad.mask = mask.to(Device::cuda);
    CHECK_THROWS_WITH(unpack(out, bad),
                      Catch::Contains(which == 0 ? "unpack: mask row 2" : "mask row 1") &&
                          Catch::Contains(which == 0 ? "padding clear" : "padding set"));
    Tensor host = out.to(Device::cpu);
    for (float v : host.to_vector<float>()) REQUIRE(v == 0.0f);
  }
}

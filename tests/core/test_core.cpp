#include <catch2/catch.hpp>
#include <cmath>
#include <random>

#include "core/allocator.h"
#include "core/dtype.h"
#include "core/philox.h"
#include "core/tensor.h"

using namespace br;

TEST_CASE("philox4x32_10 matches the Random123 known-answer vectors", "[core][rng]") {
  Philox4 a = philox4x32_10(Philox4{{0, 0, 0, 0}}, 0, 0);
  CHECK(a.v[0] == 0x6627e8d5u);
  CHECK(a.v[1] == 0xe169c58du);
  CHECK(a.v[2] == 0xbc57ac4cu);
  CHECK(a.v[3] == 0x9b00dbd8u);
  Philox4 b = philox4x32_10(Philox4{{~0u, ~0u, ~0u, ~0u}}, ~0u, ~0u);
  CHECK(b.v[0] == 0x408f276du);
  CHECK(b.v[1] == 0x41c83b0eu);
  CHECK(b.v[2] == 0xa20bc7c6u);
  CHECK(b.v[3] == 0x6d5451fdu);
  Philox4 c = philox4x32_10(Philox4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
                            0xa4093822u, 0x299f31d0u);
  CHECK(c.v[0] == 0xd16cfe09u);
  CHECK(c.v[1] == 0x94fdccebu);
  CHECK(c.v[2] == 0x5001e420u);
  CHECK(c.v[3] == 0x24126ea1u);
}

TEST_CASE("dropout_words gives philox4x32_10's words of 16 consecutive counters", "[core][rng]") {
  // The CPU kernels' block form (AVX-512 where built for it) against the scalar reference.
  std::mt19937_64 rng(3);
  for (int i = 0; i < 2000; ++i) {
    const DropoutKey key{rng(), uint32_t(rng()), uint32_t(rng())};
    const uint32_t g0 = i < 3 ? ~0u - 7u * uint32_t(i) : uint32_t(rng()), example = uint32_t(rng());
    uint32_t u[kDropoutBlock];
    dropout_words(u, g0, example, key);
    for (int l = 0; l < kDropoutLanes; ++l) {
      const Philox4 want = philox4x32_10(Philox4{{g0 + uint32_t(l), example, key.site, key.step}},
                                         uint32_t(key.seed), uint32_t(key.seed >> 32));
      for (int w = 0; w < 4; ++w) {
        INFO("g0 " << g0 << " lane " << l << " word " << w);
        REQUIRE(u[4 * l + w] == want.v[w]);
      }
    }
  }
}

TEST_CASE("fp16 and bf16 conversions round to nearest even", "[core][dtype]") {
  // Every half value round-trips exactly through float.
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    float f = half_to_float(uint16_t(h));
    if (std::isnan(f)) continue;
    REQUIRE(float_to_half(f) == h);
  }
  CHECK(float_to_half(65504.0f) == 0x7bffu);
  CHECK(float_to_half(65520.0f) == 0x7c00u);   // ties to even -> inf
  CHECK(float_to_half(1.0f + 1.0f / 2048) == 0x3c00u);  // halfway, rounds to even (1.0)
  CHECK(float_to_half(1.0f + 3.0f / 2048) == 0x3c02u);  // halfway, rounds up to even
  CHECK(float_to_half(5.9604644775390625e-08f) == 0x0001u);  // smallest subnormal
  CHECK(float_to_half(2.98023223876953125e-08f) == 0x0000u);  // half of it: ties to even zero
  CHECK(std::isnan(half_to_float(float_to_half(NAN))));
  CHECK(float_to_bf16(1.0f) == 0x3f80u);
  CHECK(bf16_to_float(float_to_bf16(3.140625f)) == 3.140625f);
  CHECK(float_to_bf16(bits_float(0x3f808000u)) == 0x3f80u);  // tie to even
  CHECK(float_to_bf16(bits_float(0x3f818000u)) == 0x3f82u);
}

TEST_CASE("tensor views share storage and check their bounds", "[core][tensor]") {
  Tensor t = Tensor::from_host(std::vector<float>{0, 1, 2, 3, 4, 5}, {3, 2});
  Tensor r = t.rows(1, 3);
  CHECK(r.shape() == Shape{2, 2});
  CHECK(r.data<float>()[0] == 2.0f);
  r.data<float>()[0] = 42.0f;
  CHECK(t.data<float>()[2] == 42.0f);
  CHECK(t.view({6}).numel() == 6);
  CHECK_THROWS_WITH(t.view({4}), Catch::Contains("cannot view f32[3, 2]@cpu as [4]"));
  CHECK_THROWS_WITH(t.rows(2, 4), Catch::Contains("out of"));
  CHECK_THROWS_WITH(t.data<int32_t>(), Catch::Contains("accessed as i32"));
  Tensor c = t.clone();
  c.data<float>()[0] = -1.0f;
  CHECK(t.data<float>()[0] == 0.0f);
}

TEST_CASE("allocator counts bytes by category with current and peak", "[core][allocator]") {
  MemoryStats before = memory_stats(Device::cpu);
  {
    Tensor a = Tensor::empty({1000}, DType::f32, Device::cpu, MemCategory::gradients);
    Tensor b = Tensor::empty({7, 3}, DType::f16, Device::cpu, MemCategory::saved_activations);
    MemoryStats s = memory_stats(Device::cpu);
    CHECK(s.cur(MemCategory::gradients) - before.cur(MemCategory::gradients) == 4000);
    CHECK(s.cur(MemCategory::saved_activations) - before.cur(MemCategory::saved_activations) == 42);
    b.storage()->set_category(MemCategory::workspace);
    s = memory_stats(Device::cpu);
    CHECK(s.cur(MemCategory::saved_activations) == before.cur(MemCategory::saved_activations));
    CHECK(s.cur(MemCategory::workspace) - before.cur(MemCategory::workspace) == 42);
  }
  MemoryStats after = memory_stats(Device::cpu);
  CHECK(after.total_current == before.total_current);
  CHECK(after.max(MemCategory::gradients) >= before.cur(MemCategory::gradients) + 4000);
}

TEST_CASE("memory budget refuses allocations beyond it", "[core][allocator]") {
  int64_t cur = memory_stats(Device::cpu).total_current;
  set_memory_budget(Device::cpu, cur + 1024);
  CHECK_NOTHROW(Tensor::empty({256}, DType::f32));
  CHECK_THROWS_WITH(Tensor::empty({257}, DType::f32), Catch::Contains("exceed the memory budget"));
  set_memory_budget(Device::cpu, 0);
}

#include "harness.h"

TEST_CASE("cast round-trips between float dtypes", "[core][cast]") {
  uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  Tensor x = test::random_tensor({7, 33}, DType::f64, rng);
  for (DType t : {DType::f32, DType::f16, DType::bf16}) {
    Tensor y = cast(cast(x, t), DType::f64);
    CHECK(test::rel_l2(y, x) < test::tolerance(t));
  }
}

TEST_CASE("cast on CUDA matches the CPU", "[core][cast][cuda]") {
  if (test::skip_without_cuda()) return;
  uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  Tensor x = test::random_tensor({127, 9}, DType::f32, rng, Device::cpu, -100, 100);
  for (DType t : {DType::f16, DType::bf16, DType::f64}) {
    Tensor ref = cast(x, t);
    Tensor got = Tensor::empty(x.shape(), t, Device::cuda);
    test::poison(got);
    cast(got, x.to(Device::cuda));
    CHECK(test::max_abs_diff(got, ref) == 0.0);
  }
}

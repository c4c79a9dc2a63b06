// cast between f32 and f16 on the CPU: the bulk (vectorized) conversion returns exactly what the
// scalar core/dtype.h conversions return, for every half and for floats covering every rounding
// case (normal, subnormal, overflow, halfway points, inf, NaN), at lengths that leave tails.
#include <cstring>
#include <random>
#include <vector>

#include "harness.h"
#include "kernels/cast.h"

using namespace br;

TEST_CASE("cast f16 -> f32 matches half_to_float for every half", "[kernels][cast]") {
  std::vector<uint16_t> h(65536 + 5);
  for (size_t i = 0; i < h.size(); ++i) h[i] = uint16_t(i * 40503u);  // odd: a permutation of 2^16
  Tensor in = Tensor::empty({int64_t(h.size())}, DType::f16);
  std::memcpy(in.raw(), h.data(), h.size() * 2);
  Tensor out = cast(in, DType::f32);
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < h.size(); ++i) {
    const uint32_t want = float_bits(half_to_float(h[i]));
    if (float_bits(out.data<float>()[i]) != want && bad++ == 0) first = int64_t(i);
  }
  INFO("first mismatch at " << first);
  CHECK(bad == 0);
}

TEST_CASE("cast f32 -> f16 matches float_to_half bit for bit", "[kernels][cast]") {
  uint64_t seed = test::fresh_seed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> bits;
  // Every float whose exponent lands in or near the half range, at mantissas around each
  // rounding boundary of the 13 dropped bits, both signs.
  for (uint32_t e = 90; e <= 150; ++e)
    for (uint32_t hi = 0; hi < 1024; hi += 7)
      for (uint32_t lo : {0u, 1u, 0xfffu, 0x1000u, 0x1001u, 0x1fffu, 0x0800u, 0x17ffu})
        for (uint32_t s : {0u, 0x80000000u}) bits.push_back(s | e << 23 | hi << 13 | lo);
  for (uint32_t v : {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u, 0xffc12345u, 0x477fefffu,
                     0x477ff000u, 0x33000000u, 0x33000001u, 0x00000001u, 0x80000000u})
    bits.push_back(v);
  for (int i = 0; i < 20000; ++i) bits.push_back(uint32_t(rng()));
  bits.resize(bits.size() / 8 * 8 + 3);  // a tail of 3 after whole groups of 8
  Tensor in = Tensor::empty({int64_t(bits.size())}, DType::f32);
  std::memcpy(in.raw(), bits.data(), bits.size() * 4);
  Tensor out = cast(in, DType::f16);
  const auto* h = static_cast<const uint16_t*>(out.raw());
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < bits.size(); ++i)
    if (h[i] != float_to_half(bits_float(bits[i])) && bad++ == 0) first = int64_t(i);
  INFO("first mismatch at " << first << " (float bits " << (first >= 0 ? bits[size_t(first)] : 0)
                            << ")");
  CHECK(bad == 0);
  // Above the threading bound: many chunks, the same answer.
  Tensor big = test::random_tensor({3, 100003}, DType::f32, rng, Device::cpu, -70000.0, 70000.0);
  Tensor hb = cast(big, DType::f16);
  const auto* hs = static_cast<const uint16_t*>(hb.raw());
  bad = 0;
  for (int64_t i = 0; i < big.numel(); ++i) bad += hs[i] != float_to_half(big.data<float>()[i]);
  CHECK(bad == 0);
  Tensor back = cast(hb, DType::f32);
  bad = 0;
  for (int64_t i = 0; i < big.numel(); ++i)
    bad += float_bits(back.data<float>()[i]) != float_bits(half_to_float(hs[i]));
  CHECK(bad == 0);
}

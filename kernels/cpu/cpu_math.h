// Branch-free f32 math the CPU kernels share, written so that `omp simd` loops calling it vectorize
// (libm's scalar expf does not).
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace br::cpu {

template <int N>
inline float horner(const float (&c)[N], float x) {
  float p = c[0];
#pragma GCC unroll 16
  for (int i = 1; i < N; ++i) p = std::fma(p, x, c[i]);
  return p;
}

// exp(y) for y <= 0, flushed to 0 below −87.3 (where the result would be subnormal): Cody–Waite
// reduction y = k·ln2 + r, |r| <= ln2/2, Cephes' expf polynomial on r (within 1 ulp), 2^k through
// the exponent bits. Branch-free so `omp simd` vectorizes the loops that call it.
inline float exp_nonpositive(float y) {
  const float yc = y > -87.3f ? y : -87.3f;
  const float t = std::fma(yc, 1.44269504088896341f, 12582912.0f);
  const float k = t - 12582912.0f;
  float r = std::fma(k, -0.693359375f, yc);
  r = std::fma(k, 2.12194440e-4f, r);
  constexpr float c[] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                         4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
  const float p = std::fma(horner(c, r), r * r, r) + 1.0f;
  const float e = p * std::bit_cast<float>((int32_t(k) + 127) << 23);
  return y > -87.3f ? e : 0.0f;
}

}  // namespace br::cpu

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

// erf(x) in f32 within 1 ulp of glibc's erff (checked on a dense grid of [−4.5, 4.5] in
// tests/kernels/test_pointwise_accuracy.cpp), branch-free. With a = min(|x|, 4):
//   a < 0.875:  erf = a + a·P(a²)                          (P: degree 6, |error| < 2.1e-10)
//   otherwise:  erf = 1 − exp(−a²)·R(1/a − 0.6964…)        (R = erfc(a)·exp(a²): degree 11,
//               relative error < 4e-10; a² is split as a2 + a2e by an FMA so exp(−a²) keeps f32
//               accuracy). Beyond a = 4, 1 − erf(a) < 2⁻²⁸ and erf rounds to ±1.
// Chebyshev fits computed with mpmath.chebyfit at 40 digits.
inline float erf_f32(float x) {
  constexpr float kSmall[] = {8.690368907e-05f,  -8.214570887e-04f, 5.207048911e-03f,
                              -2.686170583e-02f, 1.128373521e-01f,  -3.761263621e-01f,
                              1.283791669e-01f};
  constexpr float kTail[] = {1.728482728e-02f,  -1.781064690e-02f, 1.953616651e-03f,
                             1.030497187e-02f,  -2.144568068e-02f, 3.128551116e-02f,
                             -3.109288380e-02f, 9.535983095e-03f,  4.832760841e-02f,
                             -1.624570981e-01f, 3.583542172e-01f,  3.323958864e-01f};
  const float ax = std::fabs(x);
  const float a = ax < 4.0f ? ax : 4.0f;
  const float a2 = a * a, a2e = std::fma(a, a, -a2);
  const float small = std::fma(a, horner(kSmall, a2), a);
  const float tail = exp_nonpositive(-a2) * (1.0f - a2e) * horner(kTail, 1.0f / a - 0.6964285714f);
  const float r = a < 0.875f ? small : 1.0f - tail;
  return std::bit_cast<float>(std::bit_cast<uint32_t>(r) | (std::bit_cast<uint32_t>(x) & 0x80000000u));
}

inline float erf_any(float x) { return erf_f32(x); }
inline double erf_any(double x) { return std::erf(x); }
inline float exp_neg_half_sq(float x) { return exp_nonpositive(-0.5f * x * x); }
inline double exp_neg_half_sq(double x) { return std::exp(-0.5 * x * x); }

// GELU, erf form (BERT): 0.5·x·(1 + erf(x/√2)); f64 through std::erf, f32 through erf_f32.
// Shared by gelu.cpp and fused.cpp, which must give the same bits.
template <typename T>
inline T gelu(T x) {
  const T r2 = T(0.70710678118654752440);
  return T(0.5) * x * (T(1) + erf_any(x * r2));
}

// Φ(x) + x·φ(x) for gelu_grad. In f32 an explicit FMA: left to the compiler, GCC contracted it in
// scalar code but not in vector code, so a value depended on whether its element fell in a
// vectorized stretch (tensor size, thread count, a fused caller's row boundaries). f64 (std::erf,
// never vectorized) keeps the plain form.
inline float cdf_plus(float cdf, float x, float pdf) { return std::fma(x, pdf, cdf); }
inline double cdf_plus(double cdf, double x, double pdf) { return cdf + x * pdf; }

// GELU's derivative Φ(x) + x·φ(x), Φ(x) = ½(1 + erf(x/√2)), φ(x) = exp(−x²/2)/√(2π).
template <typename T>
inline T gelu_grad(T x) {
  const T r2 = T(0.70710678118654752440), rs2pi = T(0.39894228040143267794);
  const T cdf = T(0.5) * (T(1) + erf_any(x * r2));
  const T pdf = rs2pi * exp_neg_half_sq(x);
  return cdf_plus(cdf, x, pdf);
}

}  // namespace br::cpu

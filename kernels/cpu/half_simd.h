// Bulk fp32 <-> fp16 conversion for the CPU kernels (cast, Back Razor pack/unpack), bit for bit
// what core/dtype.h's float_to_half / half_to_float return for every input. With F16C the bulk
// of each array goes through vcvtps2ph (round to nearest even, overflow to inf, subnormals
// rounded exactly: the software rules) and vcvtph2ps (exact); a group of 8 holding a NaN (or,
// from fp16, an inf/NaN exponent) is redone by the scalar functions, which fix the NaN payload to
// the canonical quiet NaN (0x7e00) where the hardware would keep a truncated payload.
// Internal to kernels/cpu/.
#pragma once
#include <cstdint>

#include "core/dtype.h"

#if defined(__F16C__) && defined(__AVX2__)
#include <immintrin.h>
#define BR_CPU_F16C 1
#else
#define BR_CPU_F16C 0
#endif
// AVX-512 forms of the Back Razor pack (16 lanes, vcompressps, masked 16-bit stores).
#if BR_CPU_F16C && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define BR_CPU_AVX512 1
#else
#define BR_CPU_AVX512 0
#endif

namespace br::cpu {

#if BR_CPU_F16C
// 8 floats -> 8 halves, exactly float_to_half (NaN lanes fixed up by the caller's fallback).
inline bool halves8_from_floats(uint16_t* out, __m256 x) {
  if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)) != 0) return false;
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out),
                   _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  return true;
}
// 8 halves -> 8 floats, exactly half_to_float, unless a lane has the inf/NaN exponent.
inline bool floats8_from_halves(__m256* out, __m128i h) {
  const __m128i e = _mm_set1_epi16(0x7c00);
  if (_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(h, e), e)) != 0) return false;
  *out = _mm256_cvtph_ps(h);
  return true;
}
#endif

inline void halves_from_floats(uint16_t* out, const float* in, int64_t n) {
  int64_t i = 0;
#if BR_CPU_F16C
  for (; i + 8 <= n; i += 8)
    if (!halves8_from_floats(out + i, _mm256_loadu_ps(in + i)))
      for (int j = 0; j < 8; ++j) out[i + j] = float_to_half(in[i + j]);
#endif
  for (; i < n; ++i) out[i] = float_to_half(in[i]);
}

inline void floats_from_halves(float* out, const uint16_t* in, int64_t n) {
  int64_t i = 0;
#if BR_CPU_F16C
  for (; i + 8 <= n; i += 8) {
    __m256 v;
    if (floats8_from_halves(&v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))))
      _mm256_storeu_ps(out + i, v);
    else
      for (int j = 0; j < 8; ++j) out[i + j] = half_to_float(in[i + j]);
  }
#endif
  for (; i < n; ++i) out[i] = half_to_float(in[i]);
}

}  // namespace br::cpu

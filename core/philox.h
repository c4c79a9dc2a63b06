// Philox4x32-10 (Salmon et al., SC'11): a counter-based RNG. The same (key, counter) gives the same
// four 32-bit words on the CPU and in a CUDA kernel, so dropout masks agree across backends and
// backward regenerates a mask instead of saving it.
#pragma once
#include <cstdint>
#if (defined(__AVX512F__) || defined(__AVX2__)) && !defined(__CUDACC__)
#include <immintrin.h>
#endif

#if defined(__CUDACC__)
#define BR_HD __host__ __device__ __forceinline__
#else
#define BR_HD inline
#endif

namespace br {

struct Philox4 {
  uint32_t v[4];
};

BR_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}

// Ten rounds; constants from the Random123 reference implementation.
BR_HD Philox4 philox4x32_10(Philox4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(M0, ctr.v[0], hi0, lo0);
    philox_mulhilo(M1, ctr.v[2], hi1, lo1);
    ctr = Philox4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

// A uniform float in [0, 1) from the top 24 bits of a word: exact in fp32, identical everywhere.
BR_HD float philox_uniform(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }

// Identifies one dropout site in one step. Element e of sample `example` (its index in the
// dataset, not its row in the batch) draws word e%4 of philox(counter = {e/4, example, site, step},
// key = seed), so a mask does not depend on how a batch is split across ranks or micro-batches.
struct DropoutKey {
  uint64_t seed = 0;
  uint32_t step = 0;
  uint32_t site = 0;
  // Attention's score rows (kernels/attention.h): element (n, i, j) of a sample is e = (n·L + i)·L
  // + j with L = length, at least the keys S; 0: L = S. The model sets its
  // max_position_embeddings, so that a mask depends neither on how far a batch is padded nor on
  // how it is split. Other dropout ignores it.
  uint32_t length = 0;
};

// The row stride L of attention's dropout elements for S keys (DropoutKey::length).
BR_HD uint32_t attention_dropout_stride(const DropoutKey& key, uint32_t S) {
  return key.length ? key.length : S;
}

BR_HD float dropout_uniform(const DropoutKey& key, uint32_t example, uint32_t element) {
  Philox4 r = philox4x32_10(Philox4{{element >> 2, example, key.site, key.step}},
                            uint32_t(key.seed), uint32_t(key.seed >> 32));
  return philox_uniform(r.v[element & 3u]);
}

// The CPU backends draw dropout words for kDropoutLanes consecutive counters at once:
// u[4l + w] = word w of philox4x32_10({g0 + l, example, site, step}, seed), so u[t] is the word
// dropout_uniform reads for element 4·g0 + t. The rounds of philox4x32_10 in structure-of-arrays
// form, which the compiler vectorizes across the counters (integer math: bit-identical words).
constexpr int kDropoutLanes = 16;
constexpr int kDropoutBlock = 4 * kDropoutLanes;

#if defined(__AVX512F__) && !defined(__CUDACC__) && defined(__SANITIZE_ADDRESS__)
// Not instrumented: ASan's detect_stack_use_after_return puts an instrumented frame on its fake
// stack, which keeps 32-byte alignment only, and GCC spills the zmm temporaries below with aligned
// 64-byte moves (a fault under tools/sanitize.sh). Uninstrumented, the function keeps its own frame;
// it touches no memory but the 64 words of u.
__attribute__((no_sanitize_address))
#endif
inline void dropout_words(uint32_t (&u)[kDropoutBlock], uint32_t g0, uint32_t example,
                          const DropoutKey& key) {
  const uint32_t k0 = uint32_t(key.seed), k1 = uint32_t(key.seed >> 32);
#if defined(__AVX512F__) && !defined(__CUDACC__)
  // The same rounds on 16 counters in zmm registers: each 32x32->64 product as vpmuludq on the
  // even and the odd lanes, then the words transposed to the output order (1.3x the compiler's
  // vectorization of the loop below, which widens every lane to 64 bits first).
  __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(int(g0)),
                                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  __m512i c1 = _mm512_set1_epi32(int(example)), c2 = _mm512_set1_epi32(int(key.site)),
          c3 = _mm512_set1_epi32(int(key.step));
  const __m512i m0 = _mm512_set1_epi32(int(0xD2511F53u)), m1 = _mm512_set1_epi32(int(0xCD9E8D57u));
  uint32_t a = k0, b = k1;
  for (int r = 0; r < 10; ++r) {
    const __m512i e0 = _mm512_mul_epu32(c0, m0), o0 = _mm512_mul_epu32(_mm512_srli_epi64(c0, 32), m0);
    const __m512i e1 = _mm512_mul_epu32(c2, m1), o1 = _mm512_mul_epu32(_mm512_srli_epi64(c2, 32), m1);
    const __m512i hi0 = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(e0, 32), o0);
    const __m512i lo0 = _mm512_mask_blend_epi32(0xAAAA, e0, _mm512_slli_epi64(o0, 32));
    const __m512i hi1 = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(e1, 32), o1);
    const __m512i lo1 = _mm512_mask_blend_epi32(0xAAAA, e1, _mm512_slli_epi64(o1, 32));
    const __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(int(a)));
    const __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(int(b)));
    c1 = lo1;
    c3 = lo0;
    c0 = n0;
    c2 = n2;
    a += 0x9E3779B9u;
    b += 0xBB67AE85u;
  }
  // u[4l + w] = word w of lane l: a 4x16 transpose.
  const __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
  const __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
  const __m512i q0 = _mm512_unpacklo_epi64(t0, t2), q1 = _mm512_unpackhi_epi64(t0, t2);
  const __m512i q2 = _mm512_unpacklo_epi64(t1, t3), q3 = _mm512_unpackhi_epi64(t1, t3);
  const __m512i lo01 = _mm512_shuffle_i32x4(q0, q1, 0x44), hi01 = _mm512_shuffle_i32x4(q0, q1, 0xEE);
  const __m512i lo23 = _mm512_shuffle_i32x4(q2, q3, 0x44), hi23 = _mm512_shuffle_i32x4(q2, q3, 0xEE);
  _mm512_storeu_si512(u + 0, _mm512_shuffle_i32x4(lo01, lo23, 0x88));
  _mm512_storeu_si512(u + 16, _mm512_shuffle_i32x4(lo01, lo23, 0xDD));
  _mm512_storeu_si512(u + 32, _mm512_shuffle_i32x4(hi01, hi23, 0x88));
  _mm512_storeu_si512(u + 48, _mm512_shuffle_i32x4(hi01, hi23, 0xDD));
#elif defined(__AVX2__) && !defined(__CUDACC__)
  // The same rounds in ymm registers, 8 counters per register and two registers' worth in flight
  // (lanes 0-7 and 8-15), each product as vpmuludq on the even and the odd lanes: 2.6-2.9x the
  // compiler's vectorization of the loop below on an AVX2-only Zen 3 core, the same words.
  const __m256i m0 = _mm256_set1_epi32(int(0xD2511F53u)), m1 = _mm256_set1_epi32(int(0xCD9E8D57u));
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i c0[2], c1[2], c2[2], c3[2];
  for (int h = 0; h < 2; ++h) {
    c0[h] = _mm256_add_epi32(_mm256_set1_epi32(int(g0 + 8u * uint32_t(h))), iota);
    c1[h] = _mm256_set1_epi32(int(example));
    c2[h] = _mm256_set1_epi32(int(key.site));
    c3[h] = _mm256_set1_epi32(int(key.step));
  }
  uint32_t a = k0, b = k1;
  for (int r = 0; r < 10; ++r) {
    const __m256i ka = _mm256_set1_epi32(int(a)), kb = _mm256_set1_epi32(int(b));
    for (int h = 0; h < 2; ++h) {
      const __m256i e0 = _mm256_mul_epu32(c0[h], m0);
      const __m256i o0 = _mm256_mul_epu32(_mm256_srli_epi64(c0[h], 32), m0);
      const __m256i e1 = _mm256_mul_epu32(c2[h], m1);
      const __m256i o1 = _mm256_mul_epu32(_mm256_srli_epi64(c2[h], 32), m1);
      const __m256i hi0 = _mm256_blend_epi32(_mm256_srli_epi64(e0, 32), o0, 0xAA);
      const __m256i lo0 = _mm256_blend_epi32(e0, _mm256_slli_epi64(o0, 32), 0xAA);
      const __m256i hi1 = _mm256_blend_epi32(_mm256_srli_epi64(e1, 32), o1, 0xAA);
      const __m256i lo1 = _mm256_blend_epi32(e1, _mm256_slli_epi64(o1, 32), 0xAA);
      const __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[h]), ka);
      const __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[h]), kb);
      c1[h] = lo1;
      c3[h] = lo0;
      c0[h] = n0;
      c2[h] = n2;
    }
    a += 0x9E3779B9u;
    b += 0xBB67AE85u;
  }
  // u[4l + w] = word w of lane l: a 4x8 transpose per register.
  for (int h = 0; h < 2; ++h) {
    const __m256i t0 = _mm256_unpacklo_epi32(c0[h], c1[h]), t1 = _mm256_unpackhi_epi32(c0[h], c1[h]);
    const __m256i t2 = _mm256_unpacklo_epi32(c2[h], c3[h]), t3 = _mm256_unpackhi_epi32(c2[h], c3[h]);
    const __m256i q0 = _mm256_unpacklo_epi64(t0, t2), q1 = _mm256_unpackhi_epi64(t0, t2);
    const __m256i q2 = _mm256_unpacklo_epi64(t1, t3), q3 = _mm256_unpackhi_epi64(t1, t3);
    uint32_t* o = u + 32 * h;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 0), _mm256_permute2x128_si256(q0, q1, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 8), _mm256_permute2x128_si256(q2, q3, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 16), _mm256_permute2x128_si256(q0, q1, 0x31));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 24), _mm256_permute2x128_si256(q2, q3, 0x31));
  }
#else
  uint32_t words[4][kDropoutLanes];
#if defined(_OPENMP)
#pragma omp simd
#endif
  for (int l = 0; l < kDropoutLanes; ++l) {
    uint32_t c0 = g0 + uint32_t(l), c1 = example, c2 = key.site, c3 = key.step, a = k0, b = k1;
    for (int r = 0; r < 10; ++r) {
      const uint64_t m0 = uint64_t(0xD2511F53u) * c0, m1 = uint64_t(0xCD9E8D57u) * c2;
      const uint32_t n0 = uint32_t(m1 >> 32) ^ c1 ^ a, n2 = uint32_t(m0 >> 32) ^ c3 ^ b;
      c1 = uint32_t(m1);
      c3 = uint32_t(m0);
      c0 = n0;
      c2 = n2;
      a += 0x9E3779B9u;
      b += 0xBB67AE85u;
    }
    words[0][l] = c0, words[1][l] = c1, words[2][l] = c2, words[3][l] = c3;
  }
  for (int l = 0; l < kDropoutLanes; ++l)
    for (int w = 0; w < 4; ++w) u[4 * l + w] = words[w][l];
#endif
}

}  // namespace br

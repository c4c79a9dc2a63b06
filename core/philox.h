// Philox4x32-10 (Salmon et al., SC'11): a counter-based RNG. The same (key, counter) gives the same
// four 32-bit words on the CPU and in a CUDA kernel, so dropout masks agree across backends and
// backward regenerates a mask instead of saving it.
#pragma once
#include <cstdint>

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
};

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

inline void dropout_words(uint32_t (&u)[kDropoutBlock], uint32_t g0, uint32_t example,
                          const DropoutKey& key) {
  const uint32_t k0 = uint32_t(key.seed), k1 = uint32_t(key.seed >> 32);
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
}

}  // namespace br

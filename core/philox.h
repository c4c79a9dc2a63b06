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

}  // namespace br

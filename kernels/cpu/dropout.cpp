#include "kernels/cpu/dropout.h"

#include <algorithm>

namespace br::cpu {

namespace {

constexpr int kLanes = 16;
constexpr int64_t kBlock = 4 * kLanes;

// u[4l + w] = word w of philox4x32_10({g0 + l, example, site, step}, seed) for l < kLanes: the
// Philox rounds of core/philox.h in structure-of-arrays form so the compiler vectorizes them across
// the 16 counters (bit-identical words; as in kernels/cpu/attention.cpp), then written in element
// order.
inline void philox_block(uint32_t* u, uint32_t g0, uint32_t example, const DropoutKey& key) {
  const uint32_t k0 = uint32_t(key.seed), k1 = uint32_t(key.seed >> 32);
  uint32_t words[4][kLanes];
#pragma omp simd
  for (int l = 0; l < kLanes; ++l) {
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
  for (int l = 0; l < kLanes; ++l)
    for (int w = 0; w < 4; ++w) u[4 * l + w] = words[w][l];
}

// Element e of row r is kept when dropout_uniform(key, ids[r], e) >= p, i.e. word e%4 of the Philox
// call with counter e/4; rows are processed in blocks of kBlock elements (kLanes calls).
template <typename T>
void apply_impl(T* out, const T* inp, float p, const DropoutKey& key, const int32_t* ids,
                int64_t rows, int64_t n) {
  const T scale = p < 1.0f ? T(1) / (T(1) - T(p)) : T(0);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for collapse(2) schedule(static) if (rows * n > (1 << 14))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t e0 = blk * kBlock, len = std::min(kBlock, n - e0);
      uint32_t u[kBlock];
      philox_block(u, uint32_t(e0 / 4), uint32_t(ids[r]), key);
      const T* a = inp + r * n + e0;
      T* o = out + r * n + e0;
#pragma omp simd
      for (int64_t t = 0; t < len; ++t) o[t] = philox_uniform(u[t]) >= p ? a[t] * scale : T(0);
    }
}

}  // namespace

void dropout_apply(const Tensor& out, const Tensor& inp, float p, const DropoutKey& key,
                   const Tensor& example_ids, int64_t rows, int64_t n) {
  const int32_t* ids = example_ids.data<int32_t>();
  switch (out.dtype()) {
    case DType::f32: return apply_impl(out.data<float>(), inp.data<float>(), p, key, ids, rows, n);
    case DType::f64: return apply_impl(out.data<double>(), inp.data<double>(), p, key, ids, rows, n);
    default: fail("dropout: CPU supports f32 and f64, got {}", out.str());
  }
}

}  // namespace br::cpu

#include "kernels/cpu/dropout.h"

#include <algorithm>

namespace br::cpu {

namespace {

// Element e of row r is kept when dropout_uniform(key, ids[r], e) >= p; one Philox call serves the
// four elements e = 4j..4j+3 (the words dropout_uniform would pick for each).
template <typename T>
void apply_impl(T* out, const T* inp, float p, const DropoutKey& key, const int32_t* ids,
                int64_t rows, int64_t n) {
  const T scale = p < 1.0f ? T(1) / (T(1) - T(p)) : T(0);
  const int64_t groups = (n + 3) / 4;
#pragma omp parallel for if (rows * n > (1 << 14))
  for (int64_t r = 0; r < rows; ++r) {
    const uint32_t ex = uint32_t(ids[r]);
    const T* a = inp + r * n;
    T* o = out + r * n;
    for (int64_t j = 0; j < groups; ++j) {
      const Philox4 w = philox4x32_10(Philox4{{uint32_t(j), ex, key.site, key.step}},
                                      uint32_t(key.seed), uint32_t(key.seed >> 32));
      const int64_t e1 = std::min<int64_t>(n, 4 * j + 4);
      for (int64_t e = 4 * j; e < e1; ++e)
        o[e] = philox_uniform(w.v[e & 3]) >= p ? a[e] * scale : T(0);
    }
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

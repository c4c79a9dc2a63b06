#include "kernels/cpu/cpu_ops.h"

#include <algorithm>

namespace br::cpu {

namespace {

// Element e of row r is kept when dropout_uniform(key, ids[r], e) >= p, i.e. word e%4 of the Philox
// call with counter e/4; rows are processed in blocks of kDropoutBlock elements.
template <typename T>
void apply_impl(T* out, const T* inp, float p, const DropoutKey& key, const int32_t* ids,
                int64_t rows, int64_t n) {
  const T scale = p < 1.0f ? T(1) / (T(1) - T(p)) : T(0);
  const int64_t blocks = (n + kDropoutBlock - 1) / kDropoutBlock;
#pragma omp parallel for collapse(2) schedule(static) if (rows * n > (1 << 14))
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t e0 = blk * kDropoutBlock, len = std::min<int64_t>(kDropoutBlock, n - e0);
      uint32_t u[kDropoutBlock];
      dropout_words(u, uint32_t(e0 / 4), uint32_t(ids[r]), key);
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

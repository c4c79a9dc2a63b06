// Small helpers shared by the pointwise/row-op tests (gelu, layernorm, softmax, dropout, embedding,
// loss): f64 random inputs, poisoned outputs, and the bf16 round trip that lets a CUDA result be
// compared with a CPU reference computed from exactly the same (rounded) inputs.
#pragma once
#include "harness.h"

namespace br::test {

inline Tensor rand64(const Shape& s, std::mt19937_64& rng, double lo = -1.0, double hi = 1.0) {
  return random_tensor(s, DType::f64, rng, Device::cpu, lo, hi);
}

inline Tensor poisoned(const Shape& s, DType d, Device dev = Device::cpu) {
  Tensor t = Tensor::empty(s, d, dev);
  poison(t);
  return t;
}

// A f32 CPU tensor whose values are representable in `d` (identity for f32).
inline Tensor round_through(const Tensor& t, DType d) {
  return to_dtype_device(to_dtype_device(t, d, Device::cpu), DType::f32, Device::cpu);
}

inline Tensor ids_tensor(const std::vector<int32_t>& v, const Shape& s, Device d = Device::cpu) {
  return Tensor::from_host(v, s, d);
}

}  // namespace br::test

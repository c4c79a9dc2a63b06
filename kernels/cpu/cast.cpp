#include "kernels/cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/half_simd.h"

namespace br::cpu {

namespace {

double load(const Tensor& t, int64_t i) {
  const void* p = t.raw();
  switch (t.dtype()) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f64: return static_cast<const double*>(p)[i];
    case DType::f16: return half_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::bf16: return bf16_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::i32: return static_cast<const int32_t*>(p)[i];
    case DType::i64: return double(static_cast<const int64_t*>(p)[i]);
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}

// Narrowing to 16 bits goes through float, as a GPU would (double -> float -> half).
void store(const Tensor& t, int64_t i, double v) {
  void* p = t.raw();
  switch (t.dtype()) {
    case DType::f32: static_cast<float*>(p)[i] = float(v); break;
    case DType::f64: static_cast<double*>(p)[i] = v; break;
    case DType::f16: static_cast<uint16_t*>(p)[i] = float_to_half(float(v)); break;
    case DType::bf16: static_cast<uint16_t*>(p)[i] = float_to_bf16(float(v)); break;
    default: fail("cast: unsupported output {}", t.str());
  }
}

// f(start, length) over [0, n) in chunks of 2^14 elements, on every thread when n > 2^16.
template <class F>
void in_chunks(int64_t n, F&& f) {
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
  for (int64_t c = 0; c < chunks; ++c) f(c * kChunk, std::min(kChunk, n - c * kChunk));
}

}  // namespace

void cast(const Tensor& out, const Tensor& in) {
  const int64_t n = in.numel();
  if (in.dtype() == out.dtype()) {
    out.copy_from(in);
    return;
  }
  if (in.dtype() == DType::f32 && out.dtype() == DType::f16) {
    const float* s = in.data<float>();
    auto* d = static_cast<uint16_t*>(out.raw());
    in_chunks(n, [&](int64_t i, int64_t len) { halves_from_floats(d + i, s + i, len); });
    return;
  }
  if (in.dtype() == DType::f16 && out.dtype() == DType::f32) {
    const auto* s = static_cast<const uint16_t*>(in.raw());
    float* d = out.data<float>();
    in_chunks(n, [&](int64_t i, int64_t len) { floats_from_halves(d + i, s + i, len); });
    return;
  }
  if (in.dtype() == DType::f32 && out.dtype() == DType::bf16) {  // the CPU bf16 weight copies
    const float* s = in.data<float>();
    auto* d = static_cast<uint16_t*>(out.raw());
    in_chunks(n, [&](int64_t i, int64_t len) {
#pragma omp simd
      for (int64_t j = i; j < i + len; ++j) d[j] = float_to_bf16(s[j]);
    });
    return;
  }
  for (int64_t i = 0; i < n; ++i) store(out, i, load(in, i));
}

void fill(const Tensor& out, double value) {
  const int64_t n = out.numel();
  if (value == 0.0 && !std::signbit(value)) {  // all-zero bits: memset,
    // on both cores for large tensors (a step's gradients: one core's stores reach ~8 GB/s here)
    char* p = static_cast<char*>(out.raw());
    const int64_t es = int64_t(dtype_size(out.dtype()));
    in_chunks(n, [&](int64_t i, int64_t len) { std::memset(p + i * es, 0, size_t(len * es)); });
    return;
  }
  if (out.dtype() == DType::f32) {
    float* p = out.data<float>();
    const float v = float(value);
    in_chunks(n, [&](int64_t i, int64_t len) { std::fill(p + i, p + i + len, v); });
    return;
  }
  for (int64_t i = 0; i < n; ++i) store(out, i, value);
}

}  // namespace br::cpu

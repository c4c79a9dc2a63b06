#include "kernels/cpu/cpu_ops.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#if defined(__AVX512F__) || defined(__AVX__)
// GCC 12 reports a false -Wmaybe-uninitialized inside its own AVX-512 intrinsics (as for Eigen's
// kernels in gemm.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace br::cpu {

namespace {

// The update is written once over a lane type V: float for the tail, and a GCC vector of floats
// where the CPU has one. Not a plain `omp simd` loop: GCC keeps std::sqrt scalar under errno
// semantics (-fmath-errno, the default), and the scalar loop ran at a third of the memory
// bandwidth. Vector sqrt, division and fma are IEEE-exact per lane like their scalar forms, and
// both forms go through the same expressions (and so the same FMA contraction), so each
// element's result does not depend on whether it fell in a vector or in the tail.
#if defined(__AVX512F__)
constexpr int64_t kLanes = 16;
using Vec = float __attribute__((vector_size(64)));
inline Vec sqrt_(Vec x) { return Vec(_mm512_sqrt_ps(__m512(x))); }
inline Vec fma_(Vec a, Vec b, Vec c) { return Vec(_mm512_fmadd_ps(__m512(a), __m512(b), __m512(c))); }
#elif defined(__AVX__)
constexpr int64_t kLanes = 8;
using Vec = float __attribute__((vector_size(32)));
inline Vec sqrt_(Vec x) { return Vec(_mm256_sqrt_ps(__m256(x))); }
#if defined(__FMA__)
inline Vec fma_(Vec a, Vec b, Vec c) { return Vec(_mm256_fmadd_ps(__m256(a), __m256(b), __m256(c))); }
#else
inline Vec fma_(Vec a, Vec b, Vec c) {
  for (int i = 0; i < 8; ++i) a[i] = std::fma(a[i], b[i], c[i]);
  return a;
}
#endif
#else
constexpr int64_t kLanes = 1;
#endif
inline float sqrt_(float x) { return std::sqrt(x); }
inline float fma_(float a, float b, float c) { return std::fma(a, b, c); }

// The value of x, opaque to the optimizer: an expression using it cannot fuse the multiply that
// made x into a following add (FMA contraction). The update before this file's vector form
// rounded p·(1 − lr·wd) before adding the step (the decay was a run-time branch there), and it
// must keep doing so to stay bit-identical.
template <typename V>
inline V rounded(V x) {
#if defined(__AVX512F__)
  asm("" : "+v"(x));
#elif defined(__x86_64__) || defined(__i386__)
  asm("" : "+x"(x));
#endif
  return x;
}

// torch.Tensor.lerp_(end, w) as ATen's vectorized CPU kernel: fma(w, end − self, self) when
// |w| < 0.5 (SMALL_W), else fma(w − 1, end − self, end). The choice is a template argument so the
// update has no branch in it.
template <bool SMALL_W, typename V>
inline V lerp(V self, V end, float w) {
  if constexpr (SMALL_W) return fma_(w + V{}, end - self, self);
  else return fma_((w - 1.0f) + V{}, end - self, end);
}

// One element (or one vector of them): returns p and updates m, v in place.
template <bool HF, bool DECAY, bool SMALL_W, typename V>
inline V step(V p, V g, V& m, V& v, const AdamWScalars& s) {
  const V vi = v * s.beta2 + (s.w2 * g) * g;
  v = vi;
  if constexpr (HF) {
    const V mi = m * s.beta1 + s.w1 * g;
    m = mi;
    V pi = p + (s.neg_step * mi) / (sqrt_(vi) + s.eps);
    if constexpr (DECAY) pi = pi + s.hf_decay * pi;
    return pi;
  } else {
    const V mi = lerp<SMALL_W>(m, g, s.w1);
    m = mi;
    const V pi = DECAY ? rounded(p * s.decay) : p;
    return pi + (s.neg_step * mi) / (sqrt_(vi) / s.bc2_sqrt + s.eps);
  }
}

// One pass over p, g, m, v: whole vectors, then the tail one element at a time.
template <bool HF, bool DECAY, bool SMALL_W>
void update(float* p, const float* g, float* m, float* v, int64_t n, const AdamWScalars& s) {
  int64_t i = 0;
#if defined(__AVX512F__) || defined(__AVX__)
  for (; i + kLanes <= n; i += kLanes) {
    Vec pv, gv, mv, vv;
    std::memcpy(&pv, p + i, sizeof(Vec));
    std::memcpy(&gv, g + i, sizeof(Vec));
    std::memcpy(&mv, m + i, sizeof(Vec));
    std::memcpy(&vv, v + i, sizeof(Vec));
    pv = step<HF, DECAY, SMALL_W>(pv, gv, mv, vv, s);
    std::memcpy(p + i, &pv, sizeof(Vec));
    std::memcpy(m + i, &mv, sizeof(Vec));
    std::memcpy(v + i, &vv, sizeof(Vec));
  }
#endif
  for (; i < n; ++i) p[i] = step<HF, DECAY, SMALL_W>(p[i], g[i], m[i], v[i], s);
}

void update(float* p, const float* g, float* m, float* v, int64_t n, bool decay,
            const AdamWScalars& s) {
  if (s.hf) {
    if (decay && s.hf_decay != 0.0f) return update<true, true, false>(p, g, m, v, n, s);
    return update<true, false, false>(p, g, m, v, n, s);
  }
  const bool small_w = std::fabs(s.w1) < 0.5f;
  if (decay) {
    if (small_w) return update<false, true, true>(p, g, m, v, n, s);
    return update<false, true, false>(p, g, m, v, n, s);
  }
  if (small_w) return update<false, false, true>(p, g, m, v, n, s);
  update<false, false, false>(p, g, m, v, n, s);
}

// Below this many elements in all the tensors together the update runs on the calling thread.
constexpr int64_t kParallelElements = int64_t(1) << 18;

}  // namespace

// One parallel region over the concatenation of all the tensors: thread t of T updates elements
// [t·N/T, (t+1)·N/T) of it, whichever tensors they fall in. Elements are independent, so the split
// changes nothing in the result.
void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& ms, const std::vector<Tensor>& vs,
                const std::vector<bool>& decay, const AdamWScalars& s) {
  const size_t count = params.size();
  std::vector<int64_t> start(count + 1, 0);
  for (size_t i = 0; i < count; ++i) start[i + 1] = start[i] + params[i].numel();
  const int64_t total = start[count];
#pragma omp parallel if (total > kParallelElements)
  {
    const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t lo = total * t / T, hi = total * (t + 1) / T;
    for (size_t i = 0; i < count; ++i) {
      const int64_t a = std::max(lo, start[i]), b = std::min(hi, start[i + 1]);
      if (a >= b) continue;
      const int64_t off = a - start[i];
      update(params[i].data<float>() + off, grads[i].data<float>() + off, ms[i].data<float>() + off,
             vs[i].data<float>() + off, b - a, decay[i], s);
    }
  }
}

}  // namespace br::cpu

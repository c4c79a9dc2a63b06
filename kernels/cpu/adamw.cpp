#include "kernels/cpu/cpu_ops.h"

#include <cmath>

namespace br::cpu {

namespace {

// torch.Tensor.lerp_(end, w) as ATen's vectorized CPU kernel: fma(w, end − self, self) when
// |w| < 0.5, else fma(w − 1, end − self, end).
inline float lerp(float self, float end, float w) {
  return std::fabs(w) < 0.5f ? std::fma(w, end - self, self) : std::fma(w - 1.0f, end - self, end);
}

void update(float* p, const float* g, float* m, float* v, int64_t n, bool decay,
            const AdamWScalars& s) {
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float vi = v[i] * s.beta2 + (s.w2 * gi) * gi;
    v[i] = vi;
    if (s.hf) {
      const float mi = m[i] * s.beta1 + s.w1 * gi;
      m[i] = mi;
      float pi = p[i] + (s.neg_step * mi) / (std::sqrt(vi) + s.eps);
      if (decay && s.hf_decay != 0.0f) pi = pi + s.hf_decay * pi;
      p[i] = pi;
    } else {
      const float mi = lerp(m[i], gi, s.w1);
      m[i] = mi;
      const float pi = decay ? p[i] * s.decay : p[i];
      p[i] = pi + (s.neg_step * mi) / (std::sqrt(vi) / s.bc2_sqrt + s.eps);
    }
  }
}

}  // namespace

void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& ms, const std::vector<Tensor>& vs,
                const std::vector<bool>& decay, const AdamWScalars& s) {
  for (size_t i = 0; i < params.size(); ++i)
    update(params[i].data<float>(), grads[i].data<float>(), ms[i].data<float>(),
           vs[i].data<float>(), params[i].numel(), decay[i], s);
}

}  // namespace br::cpu

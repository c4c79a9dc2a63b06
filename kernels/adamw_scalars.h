// The per-step scalars of AdamW, computed once on the host in double the way PyTorch computes them
// in Python floats, then rounded to float for the elementwise update (see kernels/adamw.h). Shared
// by the CPU and CUDA backends so both apply the same numbers.
#pragma once
#include <cstdint>

#include "kernels/adamw.h"

namespace br {

struct AdamWScalars {
  bool hf;
  float beta1, beta2, eps;
  float w1;          // 1 − β1 (lerp weight for torch; add_ alpha for hf)
  float w2;          // 1 − β2
  float decay;       // torch: 1 − lr·wd (multiplier, applied before the update)
  float hf_decay;    // hf: −lr·wd (added as hf_decay·p after the update); 0 disables
  float neg_step;    // torch: −lr/(1−β1^t); hf: −lr·sqrt(1−β2^t)/(1−β1^t)
  float bc2_sqrt;    // torch: sqrt(1−β2^t) (denominator divisor); hf: unused
};

// Decimal round trip: a float config value (0.9f) becomes the double Python would hold for the
// same literal (0.9), so 1 − β1 and friends round as they do in PyTorch.
double python_double(float x);
AdamWScalars adamw_scalars(const AdamWConfig& cfg, int64_t step);

}  // namespace br

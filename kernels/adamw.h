// AdamW on fp32 parameters, gradients and moments of equal shape; `step` counts from 1. The bias
// corrections are computed in double on the host (as PyTorch does in Python floats), then every
// per-element operation runs in fp32 with the scalars rounded to float, in PyTorch's order:
// adamw_torch (hf_variant = false, torch.optim.AdamW):
//   p = p·float(1 − lr·wd); m = m + float(1−β1)·(g − m); v = v·β2 + (float(1−β2)·g)·g;
//   p = p + (float(−lr/(1−β1^t))·m) / (sqrt(v)/float(sqrt(1−β2^t)) + eps)
// adamw_hf (hf_variant = true, transformers.AdamW of 4.11, correct_bias = True):
//   m = m·β1 + float(1−β1)·g; v as above;
//   p = p + (float(−lr·sqrt(1−β2^t)/(1−β1^t))·m) / (sqrt(v) + eps); then p = p + float(−lr·wd)·p
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace br {

struct AdamWConfig {
  float lr;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  bool hf_variant = false;
};

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                const AdamWConfig& cfg, int64_t step);
// All tensors in one call (one kernel launch on CUDA); decay[i] says whether tensor i is decayed
// (weight_decay applies) or not (biases, LayerNorm weights).
void adamw_step(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                const std::vector<Tensor>& ms, const std::vector<Tensor>& vs,
                const std::vector<bool>& decay, const AdamWConfig& cfg, int64_t step);

}  // namespace br

// Attention softmax over the last dim with an additive per-key mask.
// dtypes: CPU f32/f64, CUDA f32/bf16 (fp32 math); mask is f32 everywhere. A row whose every logit is
// −inf yields all-zero probabilities (not NaN). dscores may alias dprobs.
#pragma once
#include "core/tensor.h"

namespace br {

// probs[B,N,Sq,Sk] = softmax_lastdim(scale·scores + mask[b, k]); mask [B,Sk] f32 additive (0 or a large negative), may be undefined.
void softmax_forward(const Tensor& probs, const Tensor& scores, const Tensor& mask, float scale);
// dscores = scale · probs ⊙ (dprobs − Σ_k dprobs⊙probs)
void softmax_backward(const Tensor& dscores, const Tensor& dprobs, const Tensor& probs, float scale);

}  // namespace br

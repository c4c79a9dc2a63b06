#pragma once
#include "core/tensor.h"

namespace br::cuda {
// rows = B·N·Sq rows of Sk; row r uses mask row r / rows_per_batch.
void softmax_forward(const Tensor& probs, const Tensor& scores, const Tensor& mask, float scale,
                     int64_t rows_per_batch, int64_t Sk);
void softmax_backward(const Tensor& dscores, const Tensor& dprobs, const Tensor& probs, float scale,
                      int64_t Sk);
}  // namespace br::cuda

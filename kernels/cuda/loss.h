#pragma once
#include "core/tensor.h"

namespace br::cuda {
void cross_entropy_forward(const Tensor& loss, const Tensor& logits, const Tensor& labels);
void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& labels,
                            float dloss);
void mse_forward(const Tensor& loss, const Tensor& preds, const Tensor& targets);
void mse_backward(const Tensor& dpreds, const Tensor& preds, const Tensor& targets, float dloss);
}  // namespace br::cuda

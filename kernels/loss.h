// Classification and regression losses (mean over the batch). loss: 1 element, f32 (f64 allowed
// when the inputs are f64 on the CPU). dtypes: CPU logits/preds/targets f32 or f64 (one dtype);
// CUDA logits/preds f32 or bf16, targets f32 or the preds dtype (fp32 math). Labels out of [0, C)
// throw naming the label, its row and C (CUDA: a device-side flag read back after the kernel).
#pragma once
#include "core/tensor.h"

namespace br {

// loss[1] (f32 tensor, on the device) = mean over rows of −log softmax(logits[B,C])[labels[b]]; labels i32 [B]
void cross_entropy_forward(const Tensor& loss, const Tensor& logits, const Tensor& labels);
// dlogits = dloss · (softmax(logits) − onehot(labels)) / B
void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& labels,
                            float dloss);
// loss[1] = mean (preds[B] − targets[B])²  (preds may be [B,1]); dpreds = dloss·2(preds − targets)/B
void mse_forward(const Tensor& loss, const Tensor& preds, const Tensor& targets);
void mse_backward(const Tensor& dpreds, const Tensor& preds, const Tensor& targets, float dloss);

}  // namespace br

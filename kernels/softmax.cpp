#include "kernels/softmax.h"
#include "kernels/profile.h"

#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

void softmax_forward(const Tensor& probs, const Tensor& scores, const Tensor& mask, float scale) {
  BR_PROFILE("softmax_forward");
  const char* op = "softmax_forward";
  check_defined(op, "scores", scores);
  BR_CHECK(scores.dim() == 4 && scores.numel() >= 1, "{}: scores {} must be [B,N,Sq,Sk], non-empty",
           op, scores.str());
  check_like(op, "probs", probs, scores);
  const int64_t B = scores.size(0), Sk = scores.size(3);
  if (mask.defined()) {
    check_shape(op, "mask", mask, {B, Sk});
    check_dtype(op, "mask", mask, DType::f32);
    check_same_device(op, scores, mask);
  }
  BR_CHECK(std::isfinite(scale), "{}: scale {} must be finite", op, scale);
  const int64_t rows_per_batch = scores.size(1) * scores.size(2);
  if (scores.device() == Device::cpu)
    return cpu::softmax_forward(probs, scores, mask, scale, rows_per_batch, Sk);
#if BERTRAZOR_WITH_CUDA
  return cuda::softmax_forward(probs, scores, mask, scale, rows_per_batch, Sk);
#endif
}

void softmax_backward(const Tensor& dscores, const Tensor& dprobs, const Tensor& probs, float scale) {
  BR_PROFILE("softmax_backward");
  const char* op = "softmax_backward";
  check_defined(op, "probs", probs);
  BR_CHECK(probs.dim() >= 1 && probs.numel() >= 1, "{}: probs {} must be non-empty", op, probs.str());
  check_like(op, "dprobs", dprobs, probs);
  check_like(op, "dscores", dscores, probs);
  const int64_t Sk = probs.size(-1);
  if (probs.device() == Device::cpu) return cpu::softmax_backward(dscores, dprobs, probs, scale, Sk);
#if BERTRAZOR_WITH_CUDA
  return cuda::softmax_backward(dscores, dprobs, probs, scale, Sk);
#endif
}

}  // namespace br

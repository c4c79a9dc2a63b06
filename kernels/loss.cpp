#include "kernels/loss.h"
#include "kernels/profile.h"

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

namespace {

void check_loss(const char* op, const Tensor& loss, const Tensor& x) {
  check_defined(op, "loss", loss);
  BR_CHECK(loss.numel() == 1, "{}: loss {} must have one element", op, loss.str());
  const bool f64_ok = x.dtype() == DType::f64 && x.device() == Device::cpu;
  BR_CHECK(loss.dtype() == DType::f32 || (f64_ok && loss.dtype() == DType::f64),
           "{}: loss {} must be f32{}", op, loss.str(), f64_ok ? " or f64" : "");
  check_same_device(op, x, loss);
}

void check_logits(const char* op, const Tensor& logits, const Tensor& labels) {
  check_defined(op, "logits", logits);
  check_defined(op, "labels", labels);
  BR_CHECK(logits.dim() == 2 && logits.size(0) >= 1 && logits.size(1) >= 1,
           "{}: logits {} must be [B,C] with B, C >= 1", op, logits.str());
  BR_CHECK(is_floating(logits.dtype()), "{}: logits {} must be floating", op, logits.str());
  check_shape(op, "labels", labels, {logits.size(0)});
  check_dtype(op, "labels", labels, DType::i32);
  check_same_device(op, logits, labels);
}

void check_regression(const char* op, const Tensor& preds, const Tensor& targets) {
  check_defined(op, "preds", preds);
  check_defined(op, "targets", targets);
  BR_CHECK((preds.dim() == 1 || (preds.dim() == 2 && preds.size(1) == 1)) && preds.numel() >= 1,
           "{}: preds {} must be [B] or [B,1] with B >= 1", op, preds.str());
  BR_CHECK(is_floating(preds.dtype()), "{}: preds {} must be floating", op, preds.str());
  const int64_t B = preds.size(0);
  BR_CHECK(targets.numel() == B && (targets.dim() == 1 || targets.shape() == preds.shape()),
           "{}: targets {} must be [B={}] or match preds {}", op, targets.str(), B, preds.str());
  BR_CHECK(targets.dtype() == preds.dtype() || (preds.is_cuda() && targets.dtype() == DType::f32),
           "{}: targets {} must have the dtype of preds {}{}", op, targets.str(), preds.str(),
           preds.is_cuda() ? " or f32" : "");
  check_same_device(op, preds, targets);
}

}  // namespace

void cross_entropy_forward(const Tensor& loss, const Tensor& logits, const Tensor& labels) {
  BR_PROFILE("cross_entropy_forward");
  check_logits("cross_entropy_forward", logits, labels);
  check_loss("cross_entropy_forward", loss, logits);
  if (logits.device() == Device::cpu) return cpu::cross_entropy_forward(loss, logits, labels);
#if BERTRAZOR_WITH_CUDA
  return cuda::cross_entropy_forward(loss, logits, labels);
#endif
}

void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& labels,
                            float dloss) {
  BR_PROFILE("cross_entropy_backward");
  check_logits("cross_entropy_backward", logits, labels);
  check_like("cross_entropy_backward", "dlogits", dlogits, logits);
  if (logits.device() == Device::cpu)
    return cpu::cross_entropy_backward(dlogits, logits, labels, dloss);
#if BERTRAZOR_WITH_CUDA
  return cuda::cross_entropy_backward(dlogits, logits, labels, dloss);
#endif
}

void mse_forward(const Tensor& loss, const Tensor& preds, const Tensor& targets) {
  BR_PROFILE("mse_forward");
  check_regression("mse_forward", preds, targets);
  check_loss("mse_forward", loss, preds);
  if (preds.device() == Device::cpu) return cpu::mse_forward(loss, preds, targets);
#if BERTRAZOR_WITH_CUDA
  return cuda::mse_forward(loss, preds, targets);
#endif
}

void mse_backward(const Tensor& dpreds, const Tensor& preds, const Tensor& targets, float dloss) {
  BR_PROFILE("mse_backward");
  check_regression("mse_backward", preds, targets);
  check_like("mse_backward", "dpreds", dpreds, preds);
  if (preds.device() == Device::cpu) return cpu::mse_backward(dpreds, preds, targets, dloss);
#if BERTRAZOR_WITH_CUDA
  return cuda::mse_backward(dpreds, preds, targets, dloss);
#endif
}

}  // namespace br

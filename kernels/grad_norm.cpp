#include "kernels/grad_norm.h"
#include "kernels/profile.h"

#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

namespace {

// All gradients defined, floating, supported by their backend and on one device; returns it.
Device check_grads(const char* op, const std::vector<Tensor>& grads) {
  for (size_t i = 0; i < grads.size(); ++i) {
    const Tensor& g = grads[i];
    BR_CHECK(g.defined(), "{}: gradient {} is undefined", op, i);
    BR_CHECK(g.device() == grads[0].device(), "{}: gradient {} is {}, gradient 0 is {}", op, i,
             g.str(), grads[0].str());
    const DType t = g.dtype();
    if (g.device() == Device::cpu)
      BR_CHECK(t == DType::f32 || t == DType::f64,
               "{}: gradient {} is {}; CPU supports f32 and f64", op, i, g.str());
    else
      BR_CHECK(t == DType::f32 || t == DType::bf16,
               "{}: gradient {} is {}; CUDA supports f32 and bf16", op, i, g.str());
  }
  return grads.empty() ? Device::cpu : grads[0].device();
}

}  // namespace

double global_grad_norm(const std::vector<Tensor>& grads) {
  BR_PROFILE("global_grad_norm");
  const Device d = check_grads("global_grad_norm", grads);
  if (grads.empty()) return 0.0;
  if (d == Device::cpu) return std::sqrt(cpu::sum_squares(grads));
#if BERTRAZOR_WITH_CUDA
  return std::sqrt(cuda::sum_squares(grads));
#endif
  return 0.0;
}

double clip_grad_norm(const std::vector<Tensor>& grads, double max_norm) {
  BR_PROFILE("clip_grad_norm");
  BR_CHECK(std::isfinite(max_norm) && max_norm > 0.0,
           "clip_grad_norm: max_norm {} must be positive and finite", max_norm);
  const double total = global_grad_norm(grads);
  const double coef = max_norm / (total + 1e-6);
  // Written as !(coef >= 1) so a NaN norm scales by NaN, as torch's clamp(coef, max=1) does.
  if (!(coef >= 1.0))
    for (const Tensor& g : grads) scale_(g, float(coef));
  return total;
}

void scale_(const Tensor& t, float factor) {
  BR_PROFILE("scale_");
  check_defined("scale_", "t", t);
  check_grads("scale_", {t});
  if (t.numel() == 0) return;
  if (t.device() == Device::cpu) return cpu::scale_(t, factor);
#if BERTRAZOR_WITH_CUDA
  return cuda::scale_(t, factor);
#endif
}

}  // namespace br

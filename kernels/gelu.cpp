#include "kernels/gelu.h"
#include "kernels/profile.h"

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

void gelu_forward(const Tensor& out, const Tensor& inp) {
  BR_PROFILE("gelu_forward");
  check_defined("gelu_forward", "inp", inp);
  check_like("gelu_forward", "out", out, inp);
  if (inp.device() == Device::cpu) return cpu::gelu_forward(out, inp);
#if BERTRAZOR_WITH_CUDA
  return cuda::gelu_forward(out, inp);
#endif
}

void gelu_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  BR_PROFILE("gelu_backward");
  check_defined("gelu_backward", "inp", inp);
  check_like("gelu_backward", "dout", dout, inp);
  check_like("gelu_backward", "dinp", dinp, inp);
  if (inp.device() == Device::cpu) return cpu::gelu_backward(dinp, dout, inp);
#if BERTRAZOR_WITH_CUDA
  return cuda::gelu_backward(dinp, dout, inp);
#endif
}

}  // namespace br

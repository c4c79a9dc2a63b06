#include "kernels/activation.h"
#include "kernels/profile.h"

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

void tanh_forward(const Tensor& out, const Tensor& inp) {
  BR_PROFILE("tanh_forward");
  check_defined("tanh_forward", "out", out);
  check_like("tanh_forward", "inp", inp, out);
  if (out.device() == Device::cpu) return cpu::tanh_forward(out, inp);
#if BERTRAZOR_WITH_CUDA
  cuda::tanh_forward(out, inp);
#endif
}

void tanh_backward(const Tensor& dinp, const Tensor& dout, const Tensor& out) {
  BR_PROFILE("tanh_backward");
  check_defined("tanh_backward", "dinp", dinp);
  check_like("tanh_backward", "dout", dout, dinp);
  check_like("tanh_backward", "out", out, dinp);
  if (dinp.device() == Device::cpu) return cpu::tanh_backward(dinp, dout, out);
#if BERTRAZOR_WITH_CUDA
  cuda::tanh_backward(dinp, dout, out);
#endif
}

}  // namespace br

#include "kernels/bias.h"
#include "kernels/profile.h"

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

void bias_add_forward(const Tensor& out, const Tensor& inp, const Tensor& bias) {
  BR_PROFILE("bias_add_forward");
  check_defined("bias_add_forward", "out", out);
  check_defined("bias_add_forward", "inp", inp);
  check_defined("bias_add_forward", "bias", bias);
  BR_CHECK(inp.dim() >= 1 && bias.dim() == 1 && bias.size(0) == inp.size(-1),
           "bias_add_forward: bias {} must be [N] with N the last dimension of inp {}", bias.str(),
           inp.str());
  check_shape("bias_add_forward", "out", out, inp.shape());
  check_dtype("bias_add_forward", "inp", inp, out.dtype());
  check_dtype("bias_add_forward", "bias", bias, out.dtype());
  check_same_device("bias_add_forward", out, inp);
  check_same_device("bias_add_forward", out, bias);
  const int64_t N = bias.size(0), M = N == 0 ? 0 : inp.numel() / N;
  if (out.device() == Device::cpu) return cpu::bias_add_forward(out, inp, bias, M, N);
#if BERTRAZOR_WITH_CUDA
  cuda::bias_add_forward(out, inp, bias, M, N);
#endif
}

void bias_add_backward(const Tensor& dbias, const Tensor& dout) {
  BR_PROFILE("bias_add_backward");
  check_defined("bias_add_backward", "dbias", dbias);
  check_defined("bias_add_backward", "dout", dout);
  BR_CHECK(dout.dim() >= 1 && dbias.dim() == 1 && dbias.size(0) == dout.size(-1),
           "bias_add_backward: dbias {} must be [N] with N the last dimension of dout {}",
           dbias.str(), dout.str());
  check_same_device("bias_add_backward", dbias, dout);
  const int64_t N = dbias.size(0), M = N == 0 ? 0 : dout.numel() / N;
  if (dbias.device() == Device::cpu) {
    check_dtype("bias_add_backward", "dout", dout, dbias.dtype());
    return cpu::bias_add_backward(dbias, dout, M, N);
  }
#if BERTRAZOR_WITH_CUDA
  cuda::bias_add_backward(dbias, dout, M, N);
#endif
}

}  // namespace br

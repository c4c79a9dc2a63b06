#include "kernels/cast.h"
#include "kernels/profile.h"

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

void cast(const Tensor& out, const Tensor& in) {
  BR_PROFILE("cast");
  check_defined("cast", "in", in);
  check_shape("cast", "out", out, in.shape());
  check_same_device("cast", out, in);
  BR_CHECK(is_floating(out.dtype()), "cast: output {} must be floating", out.str());
  if (out.device() == Device::cpu) return cpu::cast(out, in);
#if BERTRAZOR_WITH_CUDA
  return cuda::cast(out, in);
#endif
}

Tensor cast(const Tensor& in, DType dtype, MemCategory category) {
  BR_PROFILE("cast");
  Tensor out = Tensor::empty(in.shape(), dtype, in.device(), category);
  cast(out, in);
  return out;
}

void fill(const Tensor& out, double value) {
  BR_PROFILE("fill");
  check_defined("fill", "out", out);
  BR_CHECK(is_floating(out.dtype()), "fill: {} must be floating", out.str());
  if (out.device() == Device::cpu) return cpu::fill(out, value);
#if BERTRAZOR_WITH_CUDA
  return cuda::fill(out, value);
#endif
}

}  // namespace br

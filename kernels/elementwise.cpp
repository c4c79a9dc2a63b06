#include "kernels/elementwise.h"
#include "kernels/profile.h"

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

namespace {
void check_same(const char* op, const Tensor& out, const char* name, const Tensor& x) {
  check_defined(op, name, x);
  check_shape(op, name, x, out.shape());
  check_dtype(op, name, x, out.dtype());
  check_same_device(op, out, x);
}
}  // namespace

void add(const Tensor& out, const Tensor& a, const Tensor& b) {
  BR_PROFILE("add");
  check_defined("add", "out", out);
  check_same("add", out, "a", a);
  check_same("add", out, "b", b);
  BR_CHECK(is_floating(out.dtype()), "add: {} must be floating", out.str());
  if (out.device() == Device::cpu) return cpu::add(out, a, b);
#if BERTRAZOR_WITH_CUDA
  return cuda::add(out, a, b);
#endif
}

void axpy(const Tensor& out, float alpha, const Tensor& x) {
  BR_PROFILE("axpy");
  check_defined("axpy", "out", out);
  check_same("axpy", out, "x", x);
  BR_CHECK(is_floating(out.dtype()), "axpy: {} must be floating", out.str());
  if (out.device() == Device::cpu) return cpu::axpy(out, alpha, x);
#if BERTRAZOR_WITH_CUDA
  return cuda::axpy(out, alpha, x);
#endif
}

}  // namespace br

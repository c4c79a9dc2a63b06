#include "kernels/dropout.h"
#include "kernels/profile.h"

#include <cstdint>

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

namespace {

void dropout(const char* op, const Tensor& out, const Tensor& inp, float p, const DropoutKey& key,
             const Tensor& example_ids) {
  check_defined(op, "input", inp);
  BR_CHECK(inp.dim() >= 1, "{}: input {} needs at least one dim", op, inp.str());
  check_like(op, "output", out, inp);
  BR_CHECK(p >= 0.0f && p <= 1.0f, "{}: p={} must be in [0, 1]", op, p);
  check_defined(op, "example_ids", example_ids);
  const int64_t rows = inp.size(0);
  check_shape(op, "example_ids", example_ids, {rows});
  check_dtype(op, "example_ids", example_ids, DType::i32);
  check_same_device(op, inp, example_ids);
  if (inp.numel() == 0) return;
  if (p == 0.0f) {
    if (out.raw() != inp.raw()) out.copy_from(inp);
    return;
  }
  const int64_t n = inp.numel() / rows;
  BR_CHECK(n <= int64_t(UINT32_MAX), "{}: rows of {} elements ({}) exceed the 32-bit element index",
           op, n, inp.str());
  if (inp.device() == Device::cpu) return cpu::dropout_apply(out, inp, p, key, example_ids, rows, n);
#if BERTRAZOR_WITH_CUDA
  return cuda::dropout_apply(out, inp, p, key, example_ids, rows, n);
#endif
}

}  // namespace

void dropout_forward(const Tensor& out, const Tensor& inp, float p, const DropoutKey& key,
                     const Tensor& example_ids) {
  BR_PROFILE("dropout_forward");
  dropout("dropout_forward", out, inp, p, key, example_ids);
}

void dropout_backward(const Tensor& dinp, const Tensor& dout, float p, const DropoutKey& key,
                      const Tensor& example_ids) {
  BR_PROFILE("dropout_backward");
  dropout("dropout_backward", dinp, dout, p, key, example_ids);
}

}  // namespace br

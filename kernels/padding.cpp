#include "kernels/padding.h"
#include "kernels/profile.h"

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

void zero_padding_rows(const Tensor& x, const Tensor& token_mask) {
  BR_PROFILE("zero_padding_rows");
  const char* op = "zero_padding_rows";
  check_defined(op, "x", x);
  check_defined(op, "token_mask", token_mask);
  check_same_device(op, x, token_mask);
  check_dtype(op, "token_mask", token_mask, DType::i32);
  BR_CHECK(is_floating(x.dtype()), "{}: x {} must be floating", op, x.str());
  BR_CHECK(x.dim() >= 3, "{}: x {} must be [B, ..., S, R]", op, x.str());
  const int64_t B = x.size(0), S = x.size(x.dim() - 2), R = x.size(x.dim() - 1);
  check_shape(op, "token_mask", token_mask, {B, S});
  const int64_t G = B == 0 || S == 0 || R == 0 ? 0 : x.numel() / (B * S * R);
  if (x.numel() == 0) return;
  if (x.device() == Device::cpu) return cpu::zero_padding_rows(x, token_mask, B, G, S, R);
#if BERTRAZOR_WITH_CUDA
  cuda::zero_padding_rows(x, token_mask, B, G, S, R);
#endif
}

}  // namespace br

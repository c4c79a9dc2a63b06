#include "kernels/permute.h"
#include "kernels/profile.h"

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

namespace {

void check_pair(const char* op, const Tensor& out, const Tensor& in) {
  check_defined(op, "out", out);
  check_defined(op, "in", in);
  check_dtype(op, "in", in, out.dtype());
  check_same_device(op, out, in);
  BR_CHECK(is_floating(out.dtype()), "{}: {} must be floating", op, out.str());
  BR_CHECK(out.raw() != in.raw() || out.numel() == 0, "{}: out {} must not alias in {}", op,
           out.str(), in.str());
}

void dispatch(const Tensor& out, const Tensor& in, int64_t B, int64_t P, int64_t Q, int64_t D) {
  if (out.device() == Device::cpu) return cpu::swap_middle(out, in, B, P, Q, D);
#if BERTRAZOR_WITH_CUDA
  cuda::swap_middle(out, in, B, P, Q, D);
#endif
}

}  // namespace

void split_heads(const Tensor& out, const Tensor& in, int64_t heads) {
  BR_PROFILE("split_heads");
  check_pair("split_heads", out, in);
  BR_CHECK(in.dim() == 3, "split_heads: in {} must be [B, S, N*D]", in.str());
  BR_CHECK(heads > 0 && in.size(2) % heads == 0,
           "split_heads: hidden size of in {} is not divisible by heads={}", in.str(), heads);
  const int64_t B = in.size(0), S = in.size(1), N = heads, D = in.size(2) / heads;
  check_shape("split_heads", "out", out, {B, N, S, D});
  dispatch(out, in, B, N, S, D);
}

void merge_heads(const Tensor& out, const Tensor& in) {
  BR_PROFILE("merge_heads");
  check_pair("merge_heads", out, in);
  BR_CHECK(in.dim() == 4, "merge_heads: in {} must be [B, N, S, D]", in.str());
  const int64_t B = in.size(0), N = in.size(1), S = in.size(2), D = in.size(3);
  check_shape("merge_heads", "out", out, {B, S, N * D});
  dispatch(out, in, B, S, N, D);
}

}  // namespace br

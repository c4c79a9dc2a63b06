#include "kernels/embedding.h"
#include "kernels/profile.h"

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

namespace {

// Checks shared by forward and backward; act is out (forward) or dout (backward).
void check_args(const char* op, const char* act_name, const Tensor& act, const Tensor& ids,
                const char* table_name, const Tensor& table) {
  check_defined(op, table_name, table);
  check_defined(op, act_name, act);
  check_defined(op, "ids", ids);
  BR_CHECK(table.dim() == 2, "{}: {} {} must be [V,H]", op, table_name, table.str());
  check_dtype(op, "ids", ids, DType::i32);
  const int64_t M = ids.numel(), H = table.size(1);
  BR_CHECK(act.dim() >= 1 && act.size(-1) == H && act.numel() == M * H,
           "{}: {} {} must hold ids {} rows of H={} (table {})", op, act_name, act.str(),
           shape_str(ids.shape()), H, table.str());
  check_same_device(op, table, act);
  check_same_device(op, table, ids);
  BR_CHECK(is_floating(act.dtype()) && is_floating(table.dtype()), "{}: {} {} and {} {} must be floating",
           op, act_name, act.str(), table_name, table.str());
  if (table.device() == Device::cpu)
    BR_CHECK(act.dtype() == table.dtype(), "{}: on the CPU {} {} must have the dtype of {} {}", op,
             act_name, act.str(), table_name, table.str());
}

}  // namespace

void embedding_forward(const Tensor& out, const Tensor& ids, const Tensor& table, bool accumulate) {
  BR_PROFILE("embedding_forward");
  check_args("embedding_forward", "out", out, ids, "table", table);
  if (ids.numel() == 0) return;
  if (table.device() == Device::cpu) return cpu::embedding_forward(out, ids, table, accumulate);
#if BERTRAZOR_WITH_CUDA
  return cuda::embedding_forward(out, ids, table, accumulate);
#endif
}

void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& ids) {
  BR_PROFILE("embedding_backward");
  check_args("embedding_backward", "dout", dout, ids, "dtable", dtable);
  if (dtable.is_cuda())
    check_dtype("embedding_backward", "dtable", dtable, DType::f32);
  if (ids.numel() == 0) return;
  if (dtable.device() == Device::cpu) return cpu::embedding_backward(dtable, dout, ids);
#if BERTRAZOR_WITH_CUDA
  return cuda::embedding_backward(dtable, dout, ids);
#endif
}

}  // namespace br

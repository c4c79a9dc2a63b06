#include "kernels/layernorm.h"
#include "kernels/profile.h"

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

namespace {

// M rows of C from the last dim of an activation tensor.
void rows_cols(const char* op, const Tensor& x, int64_t& M, int64_t& C) {
  BR_CHECK(x.dim() >= 1 && x.size(-1) >= 1 && x.numel() >= 1,
           "{}: input {} needs a non-empty last dim", op, x.str());
  C = x.size(-1);
  M = x.numel() / C;
}

// weight-like [C] tensors: the activation dtype on the CPU, f32 or the activation dtype on CUDA.
void check_param(const char* op, const char* name, const Tensor& t, const Tensor& act, int64_t C,
                 DType param_dtype) {
  check_defined(op, name, t);
  check_shape(op, name, t, {C});
  check_dtype(op, name, t, param_dtype);
  check_same_device(op, act, t);
}

DType param_dtype_for(const char* op, const Tensor& weight, const Tensor& act) {
  check_defined(op, "weight", weight);
  const DType w = weight.dtype();
  BR_CHECK(w == act.dtype() || (act.is_cuda() && w == DType::f32),
           "{}: weight {} must have the activation dtype {}{}", op, weight.str(),
           dtype_name(act.dtype()), act.is_cuda() ? " or f32" : "");
  return w;
}

void check_stats(const char* op, const char* name, const Tensor& t, const Tensor& act, int64_t M) {
  check_defined(op, name, t);
  BR_CHECK(t.numel() == M, "{}: {} {} must have M={} elements (one per row of {})", op, name,
           t.str(), M, act.str());
  check_dtype(op, name, t, act.dtype() == DType::f64 ? DType::f64 : DType::f32);
  check_same_device(op, act, t);
}

}  // namespace

void layernorm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& residual, const Tensor& weight, const Tensor& bias, double eps,
                       const Tensor& xsum) {
  BR_PROFILE("layernorm_forward");
  const char* op = "layernorm_forward";
  check_defined(op, "inp", inp);
  int64_t M = 0, C = 0;
  rows_cols(op, inp, M, C);
  check_like(op, "out", out, inp);
  if (residual.defined()) check_like(op, "residual", residual, inp);
  if (xsum.defined()) check_like(op, "xsum", xsum, inp);
  const DType pd = param_dtype_for(op, weight, inp);
  check_param(op, "weight", weight, inp, C, pd);
  check_param(op, "bias", bias, inp, C, pd);
  check_stats(op, "mean", mean, inp, M);
  check_stats(op, "rstd", rstd, inp, M);
  BR_CHECK(eps >= 0, "{}: eps {} must be non-negative", op, eps);
  if (inp.device() == Device::cpu)
    return cpu::layernorm_forward(out, mean, rstd, inp, residual, weight, bias, eps, xsum, M, C);
#if BERTRAZOR_WITH_CUDA
  return cuda::layernorm_forward(out, mean, rstd, inp, residual, weight, bias, eps, xsum, M, C);
#endif
}

void layernorm_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& x, const Tensor& mean, const Tensor& rstd,
                        const Tensor& weight) {
  BR_PROFILE("layernorm_backward");
  const char* op = "layernorm_backward";
  check_defined(op, "x", x);
  int64_t M = 0, C = 0;
  rows_cols(op, x, M, C);
  check_like(op, "dout", dout, x);
  if (dinp.defined()) check_like(op, "dinp", dinp, x);
  const DType pd = param_dtype_for(op, weight, x);
  check_param(op, "weight", weight, x, C, pd);
  if (dweight.defined()) check_param(op, "dweight", dweight, x, C, pd);
  if (dbias.defined()) check_param(op, "dbias", dbias, x, C, pd);
  check_stats(op, "mean", mean, x, M);
  check_stats(op, "rstd", rstd, x, M);
  if (x.device() == Device::cpu)
    return cpu::layernorm_backward(dinp, dweight, dbias, dout, x, mean, rstd, weight, M, C);
#if BERTRAZOR_WITH_CUDA
  return cuda::layernorm_backward(dinp, dweight, dbias, dout, x, mean, rstd, weight, M, C);
#endif
}

}  // namespace br

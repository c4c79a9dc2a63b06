#include "kernels/fused.h"
#include "kernels/profile.h"

#include <cstdint>
#include <utility>

#include "kernels/cpu/cpu_ops.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

namespace {

// bias [N] for the last dim N of the activation `act`, in its dtype and on its device; returns N.
int64_t check_bias(const char* op, const char* name, const Tensor& bias, const Tensor& act) {
  check_defined(op, name, bias);
  BR_CHECK(act.dim() >= 1 && bias.dim() == 1 && bias.size(0) == act.size(-1),
           "{}: {} {} must be [N] with N the last dimension of {}", op, name, bias.str(),
           act.str());
  check_dtype(op, name, bias, act.dtype());
  check_same_device(op, act, bias);
  return bias.size(0);
}

// An accumulated bias gradient: [N], the activation dtype (on CUDA also f32).
void check_dbias(const char* op, const Tensor& dbias, const Tensor& act) {
  BR_CHECK(act.dim() >= 1 && dbias.dim() == 1 && dbias.size(0) == act.size(-1),
           "{}: dbias {} must be [N] with N the last dimension of {}", op, dbias.str(), act.str());
  check_same_device(op, act, dbias);
  BR_CHECK(dbias.dtype() == act.dtype() || (act.is_cuda() && dbias.dtype() == DType::f32),
           "{}: dbias {} must have the activation dtype {}{}", op, dbias.str(),
           dtype_name(act.dtype()), act.is_cuda() ? " or f32" : "");
}

// The dropout arguments of an activation with samples along dim 0; returns R, the rows of N per
// sample.
int64_t check_dropout(const char* op, const Tensor& act, float p, const Tensor& example_ids) {
  BR_CHECK(act.dim() >= 2, "{}: {} needs at least 2 dims (samples along dim 0, then [..., N])", op,
           act.str());
  BR_CHECK(p >= 0.0f && p <= 1.0f, "{}: p={} must be in [0, 1]", op, p);
  check_defined(op, "example_ids", example_ids);
  check_shape(op, "example_ids", example_ids, {act.size(0)});
  check_dtype(op, "example_ids", example_ids, DType::i32);
  check_same_device(op, act, example_ids);
  if (act.numel() == 0) return 0;
  const int64_t n = act.numel() / act.size(0);
  BR_CHECK(n <= int64_t(UINT32_MAX), "{}: rows of {} elements ({}) exceed the 32-bit element index",
           op, n, act.str());
  return n / act.size(-1);
}

int64_t rows_of(const Tensor& act, int64_t N) { return N == 0 ? 0 : act.numel() / N; }

}  // namespace

void bias_gelu_forward(const Tensor& pre, const Tensor& out, const Tensor& inp, const Tensor& bias) {
  BR_PROFILE("bias_gelu_forward");
  const char* op = "bias_gelu_forward";
  check_defined(op, "inp", inp);
  const int64_t N = check_bias(op, "bias", bias, inp);
  check_like(op, "pre", pre, inp);
  check_like(op, "out", out, inp);
  const int64_t M = rows_of(inp, N);
  if (inp.numel() == 0) return;
  if (inp.device() == Device::cpu) return cpu::bias_gelu_forward(pre, out, inp, bias, M, N);
#if BERTRAZOR_WITH_CUDA
  cuda::bias_gelu_forward(pre, out, inp, bias, M, N);
#endif
}

void bias_gelu_backward(const Tensor& dinp, const Tensor& dbias, const Tensor& dout,
                        const Tensor& pre) {
  BR_PROFILE("bias_gelu_backward");
  const char* op = "bias_gelu_backward";
  check_defined(op, "pre", pre);
  BR_CHECK(pre.dim() >= 1, "{}: pre {} needs at least one dim", op, pre.str());
  check_like(op, "dout", dout, pre);
  check_like(op, "dinp", dinp, pre);
  if (dbias.defined()) check_dbias(op, dbias, pre);
  const int64_t N = pre.size(-1), M = rows_of(pre, N);
  if (pre.device() == Device::cpu) return cpu::bias_gelu_backward(dinp, dbias, dout, pre, M, N);
#if BERTRAZOR_WITH_CUDA
  cuda::bias_gelu_backward(dinp, dbias, dout, pre, M, N);
#endif
}

void bias_dropout_residual_layernorm_forward(const Tensor& out, const Tensor& mean,
                                             const Tensor& rstd, const Tensor& xsum,
                                             const Tensor& inp, const Tensor& bias, float p,
                                             const DropoutKey& key, const Tensor& example_ids,
                                             const Tensor& residual, const Tensor& weight,
                                             const Tensor& ln_bias, double eps) {
  BR_PROFILE("bias_dropout_residual_layernorm_forward");
  const char* op = "bias_dropout_residual_layernorm_forward";
  check_defined(op, "inp", inp);
  const int64_t R = check_dropout(op, inp, p, example_ids);
  BR_CHECK(inp.size(-1) >= 1 && inp.numel() >= 1, "{}: inp {} needs a non-empty last dim", op,
           inp.str());
  const int64_t N = check_bias(op, "bias", bias, inp), M = rows_of(inp, N);
  check_like(op, "out", out, inp);
  if (xsum.defined()) check_like(op, "xsum", xsum, inp);
  if (residual.defined()) check_like(op, "residual", residual, inp);
  // LayerNorm's parameters and statistics, as layernorm_forward checks them.
  check_defined(op, "weight", weight);
  const DType pd = weight.dtype();
  BR_CHECK(pd == inp.dtype() || (inp.is_cuda() && pd == DType::f32),
           "{}: weight {} must have the activation dtype {}{}", op, weight.str(),
           dtype_name(inp.dtype()), inp.is_cuda() ? " or f32" : "");
  for (auto [name, t] : {std::pair<const char*, const Tensor*>{"weight", &weight}, {"ln_bias", &ln_bias}}) {
    check_defined(op, name, *t);
    check_shape(op, name, *t, {N});
    check_dtype(op, name, *t, pd);
    check_same_device(op, inp, *t);
  }
  const DType sd = inp.dtype() == DType::f64 ? DType::f64 : DType::f32;
  for (auto [name, t] : {std::pair<const char*, const Tensor*>{"mean", &mean}, {"rstd", &rstd}}) {
    check_defined(op, name, *t);
    BR_CHECK(t->numel() == M, "{}: {} {} must have M={} elements (one per row of {})", op, name,
             t->str(), M, inp.str());
    check_dtype(op, name, *t, sd);
    check_same_device(op, inp, *t);
  }
  BR_CHECK(eps >= 0, "{}: eps {} must be non-negative", op, eps);
  if (inp.device() == Device::cpu)
    return cpu::bias_dropout_residual_layernorm_forward(out, mean, rstd, xsum, inp, bias, p, key,
                                                        example_ids, residual, weight, ln_bias,
                                                        eps, M, N, R);
#if BERTRAZOR_WITH_CUDA
  cuda::bias_dropout_residual_layernorm_forward(out, mean, rstd, xsum, inp, bias, p, key,
                                                example_ids, residual, weight, ln_bias, eps, M, N,
                                                R);
#endif
}

void dropout_bias_backward(const Tensor& dinp, const Tensor& dbias, const Tensor& dout, float p,
                           const DropoutKey& key, const Tensor& example_ids) {
  BR_PROFILE("dropout_bias_backward");
  const char* op = "dropout_bias_backward";
  check_defined(op, "dout", dout);
  check_like(op, "dinp", dinp, dout);
  const int64_t R = check_dropout(op, dout, p, example_ids);
  if (dbias.defined()) check_dbias(op, dbias, dout);
  const int64_t N = dout.size(-1), M = rows_of(dout, N);
  if (dout.device() == Device::cpu)
    return cpu::dropout_bias_backward(dinp, dbias, dout, p, key, example_ids, M, N, R);
#if BERTRAZOR_WITH_CUDA
  cuda::dropout_bias_backward(dinp, dbias, dout, p, key, example_ids, M, N, R);
#endif
}

}  // namespace br

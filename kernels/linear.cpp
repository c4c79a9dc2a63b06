#include "kernels/linear.h"
#include "kernels/profile.h"

#include "kernels/bias.h"
#include "kernels/gemm.h"
#if BERTRAZOR_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace br {

namespace {

// inp [.., K] as [M, K] given weight [N, K].
Tensor rows_of(const char* op, const char* name, const Tensor& t, int64_t cols,
               const Tensor& weight) {
  BR_CHECK(t.dim() >= 1 && t.size(-1) == cols, "{}: {} {} must end in {} (weight {})", op, name,
           t.str(), cols, weight.str());
  return t.view({cols == 0 ? 0 : t.numel() / cols, cols});
}

// weight has inp's dtype, or is the bf16 copy of an f32 weight in the CPU's bf16 product mode
// (set_cpu_bf16_matmul: the products round to bf16 anyway).
void check_weight_dtype(const char* op, const Tensor& weight, const Tensor& inp) {
  if (weight.dtype() == DType::bf16 && inp.dtype() == DType::f32 &&
      weight.device() == Device::cpu) {
    BR_CHECK(cpu_bf16_matmul(),
             "{}: a bf16 weight {} with f32 inp {} on the CPU needs the bf16 product mode "
             "(set_cpu_bf16_matmul)",
             op, weight.str(), inp.str());
    return;
  }
  check_dtype(op, "weight", weight, inp.dtype());
}

}  // namespace

void linear_forward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                    const Tensor& bias) {
  BR_PROFILE("linear_forward");
  check_defined("linear_forward", "out", out);
  check_defined("linear_forward", "inp", inp);
  check_defined("linear_forward", "weight", weight);
  BR_CHECK(weight.dim() == 2, "linear_forward: weight {} must be [N, K]", weight.str());
  const int64_t N = weight.size(0), K = weight.size(1);
  Tensor x = rows_of("linear_forward", "inp", inp, K, weight);
  Tensor y = rows_of("linear_forward", "out", out, N, weight);
  BR_CHECK(x.size(0) == y.size(0), "linear_forward: inp {} and out {} differ in rows (weight {})",
           inp.str(), out.str(), weight.str());
  BR_CHECK(inp.dim() == out.dim(), "linear_forward: inp {} and out {} must have the same rank",
           inp.str(), out.str());
  for (int64_t i = 0; i + 1 < inp.dim(); ++i)
    BR_CHECK(inp.size(i) == out.size(i), "linear_forward: inp {} and out {} differ in leading dims",
             inp.str(), out.str());
  check_weight_dtype("linear_forward", weight, inp);
  check_dtype("linear_forward", "out", out, inp.dtype());
  if (bias.defined()) {
    check_shape("linear_forward", "bias", bias, {N});
    check_dtype("linear_forward", "bias", bias, inp.dtype());
  }
  check_same_device("linear_forward", out, inp);
  check_same_device("linear_forward", out, weight);
  if (bias.defined()) check_same_device("linear_forward", out, bias);
#if BERTRAZOR_WITH_CUDA
  if (out.is_cuda() && bias.defined() && y.numel() > 0 && K > 0 &&
      (inp.dtype() == DType::f32 || inp.dtype() == DType::bf16) &&
      cuda::linear_forward_bias_epilogue(y, x, weight, bias, y.size(0), N, K, cuda_tf32()))
    return;
#endif
  matmul(y, x, false, weight, true);
  if (bias.defined()) bias_add_forward(y, y, bias);
}

void linear_backward(const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                     const Tensor& dout, const Tensor& inp, const Tensor& weight) {
  BR_PROFILE("linear_backward");
  check_defined("linear_backward", "dout", dout);
  check_defined("linear_backward", "inp", inp);
  check_defined("linear_backward", "weight", weight);
  BR_CHECK(weight.dim() == 2, "linear_backward: weight {} must be [N, K]", weight.str());
  const int64_t N = weight.size(0), K = weight.size(1);
  Tensor x = rows_of("linear_backward", "inp", inp, K, weight);
  Tensor dy = rows_of("linear_backward", "dout", dout, N, weight);
  BR_CHECK(x.size(0) == dy.size(0) && inp.dim() == dout.dim(),
           "linear_backward: inp {} and dout {} differ in leading dims (weight {})", inp.str(),
           dout.str(), weight.str());
  for (int64_t i = 0; i + 1 < inp.dim(); ++i)
    BR_CHECK(inp.size(i) == dout.size(i),
             "linear_backward: inp {} and dout {} differ in leading dims", inp.str(), dout.str());
  check_dtype("linear_backward", "dout", dout, inp.dtype());
  check_weight_dtype("linear_backward", weight, inp);
  if (dinp.defined()) {
    check_shape("linear_backward", "dinp", dinp, inp.shape());
    check_dtype("linear_backward", "dinp", dinp, inp.dtype());
  }
  auto grad_dtype_ok = [&](const Tensor& g) {
    return g.dtype() == inp.dtype() || (g.dtype() == DType::f32 && inp.dtype() == DType::bf16);
  };
  if (dweight.defined()) {
    check_shape("linear_backward", "dweight", dweight, {N, K});
    BR_CHECK(grad_dtype_ok(dweight), "linear_backward: dweight {} must be {} (or f32 for bf16 inp)",
             dweight.str(), dtype_name(inp.dtype()));
  }
  if (dbias.defined()) {
    check_shape("linear_backward", "dbias", dbias, {N});
    BR_CHECK(grad_dtype_ok(dbias), "linear_backward: dbias {} must be {} (or f32 for bf16 inp)",
             dbias.str(), dtype_name(inp.dtype()));
  }
  if (dinp.defined()) matmul(dinp.view(x.shape()), dy, false, weight, false);
  if (dweight.defined()) matmul(dweight, dy, true, x, false, 1.0f, 1.0f);
  if (dbias.defined()) bias_add_backward(dbias, dy);
}

}  // namespace br

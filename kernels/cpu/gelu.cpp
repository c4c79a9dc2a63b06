#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/cpu_math.h"

#include <cstdint>

namespace br::cpu {

namespace {

template <typename T>
void gelu_forward_impl(T* out, const T* inp, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) out[i] = gelu(inp[i]);
}

template <typename T>
void gelu_backward_impl(T* dinp, const T* dout, const T* inp, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * gelu_grad(inp[i]);
}

}  // namespace

void gelu_forward(const Tensor& out, const Tensor& inp) {
  switch (out.dtype()) {
    case DType::f32: return gelu_forward_impl(out.data<float>(), inp.data<float>(), out.numel());
    case DType::f64: return gelu_forward_impl(out.data<double>(), inp.data<double>(), out.numel());
    default: fail("gelu_forward: CPU supports f32 and f64, got {}", out.str());
  }
}

void gelu_backward(const Tensor& dinp, const Tensor& dout, const Tensor& inp) {
  switch (dinp.dtype()) {
    case DType::f32:
      return gelu_backward_impl(dinp.data<float>(), dout.data<float>(), inp.data<float>(), dinp.numel());
    case DType::f64:
      return gelu_backward_impl(dinp.data<double>(), dout.data<double>(), inp.data<double>(),
                                dinp.numel());
    default: fail("gelu_backward: CPU supports f32 and f64, got {}", dinp.str());
  }
}

}  // namespace br::cpu

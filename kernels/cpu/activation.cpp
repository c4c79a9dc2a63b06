#include "kernels/cpu/cpu_ops.h"

#include <cmath>

namespace br::cpu {

namespace {

template <typename T>
void tanh_fwd(T* out, const T* inp, int64_t n) {
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) out[i] = std::tanh(inp[i]);
}

template <typename T>
void tanh_bwd(T* dinp, const T* dout, const T* out, int64_t n) {
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) dinp[i] = dout[i] * (T(1) - out[i] * out[i]);
}

}  // namespace

void tanh_forward(const Tensor& out, const Tensor& inp) {
  switch (out.dtype()) {
    case DType::f32: return tanh_fwd(out.data<float>(), inp.data<float>(), out.numel());
    case DType::f64: return tanh_fwd(out.data<double>(), inp.data<double>(), out.numel());
    default: fail("tanh_forward: CPU supports f32 and f64, got {}", out.str());
  }
}

void tanh_backward(const Tensor& dinp, const Tensor& dout, const Tensor& out) {
  switch (dinp.dtype()) {
    case DType::f32:
      return tanh_bwd(dinp.data<float>(), dout.data<float>(), out.data<float>(), dinp.numel());
    case DType::f64:
      return tanh_bwd(dinp.data<double>(), dout.data<double>(), out.data<double>(), dinp.numel());
    default: fail("tanh_backward: CPU supports f32 and f64, got {}", dinp.str());
  }
}

}  // namespace br::cpu

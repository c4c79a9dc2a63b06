#include "kernels/cpu/cpu_ops.h"

// GCC 12 reports a false -Wmaybe-uninitialized inside its own AVX-512 intrinsics for Eigen's
// kernels.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>

namespace br::cpu {

namespace {

template <typename T>
using RowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <typename T>
void forward(T* out, const T* inp, const T* bias, int64_t M, int64_t N) {
#pragma omp parallel for schedule(static) if (M * N > (1 << 16))
  for (int64_t m = 0; m < M; ++m) {
    const T* x = inp + m * N;
    T* y = out + m * N;
#pragma omp simd
    for (int64_t n = 0; n < N; ++n) y[n] = x[n] + bias[n];
  }
}

template <typename T>
void backward(T* dbias, const T* dout, int64_t M, int64_t N) {
  Eigen::Map<const RowMajor<T>> d(dout, M, N);
  Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>> db(dbias, N);
  db += d.colwise().sum();
}

}  // namespace

void bias_add_forward(const Tensor& out, const Tensor& inp, const Tensor& bias, int64_t M,
                      int64_t N) {
  switch (out.dtype()) {
    case DType::f32:
      return forward(out.data<float>(), inp.data<float>(), bias.data<float>(), M, N);
    case DType::f64:
      return forward(out.data<double>(), inp.data<double>(), bias.data<double>(), M, N);
    default:
      fail("bias_add_forward: CPU supports f32 and f64, got {}", out.str());
  }
}

void bias_add_backward(const Tensor& dbias, const Tensor& dout, int64_t M, int64_t N) {
  switch (dbias.dtype()) {
    case DType::f32:
      return backward(dbias.data<float>(), dout.data<float>(), M, N);
    case DType::f64:
      return backward(dbias.data<double>(), dout.data<double>(), M, N);
    default:
      fail("bias_add_backward: CPU supports f32 and f64, got {}", dbias.str());
  }
}

}  // namespace br::cpu
